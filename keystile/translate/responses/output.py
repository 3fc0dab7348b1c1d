"""The Responses objects keystile builds from a Claude answer: ids, output items, the response.

Shared by the whole-response and the streaming translator, so both describe an answer the
same way:

- A run of consecutive text blocks is one assistant ``message`` item with one
  ``output_text`` part (Anthropic splits text at citations; Responses clients join parts
  anyway). Thinking becomes a ``reasoning`` item (see ``reasoning``), a ``tool_use`` a
  ``function_call``, ``custom_tool_call`` or ``local_shell_call`` (see ``tools``). Blocks of
  Anthropic's server tools (web search results …) have no Responses form and are dropped.
- The response echoes the request's settings the way OpenAI does (``instructions``,
  ``tools``, ``tool_choice``, ``temperature`` …, with OpenAI's defaults where the request
  left them out), except ``store``, which is always false: keystile keeps nothing, so
  nothing can be fetched or continued by id later.
- ``stop_reason`` → status: ``max_tokens`` and ``model_context_window_exceeded`` →
  ``incomplete`` (``max_output_tokens``), ``refusal`` → ``incomplete`` (``content_filter``,
  what OpenAI reports when its own filter stops an answer), anything else → ``completed``.
- Ids: ``resp_`` + the Anthropic message id (minus ``msg_``), items ``msg_…``, ``rs_…``,
  ``fc_…``, ``ctc_…``, ``lsh_…`` numbered within the response.
"""

from __future__ import annotations

import logging
import os

import orjson

from keystile.errors import GatewayError
from keystile.translate.ids import new_tool_use_id
from keystile.translate.responses.reasoning import reasoning_item
from keystile.translate.responses.tools import CUSTOM, FUNCTION, LOCAL_SHELL, ClientTool, ToolNames
from keystile.translate.tool_arguments import RAW_ARGUMENTS_KEY, dump_arguments

log = logging.getLogger("keystile.translate")

_INCOMPLETE_REASON = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}

_ITEM_PREFIX = {"message": "msg", "reasoning": "rs", FUNCTION: "fc", CUSTOM: "ctc", LOCAL_SHELL: "lsh"}


def response_id(message_id: object) -> str:
    if isinstance(message_id, str) and message_id:
        if message_id.startswith("resp_"):
            return message_id
        return "resp_" + message_id.removeprefix("msg_")
    return "resp_" + os.urandom(12).hex()


class ItemIds:
    """Output item ids of one response: ``<kind prefix>_<response id>_<n>``."""

    __slots__ = ("_base", "_next")

    def __init__(self, resp_id: str) -> None:
        self._base = resp_id.removeprefix("resp_")
        self._next = 0

    def new(self, kind: str) -> str:
        self._next += 1
        return f"{_ITEM_PREFIX.get(kind, 'item')}_{self._base}_{self._next}"


def status_for(stop_reason: object) -> tuple[str, dict | None]:
    """(status, incomplete_details) for an Anthropic ``stop_reason``."""
    reason = _INCOMPLETE_REASON.get(stop_reason) if isinstance(stop_reason, str) else None
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def output_text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> dict:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [output_text_part(text)]}


def call_item(tool: ClientTool, call_id: str, tool_input: object, item_id: str) -> dict:
    """A finished ``tool_use`` as the Responses item of the tool it stands for."""
    if tool.kind == CUSTOM:
        item = {"id": item_id, "type": "custom_tool_call", "status": "completed", "call_id": call_id, "name": tool.name, "input": custom_input(tool_input)}
    elif tool.kind == LOCAL_SHELL and (action := _shell_action(tool_input)) is not None:
        return {"id": item_id, "type": "local_shell_call", "status": "completed", "call_id": call_id, "action": action}
    else:
        item = {"id": item_id, "type": "function_call", "status": "completed", "call_id": call_id, "name": tool.name, "arguments": _arguments(tool_input)}
    if tool.namespace:
        item["namespace"] = tool.namespace
    return item


def custom_input(tool_input: object) -> str:
    """The text of a custom tool call: Claude was asked for ``{"input": "<text>"}``."""
    if isinstance(tool_input, dict) and len(tool_input) == 1:
        for key in ("input", RAW_ARGUMENTS_KEY):
            value = tool_input.get(key)
            if isinstance(value, str):
                return value
    return _arguments(tool_input)  # not what was asked for: the client's tool gets to see why


def _arguments(tool_input: object) -> str:
    try:
        return dump_arguments({} if tool_input is None else tool_input)
    except GatewayError:  # an input JSON cannot carry (an integer beyond 64 bits)
        return "{}"


def _shell_action(tool_input: object) -> dict | None:
    if not isinstance(tool_input, dict):
        return None
    command = tool_input.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        return None
    env = tool_input.get("env")
    action = {"type": "exec", "command": command, "env": env if isinstance(env, dict) else {}}
    for key, kind in (("working_directory", str), ("timeout_ms", int), ("user", str)):
        value = tool_input.get(key)
        if isinstance(value, kind) and not isinstance(value, bool):
            action[key] = value
    return action


def output_items(content: list, names: ToolNames, ids: ItemIds) -> list[dict]:
    """Anthropic content blocks → Responses output items."""
    items: list[dict] = []
    text: list[str] | None = None  # the open message's text
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            if text is None:
                text = []
                items.append(message_item(ids.new("message"), ""))
            text.append(block["text"])
            items[-1]["content"][0]["text"] = "".join(text)
            continue
        if kind in ("thinking", "redacted_thinking"):
            item = reasoning_item(block, ids.new("reasoning"))
        elif kind == "tool_use" and isinstance(block.get("name"), str):
            tool = names.client_tool(block["name"])
            call_id = block.get("id") if isinstance(block.get("id"), str) and block["id"] else new_tool_use_id()
            item = call_item(tool, call_id, block.get("input"), ids.new(tool.kind))
        else:
            log.debug("anthropic→responses response: dropping %r block", kind)
            continue
        if item is not None:
            text = None
            items.append(item)
    return items


class Envelope:
    """The fields of a response that echo its request, encoded once per response."""

    __slots__ = ("static", "encoded")

    def __init__(self, request: object) -> None:
        request = request if isinstance(request, dict) else {}
        reasoning = request.get("reasoning")
        reasoning = reasoning if isinstance(reasoning, dict) else {}
        text = request.get("text")
        static: dict = {
            "instructions": _str(request.get("instructions")),
            "max_output_tokens": _int(request.get("max_output_tokens")),
            "metadata": _dict(request.get("metadata"), {}),
            "parallel_tool_calls": _bool(request.get("parallel_tool_calls"), True),
            "previous_response_id": None,
            "reasoning": {"effort": _str(reasoning.get("effort")), "summary": _str(reasoning.get("summary"))},
            "store": False,
            "temperature": _number(request.get("temperature"), 1.0),
            "text": text if isinstance(text, dict) and isinstance(text.get("format", {}), dict) else {"format": {"type": "text"}},
            "tool_choice": _tool_choice(request.get("tool_choice")),
            "tools": [t for t in request.get("tools") or () if isinstance(t, dict)] if isinstance(request.get("tools"), list) else [],
            "top_p": _number(request.get("top_p"), 1.0),
            "truncation": request.get("truncation") if request.get("truncation") in ("auto", "disabled") else "disabled",
            "background": False,
        }
        for key in ("user", "safety_identifier", "prompt_cache_key"):
            value = request.get(key)
            if isinstance(value, str):
                static[key] = value
        try:
            encoded = orjson.dumps(static)
        except TypeError:  # a value JSON cannot carry (an integer beyond 64 bits in a schema …)
            static.update(tools=[], metadata={}, text={"format": {"type": "text"}}, tool_choice="auto")
            encoded = orjson.dumps(static)
        self.static = static
        self.encoded = encoded

    def response(self, head: dict) -> dict:
        """The whole response object: ``head`` (id, status, output …) and the echoed fields."""
        return {**head, **self.static}

    def response_bytes(self, head: dict) -> bytes:
        """The same, encoded, serialising only ``head`` (the echo can be tens of KB)."""
        return orjson.dumps(head)[:-1] + b"," + self.encoded[1:]


def response_head(resp_id: str, created_at: int, model: str, status: str, output: list, usage: dict | None, *,
                  incomplete_details: dict | None = None, error: dict | None = None, completed_at: int | None = None) -> dict:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": completed_at,
        "error": error,
        "incomplete_details": incomplete_details,
        "model": model,
        "output": output,
        "usage": usage,
    }


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: object, default: float) -> float | int:
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _bool(value: object, default: bool) -> bool:
    return value if isinstance(value, bool) else default


def _dict(value: object, default: dict) -> dict:
    return value if isinstance(value, dict) else default


def _tool_choice(value: object) -> str | dict:
    if value in ("auto", "none", "required") or (isinstance(value, dict) and isinstance(value.get("type"), str)):
        return value
    return "auto"
