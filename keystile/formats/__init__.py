"""Every API format keystile speaks, in one registry: ``FORMATS[ApiFormat]``.

Each entry is a module (``messages``, ``chat``, …) with the same names, so the inference
handler never asks which format it holds:

- a client side — ``check_request``, ``forward`` (same format upstream), ``to_hub``,
  ``response_from_hub``, ``Encoder`` (hub stream → this format), ``Watch`` (a same-format
  stream relayed as is), ``stream_error``;
- an upstream side — ``from_hub``, ``response_to_hub``, ``usage``, ``Decoder`` (this
  format's stream → hub);
- token counts where the format has them — ``count_from_hub`` / ``count_to_hub``;
- optionally ``Parser`` (its stream framing, when not SSE: Bedrock's event-stream),
  ``STREAM_HEADERS`` (a stream's content type, when not SSE) and ``headers_from_body``
  (request headers a client puts in its body: Bedrock's ``anthropic_beta``).

The hub is Anthropic Messages (see ``formats.base``).
"""

from __future__ import annotations

from types import ModuleType

from keystile.apiformat import ApiFormat
from keystile.formats import bedrock, chat, gemini, messages, responses, vertex
from keystile.sse import SSEParser

FORMATS: dict[ApiFormat, ModuleType] = {
    ApiFormat.ANTHROPIC: messages,
    ApiFormat.OPENAI: chat,
    ApiFormat.RESPONSES: responses,
    ApiFormat.GEMINI: gemini,
    ApiFormat.BEDROCK: bedrock,
    ApiFormat.VERTEX: vertex,
}


PARSERS: dict[ApiFormat, type] = {fmt: getattr(module, "Parser", SSEParser) for fmt, module in FORMATS.items()}
"""The class that splits each wire format's stream into events (SSE unless the format says otherwise)."""
STREAM_HEADERS: dict[ApiFormat, list[tuple[bytes, bytes]]] = {
    fmt: module.STREAM_HEADERS for fmt, module in FORMATS.items() if hasattr(module, "STREAM_HEADERS")
}
"""A stream's response headers, for the client formats whose streams are not SSE."""


HEADERS_IN_BODY = {ApiFormat.BEDROCK: bedrock.headers_from_body}
"""Client formats that carry request headers in their body: ``fmt`` → ``headers_from_body(body, seen)``."""
EVENT_FORMAT = {ApiFormat.BEDROCK: ApiFormat.ANTHROPIC}
"""Wire formats whose parsed stream events are in another format's shape (Bedrock's frames parse to Messages events)."""
