"""The two wire formats keystile speaks: Anthropic Messages and OpenAI Chat Completions.

A client's format is decided by the route it called; an upstream's by its provider.
"""

from __future__ import annotations

import enum


class ApiFormat(enum.Enum):
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
