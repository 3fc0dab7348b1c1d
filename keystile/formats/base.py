"""What every API format provides, and the request it hands the pipeline.

keystile's internal form is Anthropic Messages: a client request in any other format is
converted to a Messages request (``to_hub``) and from there to the upstream's format
(``from_hub``); answers travel back the same way (``response_to_hub`` then
``response_from_hub``; streams through a decoder and an encoder that speak Anthropic's SSE
events in the middle). A client and an upstream in the same format skip all of it: the
body is forwarded as received (``forward_body``) and the stream relayed event by event
(``passthrough``). N formats therefore need N converters each way, not N × N.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.sse import SSEEvent

if TYPE_CHECKING:
    from keystile.providers.base import Operation


@dataclass(slots=True)
class ClientRequest:
    """A client's request, parsed just enough to authorize and route it."""

    raw: bytes
    body: dict
    model: str
    """The model the client asked for (from the body, or from the path for Gemini and Azure)."""
    stream: bool
    query: bytes
    fmt: ApiFormat
    operation: "Operation"
    hub: dict | None = field(default=None)
    """The request as Anthropic Messages, built once when some attempt needs a translation."""


class StreamDecoder(Protocol):
    """An upstream's stream → Anthropic SSE events (bytes), one upstream event at a time."""

    usage: Usage
    finished: bool
    """Its terminal event (``message_stop`` or ``error``) has been produced."""
    complete: bool
    """The upstream signalled a proper end (its finish reason, ``[DONE]``, ``response.completed``)."""
    failed: bool
    """The upstream sent an in-band error."""

    def feed(self, event: SSEEvent) -> bytes: ...

    def finish(self) -> bytes:
        """The upstream ended after ``complete``: close the Messages stream."""
        ...


class EventTranslator(Protocol):
    """What the ``translate`` stream decoders that take (event name, data) look like."""

    usage: Usage
    finished: bool
    complete: bool
    failed: bool

    def feed(self, event: str | None, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class EventDecoder:
    """A ``StreamDecoder`` around a ``translate`` decoder fed with each event's name and data."""

    __slots__ = ("translator",)

    def __init__(self, translator: EventTranslator) -> None:
        self.translator = translator

    @property
    def usage(self) -> Usage:
        return self.translator.usage

    @property
    def finished(self) -> bool:
        return self.translator.finished

    @property
    def complete(self) -> bool:
        return self.translator.complete

    @property
    def failed(self) -> bool:
        return self.translator.failed

    def feed(self, event: SSEEvent) -> bytes:
        return self.translator.feed(event.event, event.data) if event.data else b""

    def finish(self) -> bytes:
        return self.translator.finish()


class StreamEncoder(Protocol):
    """Anthropic SSE events → a client format's stream."""

    usage: Usage
    finished: bool

    def feed(self, event: str | None, data: bytes) -> bytes: ...

    def finish(self) -> bytes:
        """The Messages stream ended without ``message_stop`` but cleanly: close this one anyway."""
        ...

    def fail(self, status: int, message: str) -> bytes:
        """An in-band error in this format: the stream ends with it."""
        ...


class MeteredWatch:
    """What every format's ``PassthroughWatch`` keeps: its stream's meter (``meter_type``, the
    format's usage reader), whether the stream ended or failed, and how many content events it
    carried. A format's watch adds only how it reads its events (``observe``, ``at_eof``)."""

    __slots__ = ("meter", "finished", "failed", "content_events")
    meter_type: type

    def __init__(self, request: ClientRequest | None = None) -> None:
        self.meter = self.meter_type()
        self.finished = self.failed = False
        self.content_events = 0

    @property
    def usage(self) -> Usage:
        return self.meter.usage


class PassthroughWatch(Protocol):
    """Watches a same-format stream that is relayed byte for byte: usage, its end, its errors."""

    usage: Usage
    finished: bool
    failed: bool
    content_events: int

    def observe(self, event: SSEEvent) -> bool:
        """Read one event; False drops it from what the client sees."""
        ...

    def at_eof(self) -> bytes | None:
        """The upstream closed the stream: closing bytes if it had ended properly, None if it was cut short."""
        ...
