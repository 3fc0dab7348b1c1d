"""Anthropic message → OpenAI chat.completion (an OpenAI client served by Claude).

Thinking is surfaced, not hidden: the thinking text as ``message.reasoning_content`` (the
de-facto field DeepSeek, vLLM and LiteLLM use), and the blocks themselves, signatures
included, as ``message.thinking_blocks`` (LiteLLM's field). A client that sends the
assistant message back unchanged thereby keeps Claude's tool-use loops with thinking
working (``request_to_anthropic`` turns ``thinking_blocks`` back into blocks). The OpenAI
SDK keeps unknown fields, and clients that do not know them ignore them.
Server-tool blocks (web search results and the like) have no Chat Completions form and
are dropped. The upstream's ``model`` is kept.
"""

from __future__ import annotations

import logging
import time

from keystile.accounting.usage import usage_from_anthropic, usage_to_openai
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.ids import openai_completion_id
from keystile.translate.stop_reasons import finish_reason_for
from keystile.translate.tool_arguments import dump_arguments

log = logging.getLogger("keystile.translate")


def messages_response_to_chat(resp: dict) -> dict:
    """Translate a non-streaming Anthropic Messages response into a Chat Completions response.

    Raises ``GatewayError(UPSTREAM_ERROR)`` if the upstream body is not a message.
    """
    if not isinstance(resp, dict) or not isinstance(resp.get("content"), list):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response is not an Anthropic message")
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict] = []
    tool_calls: list[dict] = []
    for block in resp["content"]:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and isinstance(block.get("name"), str):
            try:
                arguments = dump_arguments(block.get("input") or {})
            except GatewayError:
                arguments = "{}"
            tool_calls.append(
                {
                    "id": block.get("id") if isinstance(block.get("id"), str) else "",
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            reasoning.append(block["thinking"])
            thinking_blocks.append({"type": "thinking", "thinking": block["thinking"], "signature": block.get("signature") or ""})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            thinking_blocks.append({"type": "redacted_thinking", "data": block["data"]})
        else:
            log.debug("anthropic→openai response: dropping %r block", kind)

    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    if thinking_blocks:
        message["thinking_blocks"] = thinking_blocks
    model = resp.get("model")
    return {
        "id": openai_completion_id(resp.get("id")),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model if isinstance(model, str) else "",
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": finish_reason_for(resp.get("stop_reason")),
                "logprobs": None,
            }
        ],
        "usage": usage_to_openai(usage_from_anthropic(resp.get("usage"))),
    }
