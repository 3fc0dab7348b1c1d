"""Anthropic message ⇄ Gemini ``GenerateContentResponse`` (non-streaming).

Messages → Gemini: one candidate (index 0, role ``model``). Text → text parts; thinking →
``thought: true`` parts, with the blocks themselves carried in the ``thoughtSignature`` of the
next part (see ``signatures``); ``tool_use`` → ``functionCall`` with the tool_use id as its
``id``, so the client answers with the same id and the next request matches exactly (Gemini
CLI prefixes it ``<name>__``, which changes nothing); server-tool blocks are dropped.
``stop_reason`` → ``finishReason`` (see ``finish_reasons``); usage → ``usageMetadata``;
the message id → ``responseId``; ``modelVersion`` is the model the caller names.

Gemini → Messages: the first candidate's parts become blocks in order (consecutive text parts,
and consecutive thought parts, merge into one block); each ``thoughtSignature`` becomes a
thinking block (see ``signatures``); a ``functionCall`` keeps its ``id`` when Gemini gave one
in Anthropic's id alphabet, else gets a new ``toolu_`` id (never sent back to Gemini).
Model-made media and code-execution parts are dropped. A prompt blocked before any candidate
(``promptFeedback.blockReason``) is a ``refusal`` with no content; a candidate that ended with
one of the malformed-call reasons raises ``GatewayError(UPSTREAM_ERROR)``.
"""

from __future__ import annotations

import logging
import re

from keystile.accounting.usage import usage_from_anthropic, usage_from_gemini, usage_to_anthropic, usage_to_gemini
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.gemini.finish_reasons import finish_reason_for, stop_reason_for
from keystile.translate.gemini.signatures import thinking_block_for_signature, thinking_carrier
from keystile.translate.ids import anthropic_message_id, new_tool_use_id

log = logging.getLogger("keystile.translate")

_TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def messages_response_to_gemini(message: dict, *, model: str) -> dict:
    """Translate a non-streaming Anthropic Messages response into a ``GenerateContentResponse``.

    Raises ``GatewayError(UPSTREAM_ERROR)`` if the upstream body is not a message.
    """
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response is not an Anthropic message")
    parts: list[dict] = []
    thinking: list[dict] = []  # blocks waiting for the part that will carry them
    for block in message["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append({"type": "thinking", "thinking": block["thinking"], "signature": _str(block.get("signature"))})
            if block["thinking"]:
                parts.append({"text": block["thinking"], "thought": True})
            continue
        if kind == "redacted_thinking" and isinstance(block.get("data"), str):
            thinking.append({"type": "redacted_thinking", "data": block["data"]})
            continue
        if kind == "text" and isinstance(block.get("text"), str):
            part: dict = {"text": block["text"]}
        elif kind == "tool_use" and isinstance(block.get("name"), str):
            tool_input = block.get("input")
            part = {"functionCall": {"id": _str(block.get("id")), "name": block["name"],
                                     "args": tool_input if isinstance(tool_input, dict) else {}}}
        else:
            log.debug("anthropic→gemini response: dropping %r block", kind)
            continue
        if thinking:
            part["thoughtSignature"] = thinking_carrier(thinking)
            thinking = []
        parts.append(part)
    if thinking:
        parts.append({"text": "", "thoughtSignature": thinking_carrier(thinking)})
    message_id = message.get("id")
    return {
        "candidates": [
            {"content": {"parts": parts, "role": "model"}, "finishReason": finish_reason_for(message.get("stop_reason")), "index": 0}
        ],
        "usageMetadata": usage_to_gemini(usage_from_anthropic(message.get("usage"))),
        "modelVersion": model,
        "responseId": message_id if isinstance(message_id, str) else "",
    }


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def gemini_response_to_messages(response: dict, *, model: str) -> dict:
    """Translate a non-streaming ``GenerateContentResponse`` into an Anthropic Messages response.

    Raises ``GatewayError(UPSTREAM_ERROR)`` if the body is not a usable answer.
    """
    if not isinstance(response, dict):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response is not a JSON object")
    candidates = response.get("candidates")
    candidate = candidates[0] if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict) else None
    content: list[dict] = []
    if candidate is None:
        feedback = response.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        if not isinstance(reason, str):
            raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response has no candidates")
        stop_reason = "refusal"
    else:
        body = candidate.get("content")
        parts = body.get("parts") if isinstance(body, dict) else None
        if isinstance(parts, list):
            content = blocks_from_parts(parts)
        finish = candidate.get("finishReason")
        stop = stop_reason_for(finish, has_tool_calls=any(b["type"] == "tool_use" for b in content))
        if stop is None:
            detail = candidate.get("finishMessage")
            suffix = f": {detail}" if isinstance(detail, str) and detail else ""
            raise GatewayError(ErrorKind.UPSTREAM_ERROR, f"upstream model finished with {finish}{suffix}"[:500])
        stop_reason = stop
    version = response.get("modelVersion")
    return {
        "id": anthropic_message_id(response.get("responseId")),
        "type": "message",
        "role": "assistant",
        "model": model or (version if isinstance(version, str) else ""),
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage_from_gemini(response.get("usageMetadata"))),
    }


def blocks_from_parts(parts: list) -> list[dict]:
    """A candidate's parts as Anthropic content blocks (see the module docstring)."""
    blocks: list[dict] = []
    last: str | None = None  # "text" or "thinking" while the last block can still grow
    for part in parts:
        if not isinstance(part, dict):
            continue
        signature = part.get("thoughtSignature")
        signature = signature if isinstance(signature, str) and signature else None
        text = part.get("text")
        if part.get("thought") is True:
            thought = text if isinstance(text, str) else ""
            if last == "thinking":
                blocks[-1]["thinking"] += thought
            else:
                blocks.append({"type": "thinking", "thinking": thought, "signature": ""})
            last = "thinking"
            if signature:
                blocks[-1]["signature"] = thinking_block_for_signature(signature, own_part=True)["signature"]
                last = None  # a signature closes its thought
            continue
        if signature:
            blocks.append(thinking_block_for_signature(signature, own_part=False))
            last = None
        if isinstance(text, str):
            if not text:
                continue
            if last == "text":
                blocks[-1]["text"] += text
            else:
                blocks.append({"type": "text", "text": text})
                last = "text"
            continue
        call = part.get("functionCall")
        if isinstance(call, dict) and isinstance(call.get("name"), str):
            args = call.get("args")
            blocks.append({
                "type": "tool_use",
                "id": tool_use_id_for(call.get("id")),
                "name": call["name"],
                "input": args if isinstance(args, dict) else {},
            })
            last = None
        else:
            log.debug("gemini→anthropic response: dropping a part with keys %s", sorted(part))
    return blocks


def tool_use_id_for(call_id: object) -> str:
    """Gemini's own call id when it fits Anthropic's id alphabet, else a new ``toolu_`` id."""
    return call_id if isinstance(call_id, str) and _TOOL_ID.fullmatch(call_id) else new_tool_use_id()
