"""Gemini ``GenerateContentRequest`` ⇄ Anthropic Messages request: the two directions' entry points.

The decisions are written down beside the code: ``request_to_messages`` (a Gemini client on
any model) and ``request_to_gemini`` (any client on a Gemini upstream).
"""

from __future__ import annotations

from keystile.translate.gemini.request_to_gemini import messages_request_to_gemini
from keystile.translate.gemini.request_to_messages import (
    gemini_count_tokens_response,
    gemini_count_tokens_to_messages,
    gemini_request_to_messages,
)

__all__ = [
    "gemini_count_tokens_response",
    "gemini_count_tokens_to_messages",
    "gemini_request_to_messages",
    "messages_request_to_gemini",
]
