"""Whole (non-streaming) answers: Anthropic message ⇄ OpenAI Responses ``response`` object.

``messages_response_to_responses`` answers a Responses client from Claude (or from any
upstream, through the Messages hub); the output items, statuses and echoed fields are
described in ``output``. ``responses_response_to_messages`` answers an Anthropic-form
request from an OpenAI Responses upstream:

- ``message`` items → text blocks (a ``refusal`` part → its text, and ``stop_reason``
  ``refusal``), ``reasoning`` → a thinking block carrying the ``encrypted_content``
  (``reasoning``), ``function_call`` → ``tool_use`` (a ``namespace`` is joined to the name
  as in ``tools``), ``custom_tool_call`` → ``tool_use`` with ``{"input": text}``. Records of
  tools OpenAI ran itself are dropped.
- Status → ``stop_reason``: ``completed`` → ``tool_use`` when there are tool calls, else
  ``end_turn``; ``incomplete`` for ``max_output_tokens`` → ``max_tokens``, for
  ``content_filter`` → ``refusal``; ``failed``, or ``incomplete`` for any other reason, is an
  upstream error (502): no stop reason would tell an Anthropic client the answer is cut short.
"""

from __future__ import annotations

import logging
import time

from keystile.accounting.usage import usage_from_anthropic, usage_from_responses, usage_to_anthropic, usage_to_responses
from keystile.errors import ErrorKind, GatewayError
from keystile.translate.ids import anthropic_message_id, new_tool_use_id
from keystile.translate.responses.output import Envelope, ItemIds, output_items, response_head, response_id, status_for
from keystile.translate.responses.reasoning import thinking_for_upstream_reasoning
from keystile.translate.responses.tools import ToolNames, anthropic_tool_name, tool_names
from keystile.translate.tool_arguments import parse_arguments

log = logging.getLogger("keystile.translate")

_STOP_FOR_INCOMPLETE = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}


def messages_response_to_responses(message: dict, *, request: dict) -> dict:
    """Translate a non-streaming Anthropic message into a Responses ``response`` object.

    ``request`` is the client's Responses request, whose settings the response echoes.
    Raises ``GatewayError(UPSTREAM_ERROR)`` if the upstream body is not a message.
    """
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response is not an Anthropic message")
    resp_id = response_id(message.get("id"))
    content = message["content"]
    uses_tools = any(isinstance(b, dict) and b.get("type") == "tool_use" for b in content)
    output = output_items(content, tool_names(request) if uses_tools else ToolNames(), ItemIds(resp_id))
    status, incomplete = status_for(message.get("stop_reason"))
    model = message.get("model")
    if not isinstance(model, str) or not model:
        model = request.get("model") if isinstance(request, dict) and isinstance(request.get("model"), str) else ""
    now = int(time.time())
    usage = usage_to_responses(usage_from_anthropic(message.get("usage")))
    head = response_head(resp_id, now, model, status, output, usage, incomplete_details=incomplete,
                         completed_at=now if status == "completed" else None)
    return Envelope(request).response(head)


def responses_response_to_messages(response: dict) -> dict:
    """Translate a non-streaming Responses ``response`` object into an Anthropic message.

    Raises ``GatewayError(UPSTREAM_ERROR)`` for a body that is not a response, and for a
    failed or cut-short one (see the module docstring).
    """
    if not isinstance(response, dict) or not isinstance(response.get("output"), list):
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response is not an OpenAI Responses response")
    status = response.get("status")
    stop_reason = None
    if status == "failed":
        raise GatewayError(ErrorKind.UPSTREAM_ERROR, "upstream response failed: " + _error_message(response.get("error")))
    if status == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        stop_reason = _STOP_FOR_INCOMPLETE.get(reason) if isinstance(reason, str) else None
        if stop_reason is None:
            raise GatewayError(ErrorKind.UPSTREAM_ERROR, f"upstream response is incomplete (reason: {str(reason)[:100]})")

    content: list[dict] = []
    refused = False
    for item in response["output"]:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "message":
            refused |= _message_text(item.get("content"), content)
        elif kind == "reasoning":
            content.append(thinking_for_upstream_reasoning(item))
        elif kind in ("function_call", "custom_tool_call") and isinstance(item.get("name"), str):
            content.append(tool_use_for_call(item))
        else:
            log.debug("responses→anthropic response: dropping %r item", kind)

    if stop_reason is None:
        if refused:
            stop_reason = "refusal"
        elif any(b["type"] == "tool_use" for b in content):
            stop_reason = "tool_use"
        else:
            stop_reason = "end_turn"
    model = response.get("model")
    return {
        "id": anthropic_message_id(_message_id(response.get("id"))),
        "type": "message",
        "role": "assistant",
        "model": model if isinstance(model, str) else "",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_to_anthropic(usage_from_responses(response.get("usage"))),
    }


def tool_use_for_call(item: dict) -> dict:
    """A finished ``function_call`` / ``custom_tool_call`` item → a ``tool_use`` block."""
    namespace = item.get("namespace")
    name = anthropic_tool_name(item["name"], namespace if isinstance(namespace, str) else None)
    call_id = item.get("call_id")
    if item.get("type") == "custom_tool_call":
        text = item.get("input")
        tool_input: dict = {"input": text if isinstance(text, str) else ""}
    else:
        tool_input = parse_arguments(item.get("arguments"))
    return {"type": "tool_use", "id": call_id if isinstance(call_id, str) and call_id else new_tool_use_id(), "name": name, "input": tool_input}


def _message_id(resp_id: object) -> str | None:
    return "msg_" + resp_id.removeprefix("resp_") if isinstance(resp_id, str) and resp_id else None


def _message_text(parts: object, content: list[dict]) -> bool:
    """Append a message item's text as one text block; True if it held a refusal."""
    texts, refused = message_texts(parts)
    if texts:
        content.append({"type": "text", "text": "".join(texts)})
    return refused


def message_texts(parts: object) -> tuple[list[str], bool]:
    """The texts of a message item's content parts, and whether one was a refusal."""
    texts: list[str] = []
    refused = False
    if isinstance(parts, list):
        for part in parts:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            text = part.get("text") if kind == "output_text" else part.get("refusal") if kind == "refusal" else None
            refused |= kind == "refusal"
            if isinstance(text, str) and text:
                texts.append(text)
    return texts, refused


def _error_message(error: object) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str) and message:
            return message[:500]
        code = error.get("code")
        if isinstance(code, str) and code:
            return code
    return "no error details"

