"""Anthropic thinking budgets ⇄ OpenAI ``reasoning_effort`` levels.

    budget_tokens      → effort          effort            → budget_tokens
    < 4,096              low             none                (no thinking)
    4,096 – 16,383       medium          minimal             1,024 (Anthropic's minimum)
    ≥ 16,384             high            low                 2,048
                                         medium              8,192
                                         high                24,576
                                         xhigh, max          32,768

Each budget on the right falls in the band that maps back to the same effort, so a round
trip keeps the level. Anthropic ``output_config.effort`` values ``xhigh``/``max`` become
``high``: most OpenAI-compatible servers only accept low/medium/high.
"""

from __future__ import annotations

MIN_THINKING_BUDGET = 1024

_BUDGET_FOR_EFFORT = {
    "minimal": 1024,
    "low": 2048,
    "medium": 8192,
    "high": 24576,
    "xhigh": 32768,
    "max": 32768,
}

_OPENAI_EFFORT_FOR_ANTHROPIC_EFFORT = {
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
    "max": "high",
}


def effort_for_budget(budget_tokens: int) -> str:
    if budget_tokens < 4096:
        return "low"
    if budget_tokens < 16384:
        return "medium"
    return "high"


def budget_for_effort(effort: str) -> int | None:
    """Thinking budget for an OpenAI effort; None for ``none`` or an unknown level."""
    return _BUDGET_FOR_EFFORT.get(effort)


def openai_effort_for_anthropic_effort(effort: str) -> str | None:
    return _OPENAI_EFFORT_FOR_ANTHROPIC_EFFORT.get(effort)
