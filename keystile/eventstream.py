"""AWS event-stream framing (``application/vnd.amazon.eventstream``), decoded incrementally and encoded.

Bedrock's InvokeModelWithResponseStream answers in binary frames rather than SSE; this is
the peer of ``keystile.sse`` for that framing. One frame (a *message*) is:

    total length (uint32) | headers length (uint32) | CRC32 of those 8 bytes
    headers: name length (uint8), name, value type (uint8), value — repeated
    payload
    CRC32 of everything before it

all integers big-endian. ``EventStreamParser.feed`` returns each frame as soon as its last
byte has arrived (nothing is held back), with its exact bytes so a same-format relay forwards
them unchanged; a frame whose CRCs do not match, or whose lengths are absurd, raises
``EventStreamError``. ``encode_message`` writes frames the way Bedrock does (string headers).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

_PRELUDE = struct.Struct(">III")
_UINT16 = struct.Struct(">H")
_UINT32 = struct.Struct(">I")
PRELUDE_LENGTH = 12
MAX_HEADERS_LENGTH = 128 * 1024
MAX_PAYLOAD_LENGTH = 24 * 1024 * 1024
"""The bounds botocore enforces (``botocore.eventstream``); a frame past them is an error, not a wait."""

# Header value types: their fixed sizes, or None for the length-prefixed ones (6 bytes, 7 string).
_FIXED_SIZE = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}
_BYTES, _STRING = 6, 7


class EventStreamError(ValueError):
    """The bytes are not a well-formed event stream (bad CRC, impossible lengths, truncated headers).

    ``parsed`` holds what the same call read whole before the fault, so a relay still passes on
    the good frames that arrived together with a bad one."""

    def __init__(self, message: str, parsed: list | None = None) -> None:
        super().__init__(message)
        self.parsed = parsed or []


@dataclass(slots=True)
class Message:
    headers: dict[str, object]
    """Header name → value: ``str`` for strings, ``bytes`` for byte arrays and UUIDs, ``bool``, ``int``."""
    payload: bytes
    raw: bytes
    """The frame exactly as received."""


class EventStreamParser:
    """Feed bytes as they arrive, get complete frames; a partial frame waits for its rest."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[Message]:
        buffer = self._buffer + chunk if self._buffer else chunk
        messages: list[Message] = []
        try:
            return self._split(buffer, messages)
        except EventStreamError as exc:
            exc.parsed = messages
            raise

    def _split(self, buffer: bytes, messages: list[Message]) -> list[Message]:
        start = 0
        end = len(buffer)
        while end - start >= PRELUDE_LENGTH:
            total, headers_length, prelude_crc = _PRELUDE.unpack_from(buffer, start)
            if zlib.crc32(buffer[start : start + 8]) != prelude_crc:
                raise EventStreamError("event-stream prelude checksum mismatch")
            if headers_length > MAX_HEADERS_LENGTH or total - headers_length - PRELUDE_LENGTH - 4 > MAX_PAYLOAD_LENGTH:
                raise EventStreamError("event-stream frame larger than allowed")
            if total < PRELUDE_LENGTH + headers_length + 4:
                raise EventStreamError("event-stream frame shorter than its own headers")
            if end - start < total:
                break
            frame = buffer[start : start + total]
            if zlib.crc32(frame[:-4]) != _UINT32.unpack_from(frame, total - 4)[0]:
                raise EventStreamError("event-stream message checksum mismatch")
            headers = decode_headers(frame[PRELUDE_LENGTH : PRELUDE_LENGTH + headers_length])
            messages.append(Message(headers, frame[PRELUDE_LENGTH + headers_length : -4], frame))
            start += total
        self._buffer = buffer[start:]
        return messages

    @property
    def pending(self) -> bytes:
        """Always empty: unlike an SSE event, a partial frame can never be completed by the end of the stream."""
        return b""

    def close(self) -> list[Message]:
        """The stream ended: a partial frame left over is lost (the caller sees the stream was cut)."""
        self._buffer = b""
        return []


def decode_headers(data: bytes) -> dict[str, object]:
    headers: dict[str, object] = {}
    i, end = 0, len(data)
    try:
        while i < end:
            size = data[i]
            name = data[i + 1 : i + 1 + size].decode("utf-8")
            i += 1 + size
            kind = data[i]
            i += 1
            value: object
            if kind in (_BYTES, _STRING):
                (length,) = _UINT16.unpack_from(data, i)
                raw = data[i + 2 : i + 2 + length]
                if len(raw) != length:
                    raise EventStreamError("event-stream header value truncated")
                value = raw.decode("utf-8") if kind == _STRING else raw
                i += 2 + length
            elif kind in _FIXED_SIZE:
                size = _FIXED_SIZE[kind]
                raw = data[i : i + size]
                if len(raw) != size:
                    raise EventStreamError("event-stream header value truncated")
                value = kind == 0 if kind in (0, 1) else (raw if kind == 9 else int.from_bytes(raw, "big", signed=True))
                i += size
            else:
                raise EventStreamError(f"unknown event-stream header type {kind}")
            headers[name] = value
    except (IndexError, struct.error, UnicodeDecodeError):
        raise EventStreamError("malformed event-stream headers") from None
    return headers


def encode_headers(headers: dict[str, str]) -> bytes:
    """String-valued headers (all Bedrock sends), in the given order."""
    out = []
    for name, value in headers.items():
        name_bytes = name.encode("utf-8")
        value_bytes = value.encode("utf-8")
        out.append(bytes((len(name_bytes),)) + name_bytes + bytes((_STRING,)) + _UINT16.pack(len(value_bytes)) + value_bytes)
    return b"".join(out)


def encode_message(headers: dict[str, str] | bytes, payload: bytes) -> bytes:
    """One frame; ``headers`` may be pre-encoded (``encode_headers``) when they repeat."""
    block = headers if isinstance(headers, bytes) else encode_headers(headers)
    total = PRELUDE_LENGTH + len(block) + len(payload) + 4
    prelude = struct.pack(">II", total, len(block))
    head = prelude + _UINT32.pack(zlib.crc32(prelude))
    body = head + block + payload
    return body + _UINT32.pack(zlib.crc32(body))
