"""Relays: turn an upstream stream into the client's stream, event by event.

Each relay takes upstream bytes as they arrive and returns the bytes to send the client
now — complete events only, never held back longer than it takes to see an event's end.
Upstream bytes are split into events by the wire format's parser: SSE, or Bedrock's AWS
event-stream frames (``formats.PARSERS``).

- ``PassthroughRelay`` (same format on both sides, or Messages and Vertex, whose streams are
  the same) forwards each event's exact bytes while the format's watch reads usage and
  notices the end and in-band errors.
- ``TranslatingRelay`` runs the upstream's decoder (its format → Anthropic events, the hub)
  and the client's encoder (hub → its format); either may be the identity.

Every relay knows whether the upstream ended properly — from parsed events, never a byte
pattern — so a stream cut short, or one that carried an upstream error, ends with the
client format's in-band error and is accounted as failed, with the status the error meant.
"""

from __future__ import annotations

from typing import Callable, Protocol

import orjson

from keystile.accounting.usage import Usage
from keystile.errors import ErrorKind
from keystile.apiformat import ANTHROPIC_SHAPED, ApiFormat
from keystile.formats import FORMATS, PARSERS
from keystile.formats.base import ClientRequest, PassthroughWatch, StreamDecoder, StreamEncoder
from keystile.formats.checks import looks_like_json_object
from keystile.sse import SSEParser
from keystile.translate.errors import error_kind_of

TRUNCATED = "The upstream stream ended before it was complete."
MALFORMED = "The upstream sent a malformed stream event."


class Relay(Protocol):
    usage: Usage
    failed: bool
    """An error was relayed or produced: the stream did not end well."""
    error_status: int
    """The HTTP status the failure stands for (502 for a stream cut short)."""
    content_events: int
    """Events that carried output (text, thinking or tool input): each is at least one output
    token, which is what a stream cut off before its final usage report is charged."""

    def feed(self, chunk: bytes) -> bytes: ...

    def end(self) -> bytes:
        """Upstream EOF: the closing bytes, or an in-band error if the stream was cut short."""
        ...

    def fail(self, status: int, message: str) -> bytes:
        """A failure on keystile's side of the stream, as the client format's in-band error."""
        ...


class _RelayBase:
    """What both relays share: the upstream's parser, the end of the stream, an in-band failure."""

    __slots__ = ("parser", "done", "failed", "error_status")

    def __init__(self, parser: SSEParser | None) -> None:
        self.parser = parser or SSEParser()
        self.done = False
        self.failed = False
        self.error_status = 0

    def feed(self, chunk: bytes) -> bytes:
        raise NotImplementedError

    def end(self) -> bytes:
        if self.done:
            return b""
        tail = self.feed(b"\n\n") if self.parser.pending.strip() else b""
        if self.done:
            return tail
        return tail + self._at_eof()

    def fail(self, status: int, message: str) -> bytes:
        if self.done:
            return b""
        self.done = self.failed = True
        self.error_status = status
        return self._in_band_error(status, message)

    def _parsed(self, chunk: bytes) -> tuple[list, str | None]:
        """The events in ``chunk``, and why a frame broke its framing (Bedrock's checksums) if one
        did: the events before it still go."""
        try:
            return self.parser.feed(chunk), None
        except ValueError as exc:
            return getattr(exc, "parsed", []), str(exc)

    def _at_eof(self) -> bytes:
        """The upstream closed the stream (nothing pending): the client's closing bytes."""
        raise NotImplementedError

    def _in_band_error(self, status: int, message: str) -> bytes:
        raise NotImplementedError


class PassthroughRelay(_RelayBase):
    """Same format on both sides: complete events are forwarded as received."""

    __slots__ = ("watch", "stream_error")

    def __init__(self, watch: PassthroughWatch, stream_error: Callable[[int, str], bytes], parser: SSEParser | None = None) -> None:
        super().__init__(parser)
        self.watch = watch
        self.stream_error = stream_error

    @property
    def usage(self) -> Usage:
        return self.watch.usage

    @property
    def content_events(self) -> int:
        return self.watch.content_events

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        out = []
        watch = self.watch
        events, broken = self._parsed(chunk)
        for event in events:
            try:
                keep = watch.observe(event)
            except ValueError as exc:
                out.append(self.fail(502, str(exc)))
                break
            if keep:
                out.append(event.raw)
            if watch.finished:
                self.done = True
                if watch.failed:
                    self.failed = True
                    self.error_status = _status_of(event.data)
                break
        if broken is not None:
            out.append(self.fail(502, broken))
        return b"".join(out)

    def _at_eof(self) -> bytes:
        closing = self.watch.at_eof()
        if closing is None:
            return self.fail(502, TRUNCATED)
        self.done = True
        return closing

    def _in_band_error(self, status: int, message: str) -> bytes:
        return self.stream_error(status, message)


class TranslatingRelay(_RelayBase):
    """Different formats: upstream events → decoder → hub events → encoder → client events."""

    __slots__ = ("hub", "decoder", "encoder", "content_events")

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder, parser: SSEParser | None = None) -> None:
        super().__init__(parser)
        self.hub = SSEParser()
        self.decoder = decoder
        self.encoder = encoder
        self.content_events = 0

    @property
    def usage(self) -> Usage:
        return self.decoder.usage

    def feed(self, chunk: bytes) -> bytes:
        if self.done:
            return b""
        out = []
        decoder = self.decoder
        events, broken = self._parsed(chunk)
        for event in events:
            data = event.data
            if data and data != b"[DONE]" and not looks_like_json_object(data):
                out.append(self.fail(502, MALFORMED))
                break
            out.append(self._through(decoder.feed(event)))
            if self.done:
                break
        if broken is not None:
            out.append(self.fail(502, broken))
        return b"".join(out)

    def _through(self, hub: bytes) -> bytes:
        """Hub bytes the decoder produced → the client's bytes."""
        if not hub:
            return b""
        out = []
        encoder = self.encoder
        for event in self.hub.feed(hub):
            name = event.event
            if name == "content_block_delta":
                self.content_events += 1
            elif name == "error":
                self.failed = True
                self.error_status = _status_of(event.data)
            out.append(encoder.feed(name, event.data))
            if encoder.finished:
                self.done = True
                break
        return b"".join(out)

    def _at_eof(self) -> bytes:
        decoder = self.decoder
        if decoder.complete and not decoder.failed:
            tail = self._through(decoder.finish())
            if not self.done:
                self.done = True
                tail += self.encoder.finish()
            return tail
        return self.fail(502, TRUNCATED)

    def _in_band_error(self, status: int, message: str) -> bytes:
        return self.encoder.fail(status, message)


def make_relay(request: ClientRequest, wire: ApiFormat, upstream_model: str) -> Relay:
    """The relay from an upstream speaking ``wire`` to the client that sent ``request``."""
    client = FORMATS[request.fmt]
    if wire is request.fmt or (wire, request.fmt) in ANTHROPIC_SHAPED:
        return PassthroughRelay(client.Watch(request), client.stream_error, PARSERS[wire]())
    return TranslatingRelay(FORMATS[wire].Decoder(upstream_model), client.Encoder(request), PARSERS[wire]())


def _status_of(data: bytes) -> int:
    """The HTTP status an in-band error event stands for (its type or code); 502 if unknown."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return ErrorKind.UPSTREAM_ERROR.status
    kind = error_kind_of(obj)
    return kind.status if kind is not None else ErrorKind.UPSTREAM_ERROR.status
