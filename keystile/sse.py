"""Incremental Server-Sent Events framing for upstream streams.

Upstream bytes arrive split at arbitrary places; ``SSEParser.feed`` returns each complete
event as soon as its terminating blank line is seen, together with its exact raw bytes so
pass-through streams can forward them unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# An event ends at the first blank line; any of the three line endings SSE allows.
_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n")


@dataclass(slots=True)
class SSEEvent:
    event: str | None
    """The ``event:`` field, or None (OpenAI streams carry data only)."""
    data: bytes
    """The ``data:`` lines joined with ``\\n``; empty for comment-only events."""
    raw: bytes
    """The event exactly as received, including its terminating blank line."""


def parse_event(raw: bytes) -> SSEEvent:
    event: str | None = None
    data_lines: list[bytes] = []
    for line in raw.splitlines():
        if not line or line[:1] == b":":
            continue
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            data_lines.append(value)
        elif name == b"event":
            event = value.decode("utf-8", "replace")
    return SSEEvent(event, b"\n".join(data_lines), raw)


class SSEParser:
    """Feed bytes, get complete events; ``close`` returns a final unterminated event, if any."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buffer = self._buffer + chunk if self._buffer else chunk
        events: list[SSEEvent] = []
        start = 0
        if b"\r" not in buffer:
            # Without CR the only event end is LF LF: a plain find, several times cheaper than
            # the regex, for the streams LLM APIs actually send.
            while True:
                end = buffer.find(b"\n\n", start)
                if end < 0:
                    break
                end += 2
                events.append(parse_event(buffer[start:end]))
                start = end
        else:
            while True:
                match = _EVENT_END.search(buffer, start)
                if match is None:
                    break
                end = match.end()
                events.append(parse_event(buffer[start:end]))
                start = end
        self._buffer = buffer[start:]
        return events

    def close(self) -> list[SSEEvent]:
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            return [parse_event(rest)]
        return []

    @property
    def pending(self) -> bytes:
        """Bytes received but not yet part of a complete event."""
        return self._buffer


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One SSE event; ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
