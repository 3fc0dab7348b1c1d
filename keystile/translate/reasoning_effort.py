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

Which OpenAI models take an effort at all: the reasoning families (``o1``, ``o3``, ``o4``,
``gpt-5``) do; OpenAI's others (``gpt-3.5``, ``gpt-4``, ``gpt-4o``, ``gpt-4.1``, ``chatgpt-…``,
``gpt-5-chat``) answer ``reasoning_effort`` / ``reasoning.effort`` with 400 "Unsupported
parameter: … is not supported with this model" (``refuses_reasoning``). Other servers' models
(DeepSeek, Qwen, …) get an effort when thinking was asked for explicitly.

Anthropic counts thinking inside ``max_tokens``. A client that set no output limit (Codex,
most Gemini and Chat clients) gets room for both: ``max_tokens`` = the default answer room +
the budget, up to 32,000 in all (``thinking_room``); one that set a limit gets the budget
clamped below it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("keystile.translate")

MIN_THINKING_BUDGET = 1024
_REASONING_MODEL_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_NO_REASONING_MODEL_PREFIXES = ("gpt-3", "gpt-4", "chatgpt-", "gpt-5-chat")
THINKING_OUTPUT_CAP = 32000
"""The smallest output limit of a Claude model that thinks (Opus 4/4.1): no larger max_tokens is asked for."""

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


def _base_name(model: str) -> str:
    return model.rsplit("/", 1)[-1].lower()


def is_reasoning_model(model: str) -> bool:
    """An OpenAI reasoning model: it takes an effort (and ``max_completion_tokens``)."""
    name = _base_name(model)
    return name.startswith(_REASONING_MODEL_PREFIXES) and not name.startswith(_NO_REASONING_MODEL_PREFIXES)


def refuses_reasoning(model: str) -> bool:
    """An OpenAI model that answers any effort with 400 (gpt-4o, gpt-4.1, gpt-5-chat, …)."""
    return _base_name(model).startswith(_NO_REASONING_MODEL_PREFIXES)


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


def thinking_room(budget: int, client_max: int | None, default_max_tokens: int) -> tuple[int, int]:
    """(thinking budget, ``max_tokens``) for a budget the client asked for.

    With the client's own output limit the budget is clamped below it. Without one the answer
    keeps ``default_max_tokens`` and the budget comes on top, up to ``THINKING_OUTPUT_CAP`` in all
    (or the default, if that is larger). When both do not fit, an answer room of at most half
    the total is kept and thinking gets the rest; a larger default gives way to the budget, down
    to an eighth of the total (4,000 of 32,000). A budget that comes back under
    ``MIN_THINKING_BUDGET`` cannot be used.
    """
    if client_max is not None:
        return min(budget, client_max - 1), client_max
    total = min(default_max_tokens + budget, max(THINKING_OUTPUT_CAP, default_max_tokens))
    if default_max_tokens <= total // 2:
        answer = default_max_tokens
    else:
        answer = max(total - budget, total // 8)
    return min(budget, total - answer), total


def enable_thinking(out: dict, budget: int, max_tokens: int, *, direction: str, limit_name: str, lost_thinking: str) -> None:
    """Turn thinking on in the Messages request ``out`` at ``budget`` (``max_tokens`` from ``thinking_room``).

    Left off, with a debug line saying why (``direction``: e.g. "openai→anthropic"), when
    Anthropic would refuse it: a forced tool choice, a budget under the minimum (``limit_name``:
    the client's own name for its output limit), or a tool loop whose last assistant turn came
    back without its thinking (``lost_thinking`` says so in the client's words). With thinking
    on, sampling settings Anthropic does not allow with it are dropped.
    """
    reason = None
    choice = out.get("tool_choice")
    if choice is not None and choice["type"] in ("any", "tool"):
        reason = "forced tool use"
    elif budget < MIN_THINKING_BUDGET:
        reason = f"{limit_name} {max_tokens} leaves no room for the minimum thinking budget"
    elif _tool_loop_without_thinking(out["messages"]):
        reason = lost_thinking
    if reason is not None:
        log.debug("%s request: thinking not enabled: %s", direction, reason)
        return
    out["max_tokens"] = max_tokens
    out["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if out.get("temperature", 1) != 1:
        del out["temperature"]
    if out.get("top_p", 1) < 0.95:
        del out["top_p"]
    out.pop("top_k", None)


def _tool_loop_without_thinking(turns: list[dict]) -> bool:
    """The last assistant turn called tools but does not start with its thinking (Anthropic
    requires that block back when thinking is on in a tool loop)."""
    for turn in reversed(turns):
        if turn["role"] == "assistant":
            blocks = turn["content"]
            uses_tools = any(b["type"] == "tool_use" for b in blocks)
            return uses_tools and blocks[0]["type"] not in ("thinking", "redacted_thinking")
    return False
