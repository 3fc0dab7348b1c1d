"""Google's Gemini API (``generateContent``): a client surface (Gemini CLI, google-genai, opencode)
and an upstream wire (AI Studio and Vertex Gemini).

The model and whether to stream are in the URL (``/v1beta/models/{model}:streamGenerateContent``),
so the body carries neither and a same-format request is forwarded with nothing renamed.
Streams are ``data:``-only events; a stream has ended properly when a chunk carried a
``finishReason`` — Gemini sends nothing after it — so one that closes without one was cut
short and gets an in-band error (Gemini CLI otherwise retries and prints the text again).
"""

from __future__ import annotations

import orjson

from keystile.accounting.meters import GeminiStreamMeter, is_gemini_content_chunk
from keystile.accounting.usage import Usage, usage_from_gemini
from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, GatewayError, error_body, kind_for_status
from keystile.formats.base import ClientRequest, EventDecoder, MeteredWatch
from keystile.formats.checks import looks_like_json_object, require_list
from keystile.providers.base import Operation
from keystile.sse import SSEEvent
from keystile.translate.gemini.request import (
    gemini_count_tokens_response,
    gemini_count_tokens_to_messages,
    gemini_request_to_messages,
    messages_request_to_gemini,
)
from keystile.translate.gemini.response import gemini_response_to_messages, messages_response_to_gemini
from keystile.translate.gemini.stream import GeminiStreamToMessages, MessagesStreamToGemini

API = ApiFormat.GEMINI
MALFORMED = "The upstream sent a malformed stream event."
# The fields of a Messages request Anthropic's count_tokens accepts (it refuses the others).
_COUNT_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")


def check_request(body: dict, operation: Operation) -> None:
    if operation is Operation.EMBEDDINGS:
        raise GatewayError(ErrorKind.NOT_FOUND, "This Gemini route has no embeddings.")
    if operation is Operation.COUNT_TOKENS and isinstance(body.get("generateContentRequest"), dict):
        require_list(body["generateContentRequest"], "contents")
        return
    require_list(body, "contents")


def forward(request: ClientRequest, upstream_model: str) -> dict:
    """The body for a Gemini upstream, from a Gemini client: the model is in the URL, not here."""
    return request.body


def to_hub(request: ClientRequest, *, upstream_model: str, default_max_tokens: int) -> dict:
    if request.operation is Operation.COUNT_TOKENS:
        hub = gemini_count_tokens_to_messages(request.body, upstream_model=upstream_model, default_max_tokens=default_max_tokens)
        return {k: v for k, v in hub.items() if k in _COUNT_FIELDS}
    return gemini_request_to_messages(
        request.body, upstream_model=upstream_model, stream=request.stream, default_max_tokens=default_max_tokens
    )


def from_hub(hub: dict, *, upstream_model: str, stream: bool) -> dict:
    return messages_request_to_gemini(hub)


def response_to_hub(obj: dict, *, model: str) -> dict:
    return gemini_response_to_messages(obj, model=model)


def response_from_hub(message: dict, request: ClientRequest) -> dict:
    return messages_response_to_gemini(message, model=request.model)


def usage(obj: dict) -> Usage:
    metadata = obj.get("usageMetadata")
    return usage_from_gemini(metadata if isinstance(metadata, dict) else None)


def stream_error(status: int, message: str) -> bytes:
    return b"data: " + orjson.dumps(error_body(API, kind_for_status(status), message, status=status)) + b"\r\n\r\n"


def count_from_hub(input_tokens: int) -> dict:
    return gemini_count_tokens_response(input_tokens)


def count_to_hub(obj: dict) -> int:
    value = obj.get("totalTokens")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "The upstream's token count has no totalTokens.")
    return value


class GeminiDecoder(EventDecoder):
    """A Gemini upstream's chunks → hub events; the message closes at the ``finishReason`` chunk."""

    __slots__ = ()

    def __init__(self, model: str) -> None:
        super().__init__(GeminiStreamToMessages(model))


class GeminiEncoder(MessagesStreamToGemini):
    """Hub events → Gemini chunks, every stream ending with a ``finishReason`` or an error chunk."""

    def __init__(self, request: ClientRequest) -> None:
        super().__init__(request.model)


class GeminiWatch(MeteredWatch):
    """A Gemini stream relayed as is: usage, the ``finishReason`` that ends it, error chunks."""

    __slots__ = ()
    meter_type = GeminiStreamMeter

    def observe(self, event: SSEEvent) -> bool:
        data = event.data
        if not data:
            return True
        if not looks_like_json_object(data):
            raise ValueError(MALFORMED)
        self.meter.observe(data)
        if is_gemini_content_chunk(data):
            self.content_events += 1
        if self.meter.error is not None:
            self.finished = self.failed = True
        return True

    def at_eof(self) -> bytes | None:
        return b"" if self.meter.finish_reason is not None else None


Decoder = GeminiDecoder
Encoder = GeminiEncoder
Watch = GeminiWatch
