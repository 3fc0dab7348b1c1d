"""Anthropic models on Google Vertex AI (``rawPredict`` / ``streamRawPredict``): a client surface
(Claude Code's Vertex mode, ``AnthropicVertex``) and an upstream wire (the ``vertex_ai`` provider).

Anthropic Messages in Vertex's envelope: the model is in the path
(``…/publishers/anthropic/models/{model}:rawPredict``), the body carries
``anthropic_version: "vertex-2023-10-16"`` instead, ``stream`` stays in the body, and betas
travel in the ``anthropic-beta`` header as with Anthropic. A token count goes to
``…/models/count-tokens:rawPredict`` with the model in the body. Answers, streams (Anthropic
SSE) and Claude's errors are Anthropic's own, so a Messages client and a Vertex one share
them byte for byte (``apiformat.ANTHROPIC_SHAPED``); keystile's own errors to a Vertex client
are Anthropic-shaped too, as Vertex relays Claude's.
"""

from __future__ import annotations

from keystile.apiformat import ApiFormat
from keystile.formats import messages
from keystile.formats.base import ClientRequest
from keystile.providers.base import Operation

API = ApiFormat.VERTEX
VERSION = "vertex-2023-10-16"


def check_request(body: dict, operation: Operation) -> None:
    messages.check_request(body, operation)


def forward(request: ClientRequest, upstream_model: str) -> dict:
    """The body for a Vertex upstream, from a Vertex client: as it came, but for the model a
    token count names in its body."""
    body = request.body
    if "model" in body and body["model"] != upstream_model:
        return {**body, "model": upstream_model}
    return body


def to_hub(request: ClientRequest, *, upstream_model: str, default_max_tokens: int) -> dict:
    hub = {k: v for k, v in request.body.items() if k != "anthropic_version"}
    hub["model"] = upstream_model
    if request.operation is Operation.GENERATE:
        if request.stream:
            hub["stream"] = True
        else:
            hub.pop("stream", None)
    return hub


def from_hub(hub: dict, *, upstream_model: str, stream: bool) -> dict:
    """Vertex's envelope. A generation (it has ``max_tokens``, which a token count has not)
    names its model in the path; a token count keeps it in the body."""
    if "max_tokens" in hub:
        body = {k: v for k, v in hub.items() if k != "model"}
    else:
        body = {**hub, "model": upstream_model}
    body["anthropic_version"] = VERSION
    return body


response_to_hub = messages.response_to_hub
response_from_hub = messages.response_from_hub
usage = messages.usage
stream_error = messages.stream_error
count_from_hub = messages.count_from_hub
count_to_hub = messages.count_to_hub

Decoder = messages.MessagesDecoder
Encoder = messages.MessagesEncoder
Watch = messages.MessagesWatch
