"""The API formats keystile speaks, on either side of the gateway.

A client's format is decided by the route it called; an upstream's by its provider (and,
for OpenAI-type deployments, by ``wire_api``). Anthropic Messages is also keystile's
internal form: every other format converts to and from it (``keystile.formats``).

Bedrock InvokeModel and Vertex rawPredict are Anthropic Messages in another envelope (the
model in the path, ``anthropic_version`` in the body) and, for Bedrock, another stream framing
and error shape. They are formats of their own so that a Bedrock client reaching a Bedrock
upstream (or Vertex a Vertex one) is relayed untouched, and members of ``ANTHROPIC_FAMILY`` so
that nothing inside a message is ever translated between them.
"""

from __future__ import annotations

import enum


class ApiFormat(enum.Enum):
    ANTHROPIC = "anthropic"
    """Anthropic Messages (also spoken by Bedrock InvokeModel and Vertex rawPredict, framed differently)."""
    OPENAI = "openai"
    """OpenAI Chat Completions (and Embeddings)."""
    RESPONSES = "responses"
    """OpenAI Responses."""
    GEMINI = "gemini"
    """Google's Gemini API (generateContent), on AI Studio and on Vertex AI."""
    BEDROCK = "bedrock"
    """AWS Bedrock InvokeModel for Anthropic models: Messages in Bedrock's envelope, streams in AWS event-stream frames."""
    VERTEX = "vertex"
    """Anthropic models on Google Vertex AI (rawPredict / streamRawPredict): Messages in Vertex's envelope."""


ANTHROPIC_FAMILY = frozenset({ApiFormat.ANTHROPIC, ApiFormat.BEDROCK, ApiFormat.VERTEX})
"""Formats whose requests and non-streamed answers are Anthropic Messages: between two of them
only the envelope changes (model, ``stream``, ``anthropic_version``, where the betas travel)."""
ANTHROPIC_SHAPED = frozenset({(ApiFormat.ANTHROPIC, ApiFormat.VERTEX), (ApiFormat.VERTEX, ApiFormat.ANTHROPIC)})
"""Pairs whose streams (Anthropic SSE) and error bodies are also the same: relayed byte for byte."""
