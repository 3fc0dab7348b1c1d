"""AWS Bedrock InvokeModel for Anthropic models: a client surface (Claude Code's Bedrock mode,
``AnthropicBedrock``) and an upstream wire (the ``bedrock`` provider).

It is Anthropic Messages in another envelope, so nothing inside a message is translated:

- request: a Messages body without ``model`` (it is in the path, ``/model/{id}/invoke``) and
  without ``stream`` (``/invoke-with-response-stream`` streams), with
  ``anthropic_version: "bedrock-2023-05-31"`` and the betas as a list in ``anthropic_beta``;
- answer: a Messages response, byte for byte;
- stream: AWS event-stream frames (``keystile.eventstream``); each ``chunk`` event carries
  ``{"bytes": base64(<one Messages stream event>)}``, and a failure is an ``exception`` frame
  (``throttlingException``, ``modelStreamErrorException``, …) — relayed frame for frame
  between Bedrock on both sides, re-framed to and from SSE otherwise;
- errors: ``{"message": …}`` with the error's name in ``x-amzn-ErrorType``.

``Parser`` turns frames into events shaped like the SSE parser's (the Messages event type, its
JSON, the frame's raw bytes), so the relays and the Messages meters work on them unchanged.
Inside keystile a request's betas travel as the ``anthropic-beta`` header: ``headers_from_body``
reads a Bedrock client's list into it, and the ``bedrock`` provider writes it back into the body.
"""

from __future__ import annotations

import base64
import binascii
import re

import orjson

from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, GatewayError, error_body, kind_for_status
from keystile.eventstream import EventStreamError, EventStreamParser, encode_headers, encode_message
from keystile.formats import messages
from keystile.formats.base import ClientRequest
from keystile.formats.checks import invalid, quote, require_list, require_positive_int
from keystile.providers.base import Operation
from keystile.sse import SSEEvent, encode_event
from keystile.translate.errors import error_kind_of
from keystile.translate.invalid_request import json_type_name

API = ApiFormat.BEDROCK
VERSION = "bedrock-2023-05-31"
ENVELOPE = ("anthropic_version", "anthropic_beta")
"""Body fields that are Bedrock's envelope, not part of the Messages request."""
STREAM_HEADERS = [
    (b"content-type", b"application/vnd.amazon.eventstream"),
    (b"x-amzn-bedrock-content-type", b"application/json"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
MALFORMED = "The upstream sent a malformed event-stream frame."

# Bedrock's stream exceptions (the ResponseStream union) and what each stands for.
_EXCEPTION_KIND = {
    "throttlingException": ErrorKind.RATE_LIMITED,
    "modelStreamErrorException": ErrorKind.UPSTREAM_ERROR,
    "internalServerException": ErrorKind.INTERNAL,
    "serviceUnavailableException": ErrorKind.UNAVAILABLE,
    "validationException": ErrorKind.INVALID_REQUEST,
    "modelTimeoutException": ErrorKind.UPSTREAM_TIMEOUT,
}
_KIND_EXCEPTION = {
    ErrorKind.RATE_LIMITED: "throttlingException",
    ErrorKind.INTERNAL: "internalServerException",
    ErrorKind.UNAVAILABLE: "serviceUnavailableException",
    ErrorKind.OVERLOADED: "serviceUnavailableException",
    ErrorKind.INVALID_REQUEST: "validationException",
    ErrorKind.REQUEST_TOO_LARGE: "validationException",
    ErrorKind.UPSTREAM_TIMEOUT: "modelTimeoutException",
    ErrorKind.REQUEST_TIMEOUT: "modelTimeoutException",
}
_BETA_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_CHUNK_HEADERS = encode_headers({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"})


def check_request(body: dict, operation: Operation) -> None:
    if operation is not Operation.GENERATE:
        raise GatewayError(ErrorKind.NOT_FOUND, "Bedrock's InvokeModel route only generates.")
    require_list(body, "messages")
    require_positive_int(body, "max_tokens", allow_zero=True)
    betas = body.get("anthropic_beta")
    if betas is not None:
        if not isinstance(betas, list) or not all(isinstance(b, str) for b in betas):
            raise invalid(f"anthropic_beta: expected a list of strings, got {json_type_name(betas)}.", "anthropic_beta")
        for beta in betas:  # they become a header for other upstreams: names only, no separators or line breaks
            if _BETA_NAME.fullmatch(beta) is None:
                raise invalid(f"anthropic_beta: {quote(beta, 60)} is not a beta flag name.", "anthropic_beta")


def headers_from_body(body: dict, seen: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """The request headers as the pipeline reads them, with the betas of ``anthropic_beta``.

    Bedrock honours the body's list only (Claude Code also sends an ``anthropic-beta`` header
    in this mode, which Bedrock ignores), so that list replaces the header."""
    betas = body.get("anthropic_beta")
    out = {name: value for name, value in seen.items() if name != b"anthropic-beta"}
    if betas:
        out[b"anthropic-beta"] = ",".join(betas).encode()  # checked: ASCII names
    return out


def forward(request: ClientRequest, upstream_model: str) -> dict:
    """The body for a Bedrock upstream, from a Bedrock client: as it came (the model is in the path)."""
    return request.body


def to_hub(request: ClientRequest, *, upstream_model: str, default_max_tokens: int) -> dict:
    hub = {k: v for k, v in request.body.items() if k not in ENVELOPE and k != "model"}
    hub["model"] = upstream_model
    if request.stream:
        hub["stream"] = True
    else:
        hub.pop("stream", None)
    return hub


def from_hub(hub: dict, *, upstream_model: str, stream: bool) -> dict:
    """Bedrock's envelope around a Messages request; its betas are added by the provider."""
    body = {k: v for k, v in hub.items() if k not in ("model", "stream", "anthropic_beta")}
    body["anthropic_version"] = VERSION
    return body


response_to_hub = messages.response_to_hub
usage = messages.usage


def response_from_hub(message: dict, request: ClientRequest) -> dict:
    return message


def stream_error(status: int, message: str) -> bytes:
    return exception_frame(_KIND_EXCEPTION.get(kind_for_status(status), "modelStreamErrorException"), message)


def exception_frame(name: str, message: str) -> bytes:
    headers = {":exception-type": name, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, orjson.dumps({"message": message}))


def chunk_frame(event_json: bytes) -> bytes:
    """One Messages stream event as Bedrock frames it."""
    return encode_message(_CHUNK_HEADERS, b'{"bytes":"' + base64.b64encode(event_json) + b'"}')


class BedrockStreamParser:
    """Event-stream frames → events shaped as ``SSEEvent``: (Messages event type, its JSON, the frame).

    An exception frame becomes an ``error`` event carrying an Anthropic error object (its type
    from the exception's name), so meters, relays and retries read it like Anthropic's own.
    Frames of no known kind come out with no event and no data (relayed as they are, else ignored).
    """

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames = EventStreamParser()

    @property
    def pending(self) -> bytes:
        return self.frames.pending

    def close(self) -> list[SSEEvent]:
        self.frames.close()
        return []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """The events of the frames complete so far; ``EventStreamError`` (with the events before
        it in ``parsed``) for a frame that breaks its framing or carries no Messages event."""
        broken: EventStreamError | None = None
        try:
            frames = self.frames.feed(chunk)
        except EventStreamError as exc:
            frames, broken = exc.parsed, exc
        events = []
        for frame in frames:
            headers = frame.headers
            kind = headers.get(":message-type")
            if kind == "event" and headers.get(":event-type") == "chunk":
                event = _chunk_event(frame.payload, frame.raw)
                if event is None:
                    raise EventStreamError(MALFORMED, events)
                events.append(event)
            elif kind in ("exception", "error"):
                name = headers.get(":exception-type") or headers.get(":error-code") or "internalServerException"
                events.append(SSEEvent("error", _error_data(str(name), frame.payload, headers), frame.raw))
            else:
                events.append(SSEEvent(None, b"", frame.raw))
        if broken is not None:
            raise EventStreamError(str(broken), events)
        return events


def _chunk_event(payload: bytes, raw: bytes) -> SSEEvent | None:
    """The Messages event a ``chunk`` frame carries; None if it carries none."""
    try:
        data = base64.b64decode(orjson.loads(payload)["bytes"], validate=True)
        name = orjson.loads(data)["type"]
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
        return None
    return SSEEvent(name, data, raw) if isinstance(name, str) else None


def _error_data(name: str, payload: bytes, headers: dict[str, object]) -> bytes:
    message = headers.get(":error-message")
    try:
        obj = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        obj = None
    if isinstance(obj, dict) and isinstance(obj.get("message"), str):
        message = obj["message"]
    kind = _EXCEPTION_KIND.get(name[:1].lower() + name[1:], ErrorKind.UPSTREAM_ERROR)
    return orjson.dumps(error_body(ApiFormat.ANTHROPIC, kind, f"{name}: {message or 'the stream failed'}"))


class BedrockDecoder(messages.MessagesDecoder):
    """A Bedrock upstream's events → hub SSE events: the same events, re-framed."""

    __slots__ = ()

    def feed(self, event: SSEEvent) -> bytes:
        if event.event is None or not event.data:
            return b""
        super().feed(event)
        return encode_event(event.data, event.event)


class BedrockEncoder(messages.MessagesEncoder):
    """Hub events → Bedrock frames for a Bedrock client; an error event becomes an exception frame."""

    __slots__ = ()

    def feed(self, event: str | None, data: bytes) -> bytes:
        if self.finished or not data:
            return b""
        self.meter.observe(event, data)
        if event == "error":
            self.finished = True
            try:
                obj = orjson.loads(data)
            except orjson.JSONDecodeError:
                obj = None
            kind = error_kind_of(obj) or ErrorKind.UPSTREAM_ERROR
            inner = obj.get("error") if isinstance(obj, dict) else None
            message = inner.get("message") if isinstance(inner, dict) else None
            return exception_frame(_KIND_EXCEPTION.get(kind, "modelStreamErrorException"), str(message or "The stream failed."))
        if event == "message_stop":
            self.finished = True
        return chunk_frame(data)

    def fail(self, status: int, message: str) -> bytes:
        if self.finished:
            return b""
        self.finished = True
        return stream_error(status, message)


Parser = BedrockStreamParser
Decoder = BedrockDecoder
Encoder = BedrockEncoder
Watch = messages.MessagesWatch
"""A Bedrock stream relayed frame for frame: the parser's events are Messages events, so the Messages watch reads them."""
