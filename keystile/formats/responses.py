"""OpenAI Responses (``POST /v1/responses``): a client surface (Codex CLI, the OpenAI SDK, opencode)
and an upstream wire (OpenAI, Azure and compatible servers whose ``wire_api`` has it).

keystile is stateless: a request carries its whole history (``store: false`` and Codex's
full-history turns work everywhere). ``previous_response_id`` refers to state an upstream
keeps, so it is passed through to an OpenAI Responses upstream as it is and refused with a
400 whenever the request has to be translated (``translate.responses``). A relayed Responses
stream has ended properly at ``response.completed`` or ``response.incomplete``; one that
closes without either gets an in-band ``error`` + ``response.failed`` (Codex reports "stream
closed before response.completed" and retries otherwise).
"""

from __future__ import annotations

import orjson

from keystile.accounting.meters import ResponsesStreamMeter
from keystile.accounting.usage import Usage, usage_from_responses
from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, GatewayError, kind_for_status
from keystile.formats.base import ClientRequest, EventDecoder, MeteredWatch
from keystile.formats.checks import invalid, looks_like_json_object
from keystile.providers.base import Operation
from keystile.sse import SSEEvent, encode_event
from keystile.translate.invalid_request import json_type_name
from keystile.translate.responses.request import messages_request_to_responses, responses_request_to_messages
from keystile.translate.responses.response import messages_response_to_responses, responses_response_to_messages
from keystile.translate.responses.stream import MessagesStreamToResponses, ResponsesStreamToMessages

API = ApiFormat.RESPONSES
MALFORMED = "The upstream sent a malformed stream event."
# Event names whose payload carries output (each at least one token of the answer).
_CONTENT_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
    }
)


def check_request(body: dict, operation: Operation) -> None:
    if operation is not Operation.GENERATE:
        raise GatewayError(ErrorKind.NOT_FOUND, "The Responses API has no such route.")
    value = body.get("input")
    if value is None:
        raise invalid("input: field required.", "input")
    if not isinstance(value, (str, list)):
        raise invalid(f"input: expected a string or a list of items, got {json_type_name(value)}.", "input")


def forward(request: ClientRequest, upstream_model: str) -> dict:
    """The body for a Responses upstream, from a Responses client: only the model is renamed."""
    body = request.body
    return body if body.get("model") == upstream_model else {**body, "model": upstream_model}


def to_hub(request: ClientRequest, *, upstream_model: str, default_max_tokens: int) -> dict:
    return responses_request_to_messages(request.body, upstream_model=upstream_model, default_max_tokens=default_max_tokens)


def from_hub(hub: dict, *, upstream_model: str, stream: bool) -> dict:
    return messages_request_to_responses(hub, upstream_model=upstream_model)


def response_to_hub(obj: dict, *, model: str) -> dict:
    return responses_response_to_messages(obj)


def response_from_hub(message: dict, request: ClientRequest) -> dict:
    return messages_response_to_responses(message, request=request.body)


def usage(obj: dict) -> Usage:
    raw = obj.get("usage")
    return usage_from_responses(raw if isinstance(raw, dict) else None)


def stream_error(status: int, message: str) -> bytes:
    """An ``error`` event then ``response.failed``: what OpenAI sends when a response fails mid-way."""
    kind = kind_for_status(status)
    code = "rate_limit_exceeded" if kind is ErrorKind.RATE_LIMITED else "server_error"
    error = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": 0}
    failed = {
        "type": "response.failed",
        "sequence_number": 1,
        "response": {"object": "response", "status": "failed", "error": {"code": code, "message": message}, "output": []},
    }
    return encode_event(orjson.dumps(error), "error") + encode_event(orjson.dumps(failed), "response.failed")


class ResponsesDecoder(EventDecoder):
    """A Responses upstream's events → hub events (``ResponsesStreamToMessages``)."""

    __slots__ = ()

    def __init__(self, model: str = "") -> None:
        super().__init__(ResponsesStreamToMessages())


class ResponsesEncoder(MessagesStreamToResponses):
    """Hub events → the full Responses event sequence, ``response.created`` to ``response.completed``."""

    def __init__(self, request: ClientRequest) -> None:
        super().__init__(request.body)


class ResponsesWatch(MeteredWatch):
    """A Responses stream relayed as is: usage from its terminal event, its end, its errors."""

    __slots__ = ()
    meter_type = ResponsesStreamMeter

    def observe(self, event: SSEEvent) -> bool:
        data = event.data
        if not data:
            return True
        if not looks_like_json_object(data):
            raise ValueError(MALFORMED)
        name = event.event
        if name in _CONTENT_EVENTS:
            self.content_events += 1
        meter = self.meter
        meter.observe(name, data)
        if meter.finished or meter.error is not None:
            # An ``error`` event is followed by ``response.failed``: relay both, then stop.
            self.failed = meter.error is not None
            self.finished = meter.finished
        return True

    def at_eof(self) -> bytes | None:
        return b"" if self.finished else None


Decoder = ResponsesDecoder
Encoder = ResponsesEncoder
Watch = ResponsesWatch
