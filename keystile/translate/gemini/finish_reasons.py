"""Gemini ``finishReason`` ⇄ Anthropic ``stop_reason``.

    Anthropic stop_reason              → Gemini        Gemini finishReason            → Anthropic
    end_turn, stop_sequence,             STOP          STOP, OTHER, unset, unknown,     end_turn (tool_use when
      tool_use, pause_turn                               NO_IMAGE, IMAGE_OTHER …          the turn called tools)
    max_tokens,                          MAX_TOKENS    MAX_TOKENS                       max_tokens (tool_use when
      model_context_window_exceeded                                                       the turn called tools)
    refusal                              SAFETY        SAFETY, RECITATION, LANGUAGE,    refusal, and the stream
                                                         BLOCKLIST, PROHIBITED_CONTENT,   counts as failed
                                                         SPII, IMAGE_SAFETY, …, MODEL_ARMOR
                                                       MALFORMED_FUNCTION_CALL,         an error (502): the model
                                                         UNEXPECTED_TOOL_CALL,            produced no usable turn
                                                         TOO_MANY_TOOL_CALLS,
                                                         MISSING_THOUGHT_SIGNATURE,
                                                         MALFORMED_RESPONSE

Gemini finishes a function-calling turn with STOP, so a turn that produced calls is
``tool_use`` whatever the reason (an agent only runs tools on ``tool_use``). A blocked answer
is Anthropic's ``refusal``, which clients show as a refusal rather than retry. The malformed
ones are errors, not answers: ending them as ``end_turn`` would hand the client an empty turn
as if it were complete; Gemini CLI itself retries them.
"""

from __future__ import annotations

_FINISH_FOR_STOP = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",
    "pause_turn": "STOP",
    "max_tokens": "MAX_TOKENS",
    "model_context_window_exceeded": "MAX_TOKENS",
    "refusal": "SAFETY",
}

BLOCKED = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
        "JAILBREAK",
    }
)

FAILED = frozenset(
    {
        "MALFORMED_FUNCTION_CALL",
        "UNEXPECTED_TOOL_CALL",
        "TOO_MANY_TOOL_CALLS",
        "MISSING_THOUGHT_SIGNATURE",
        "MALFORMED_RESPONSE",
    }
)


def finish_reason_for(stop_reason: object) -> str:
    """Gemini ``finishReason`` for an Anthropic ``stop_reason`` (unknown or missing → STOP)."""
    return _FINISH_FOR_STOP.get(stop_reason, "STOP") if isinstance(stop_reason, str) else "STOP"


def stop_reason_for(finish_reason: object, *, has_tool_calls: bool) -> str | None:
    """Anthropic ``stop_reason`` for a Gemini ``finishReason``; None for one of ``FAILED``."""
    if not isinstance(finish_reason, str):
        finish_reason = None
    if finish_reason in FAILED:
        return None
    if finish_reason in BLOCKED:
        return "refusal"
    if has_tool_calls:
        return "tool_use"
    if finish_reason == "MAX_TOKENS":
        return "max_tokens"
    return "end_turn"
