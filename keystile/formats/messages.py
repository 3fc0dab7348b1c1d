"""Anthropic Messages: keystile's internal form, a client surface and an upstream wire.

As the hub, its conversions are identities: a Messages request *is* the internal request,
a Messages stream *is* the internal stream. What this module adds is reading a client's
request, watching a relayed stream (usage, ``message_stop``, in-band ``error`` events) and
Anthropic's error shapes.
"""

from __future__ import annotations

import orjson

from keystile.accounting.meters import AnthropicStreamMeter
from keystile.accounting.usage import Usage, usage_from_anthropic
from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, GatewayError, error_body, kind_for_status
from keystile.formats.base import ClientRequest, MeteredWatch
from keystile.formats.checks import looks_like_json_object, require_list, require_positive_int
from keystile.providers.base import Operation
from keystile.sse import SSEEvent, encode_event

API = ApiFormat.ANTHROPIC
MALFORMED = "The upstream sent a malformed stream event."


def check_request(body: dict, operation: Operation) -> None:
    """The fields keystile itself needs before routing; the upstream (or a translator) checks the rest."""
    if operation is Operation.EMBEDDINGS:
        raise GatewayError(ErrorKind.NOT_FOUND, "The Messages API has no embeddings route.")
    require_list(body, "messages")
    if operation is Operation.GENERATE:
        require_positive_int(body, "max_tokens", allow_zero=True)


def to_hub(request: ClientRequest, *, upstream_model: str, default_max_tokens: int) -> dict:
    return {**request.body, "model": upstream_model}


def from_hub(hub: dict, *, upstream_model: str, stream: bool) -> dict:
    return hub if hub.get("model") == upstream_model else {**hub, "model": upstream_model}


def forward(request: ClientRequest, upstream_model: str) -> dict:
    """The body for a Messages upstream, from a Messages client: only the model is renamed."""
    return request.body if request.body.get("model") == upstream_model else {**request.body, "model": upstream_model}


def response_to_hub(obj: dict, *, model: str) -> dict:
    if not isinstance(obj.get("content"), list):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "The upstream's answer is not an Anthropic message (no content).")
    return obj


def response_from_hub(message: dict, request: ClientRequest) -> dict:
    return message


def usage(obj: dict) -> Usage:
    return usage_from_anthropic(obj.get("usage"))


def stream_error(status: int, message: str) -> bytes:
    return encode_event(orjson.dumps(error_body(API, kind_for_status(status), message)), "error")


def count_from_hub(input_tokens: int) -> dict:
    return {"input_tokens": input_tokens}


def count_to_hub(obj: dict) -> int:
    value = obj.get("input_tokens")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "The upstream's token count has no input_tokens.")
    return value


class MessagesDecoder:
    """A Messages upstream's events, unchanged: the hub stream is the upstream's own."""

    __slots__ = ("meter", "finished", "complete", "failed")

    def __init__(self, model: str = "") -> None:
        self.meter = AnthropicStreamMeter()
        self.finished = self.complete = self.failed = False

    @property
    def usage(self) -> Usage:
        return self.meter.usage

    def feed(self, event: SSEEvent) -> bytes:
        if self.finished:
            return b""
        name = event.event
        self.meter.observe(name, event.data)
        if name == "message_stop":
            self.finished = self.complete = True
        elif name == "error":
            self.finished = self.failed = True
        return event.raw

    def finish(self) -> bytes:
        return b""


class MessagesEncoder:
    """Hub events to a Messages client: re-framed as they are (a translated stream's last hop)."""

    __slots__ = ("meter", "finished")

    def __init__(self, request: ClientRequest | None = None) -> None:
        self.meter = AnthropicStreamMeter()
        self.finished = False

    @property
    def usage(self) -> Usage:
        return self.meter.usage

    def feed(self, event: str | None, data: bytes) -> bytes:
        if self.finished:
            return b""
        self.meter.observe(event, data)
        if event in ("message_stop", "error"):
            self.finished = True
        return encode_event(data, event)

    def finish(self) -> bytes:
        return b""

    def fail(self, status: int, message: str) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        return stream_error(status, message)


class MessagesWatch(MeteredWatch):
    """A Messages stream relayed byte for byte, Anthropic upstream to Anthropic client."""

    __slots__ = ()
    meter_type = AnthropicStreamMeter

    def observe(self, event: SSEEvent) -> bool:
        if event.data and not looks_like_json_object(event.data):
            raise ValueError(MALFORMED)
        name = event.event
        self.meter.observe(name, event.data)
        if name == "content_block_delta":
            self.content_events += 1
        elif name == "message_stop":
            self.finished = True
        elif name == "error":
            self.finished = self.failed = True
        return True

    def at_eof(self) -> bytes | None:
        return b"" if self.finished else None


Decoder = MessagesDecoder
Encoder = MessagesEncoder
Watch = MessagesWatch
