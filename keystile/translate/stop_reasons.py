"""Anthropic ``stop_reason`` ⇄ OpenAI ``finish_reason``.

    Anthropic                      → OpenAI          OpenAI               → Anthropic
    end_turn, stop_sequence,         stop            stop                   end_turn (stop_sequence when the
      pause_turn                                                              upstream names the matched one)
    max_tokens,                      length          length                 max_tokens
      model_context_window_exceeded
    tool_use                         tool_calls      tool_calls,            tool_use
                                                       function_call
    refusal                          content_filter  content_filter         refusal

Some OpenAI-compatible servers (Ollama, older vLLM) finish a tool-calling turn with
``stop``; an agent such as Claude Code only runs the tools when it sees ``tool_use``, so a
turn that produced tool calls and ended with ``stop`` (or no reason) becomes ``tool_use``.
"""

from __future__ import annotations

_FINISH_FOR_STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_STOP_FOR_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def finish_reason_for(stop_reason: object) -> str:
    """OpenAI ``finish_reason`` for an Anthropic ``stop_reason`` (unknown or missing → ``stop``)."""
    return _FINISH_FOR_STOP.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason_for(finish_reason: object, *, has_tool_calls: bool, stop_sequence: str | None = None) -> str:
    """Anthropic ``stop_reason`` for an OpenAI ``finish_reason``.

    ``stop_sequence`` is the matched stop string when the upstream reports it (vLLM's
    ``choices[].stop_reason``); OpenAI itself never says which one matched.
    """
    reason = _STOP_FOR_FINISH.get(finish_reason) if isinstance(finish_reason, str) else None
    if reason is None or reason == "end_turn":
        if has_tool_calls:
            return "tool_use"
        if stop_sequence:
            return "stop_sequence"
        return "end_turn"
    return reason
