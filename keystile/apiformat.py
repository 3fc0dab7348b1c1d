"""The API formats keystile speaks, on either side of the gateway.

A client's format is decided by the route it called; an upstream's by its provider (and,
for OpenAI-type deployments, by ``wire_api``). Anthropic Messages is also keystile's
internal form: every other format converts to and from it (``keystile.formats``).
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
    """Google's Gemini API (generateContent)."""
