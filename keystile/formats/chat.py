"""OpenAI Chat Completions (and Embeddings): a client surface and an upstream wire.

Conversions to and from the hub are the ``translate`` modules' Chat ⇄ Messages pairs.
Relayed as is, a Chat stream is watched for usage, its finish reason and ``[DONE]``.
keystile always asks a Chat upstream for the final usage chunk (it must charge); a client
that did not ask for it does not see it.
"""

from __future__ import annotations

import orjson

from keystile.accounting.meters import OpenAIStreamMeter, is_content_chunk, is_usage_only_chunk
from keystile.accounting.usage import Usage, usage_from_openai
from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, GatewayError, error_body, kind_for_status
from keystile.formats.base import ClientRequest, MeteredWatch
from keystile.formats.checks import invalid, looks_like_json_object, require_list
from keystile.providers.base import Operation
from keystile.sse import SSEEvent
from keystile.translate.request_to_anthropic import chat_request_to_messages
from keystile.translate.request_to_openai import messages_request_to_chat
from keystile.translate.response_to_anthropic import chat_response_to_messages
from keystile.translate.response_to_openai import messages_response_to_chat
from keystile.translate.stream_to_anthropic import ChatStreamToMessages
from keystile.translate.stream_to_openai import MessagesStreamToChat

API = ApiFormat.OPENAI
MALFORMED = "The upstream sent a malformed stream event."
_DONE = b"data: [DONE]\n\n"


def check_request(body: dict, operation: Operation) -> None:
    if operation is Operation.EMBEDDINGS:
        if body.get("input") is None:
            raise invalid("input: field required.", "input")
        return
    if operation is Operation.COUNT_TOKENS:
        raise GatewayError(ErrorKind.NOT_FOUND, "Chat Completions has no token-counting route.")
    require_list(body, "messages")


def wants_usage(body: dict) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def forward(request: ClientRequest, upstream_model: str) -> dict:
    """The body for a Chat upstream, from a Chat client: the model renamed, and on a stream
    the final usage chunk asked for."""
    body = request.body
    changes: dict = {}
    if body.get("model") != upstream_model:
        changes["model"] = upstream_model
    if request.stream and request.operation is Operation.GENERATE and not wants_usage(body):
        options = body.get("stream_options")
        changes["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
    return {**body, **changes} if changes else body


def to_hub(request: ClientRequest, *, upstream_model: str, default_max_tokens: int) -> dict:
    return chat_request_to_messages(request.body, upstream_model=upstream_model, default_max_tokens=default_max_tokens)


def from_hub(hub: dict, *, upstream_model: str, stream: bool) -> dict:
    return messages_request_to_chat(hub, upstream_model=upstream_model)


def response_to_hub(obj: dict, *, model: str) -> dict:
    return chat_response_to_messages(obj)


def response_from_hub(message: dict, request: ClientRequest) -> dict:
    return messages_response_to_chat(message)


def usage(obj: dict) -> Usage:
    return usage_from_openai(obj.get("usage"))


def stream_error(status: int, message: str) -> bytes:
    return b"data: " + orjson.dumps(error_body(API, kind_for_status(status), message)) + b"\n\n"


class ChatDecoder:
    """A Chat upstream's chunks → hub events (``ChatStreamToMessages``); its end is parsed, not guessed."""

    __slots__ = ("translator", "failed")

    def __init__(self, model: str = "") -> None:
        self.translator = ChatStreamToMessages()
        self.failed = False

    @property
    def usage(self) -> Usage:
        return self.translator.usage

    @property
    def finished(self) -> bool:
        return self.translator.finished

    @property
    def complete(self) -> bool:
        """A finish reason arrived (or ``[DONE]``, which makes the translator finish)."""
        return self.translator.finish_reason is not None or (self.translator.finished and not self.failed)

    def feed(self, event: SSEEvent) -> bytes:
        translator = self.translator
        if translator.finished or not event.data:
            return b""
        out = translator.feed(event.data)
        if translator.finished and event.data.strip() != b"[DONE]":
            self.failed = True  # only an in-band error ends the translation before [DONE]
        return out

    def finish(self) -> bytes:
        return self.translator.finish()


class ChatEncoder(MessagesStreamToChat):
    """Hub events → Chat chunks, with the usage chunk only if the client asked for it."""

    def __init__(self, request: ClientRequest) -> None:
        super().__init__(include_usage=wants_usage(request.body))


class ChatWatch(MeteredWatch):
    """A Chat stream relayed byte for byte: usage, finish reason, ``[DONE]``, in-band errors."""

    __slots__ = ("strip_usage",)
    meter_type = OpenAIStreamMeter

    def __init__(self, request: ClientRequest) -> None:
        super().__init__(request)
        self.strip_usage = not wants_usage(request.body)

    def observe(self, event: SSEEvent) -> bool:
        data = event.data
        if data == b"[DONE]":
            self.finished = True
            return True
        if not data:
            return True
        if not looks_like_json_object(data):
            raise ValueError(MALFORMED)
        meter = self.meter
        meter.observe(data)
        if is_content_chunk(data):
            self.content_events += 1
        if meter.error is not None:
            self.finished = self.failed = True
            return True
        return not (self.strip_usage and is_usage_only_chunk(data))

    def at_eof(self) -> bytes | None:
        if self.finished:
            return b""
        if self.meter.finish_reason is not None:  # complete; the server just never sent [DONE]
            self.finished = True
            return _DONE
        return None


Decoder = ChatDecoder
Encoder = ChatEncoder
Watch = ChatWatch
