"""OpenAI chat.completion → Anthropic message (an Anthropic client served by an OpenAI model).

``reasoning_content`` / ``reasoning`` (DeepSeek, vLLM, OpenRouter) becomes a leading
``thinking`` block with an empty ``signature``: the SDK types require the field, and the
empty value marks the block as keystile-made, so ``request_to_openai`` can send it back as
``reasoning_content`` on the next turn. Such a block must not be sent to Anthropic itself
(it would fail signature checks); that only happens if one conversation is moved from an
OpenAI-compatible deployment to a Claude one. The upstream's ``model`` is kept.
"""

from __future__ import annotations

import logging

from keystile.accounting.usage import usage_from_openai, usage_to_anthropic
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.ids import anthropic_message_id, new_tool_use_id
from keystile.translate.stop_reasons import stop_reason_for
from keystile.translate.tool_arguments import parse_arguments

log = logging.getLogger("keystile.translate")


def chat_response_to_messages(resp: dict) -> dict:
    """Translate a non-streaming Chat Completions response into an Anthropic Messages response.

    Raises ``GatewayError(UPSTREAM_ERROR)`` if the upstream body is not a completion.
    """
    if not isinstance(resp, dict):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response is not a JSON object")
    choices = resp.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response has no choices")
    choice = choices[0]
    message = choice.get("message")
    if not isinstance(message, dict):
        message = {}

    content: list[dict] = []
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text(message.get("content"))
    if text:
        content.append({"type": "text", "text": text})
    refusal = message.get("refusal")
    refused = isinstance(refusal, str) and bool(refusal)
    if refused and not text:
        content.append({"type": "text", "text": refusal})

    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            if isinstance(call, dict):
                block = _tool_use(call.get("id"), call.get("function"))
                if block is not None:
                    content.append(block)
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        block = _tool_use(None, legacy)
        if block is not None:
            content.append(block)

    has_tool_calls = any(b["type"] == "tool_use" for b in content)
    finish = choice.get("finish_reason")
    matched = choice.get("stop_reason")  # vLLM: the stop string that ended generation
    stop_sequence = matched if isinstance(matched, str) and finish == "stop" else None
    stop_reason = stop_reason_for(finish, has_tool_calls=has_tool_calls, stop_sequence=stop_sequence)
    if refused and stop_reason == "end_turn":
        stop_reason = "refusal"
    model = resp.get("model")
    return {
        "id": anthropic_message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model if isinstance(model, str) else "",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence if stop_reason == "stop_sequence" else None,
        "usage": usage_to_anthropic(usage_from_openai(resp.get("usage"))),
    }


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a few servers answer with content parts
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _tool_use(call_id: object, function: object) -> dict | None:
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        log.debug("openai→anthropic response: dropping a tool call without a function name")
        return None
    return {
        "type": "tool_use",
        "id": call_id if isinstance(call_id, str) and call_id else new_tool_use_id(),
        "name": function["name"],
        "input": parse_arguments(function.get("arguments")),
    }
