"""The ``GET /v1beta/models`` and ``GET /v1beta/models/{m}`` answers, in Google's ``Model`` shape.

keystile knows a model's public name, not its token limits or sampling defaults, so only
``name`` (``models/<name>``), ``displayName`` and ``supportedGenerationMethods`` are given;
Google's clients treat the rest as optional. Every model keystile serves answers
``generateContent``, ``streamGenerateContent`` and ``countTokens``. The list is one page
(no ``nextPageToken``).
"""

from __future__ import annotations

_METHODS = ("generateContent", "streamGenerateContent", "countTokens")


def gemini_model(name: str) -> dict:
    base = name.removeprefix("models/")
    return {"name": "models/" + base, "displayName": base, "supportedGenerationMethods": list(_METHODS)}


def gemini_model_list(names: list[str]) -> dict:
    return {"models": [gemini_model(name) for name in names]}
