"""The mock model's replies in OpenAI's Responses format (``POST /v1/responses``), JSON or SSE.

The same deterministic "model" as ``mock_replies`` (same text, tool calls and usage for the
same conversation), written by hand in the Responses shapes — not through keystile's
translators, so the mock upstream is an independent peer of the code under test.
"""

from __future__ import annotations

import orjson

from keystile.accounting.usage import Usage
from keystile.providers.mock_replies import (
    CREATED,
    Reply,
    _block_text,
    _list,
    _model,
    _plan,
    openai_json_schema,
    split_json,
    split_text,
)


def plan_responses(body: dict, *, cache_mode: str = "read", auto_tools: bool = True) -> Reply:
    items = body.get("input")
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    items = _list(items)
    user_text, tool_results = _last_user_turn(items)
    tools = [t for t in _list(body.get("tools")) if isinstance(t, dict) and t.get("type") == "function"]
    choice = body.get("tool_choice")
    named = choice.get("name") if isinstance(choice, dict) else None
    forced = choice == "required" or named is not None
    wants_tools = (auto_tools or forced) and choice != "none"
    tool = None
    if wants_tools and tool_results is None and tools:
        tool = next((t for t in tools if t.get("name") == named), tools[0])
    spec = (tool.get("name"), tool.get("parameters")) if tool is not None else None
    instructions = body.get("instructions")
    text = body.get("text")
    return _plan(
        body,
        user_text,
        tool_results,
        spec,
        [],
        body.get("max_output_tokens"),
        (instructions if isinstance(instructions, str) else "", body.get("tools"), items),
        cache_mode,  # type: ignore[arg-type]
        tool_id_prefix="call_mock",
        json_schema=openai_json_schema(text.get("format"), nested=False) if isinstance(text, dict) else None,
    )


def _last_user_turn(items: list) -> tuple[str, str | None]:
    """Tool outputs after the last call are the turn's results; else the last user message's text."""
    results: list[str] = []
    for item in reversed(items):
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        if kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            results.append(output if isinstance(output, str) else _block_text(output))
            continue
        if results:
            break
        if kind == "message" and item.get("role") == "user":
            content = item.get("content")
            if isinstance(content, list):
                content = [{"type": "text", "text": p.get("text", "")} for p in content if isinstance(p, dict)]
            return _block_text(content), None
    if results:
        return "", " ".join(reversed(results))
    return "", None


def _usage(usage: Usage) -> dict:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": usage.cache_read_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + usage.output_tokens,
    }


def _output(reply: Reply) -> list[dict]:
    call = reply.tool_call
    if call is not None:
        return [
            {"type": "function_call", "id": "fc_mock" + reply.key, "call_id": call.id, "name": call.name,
             "arguments": call.arguments, "status": "completed"}
        ]
    return [
        {"type": "message", "id": "msg_mock" + reply.key, "status": "completed", "role": "assistant",
         "content": [{"type": "output_text", "text": reply.text, "annotations": []}]}
    ]


def _envelope(body: dict, reply: Reply, status: str, output: list, usage: dict | None) -> dict:
    incomplete = {"reason": "max_output_tokens"} if status == "incomplete" else None
    return {
        "id": "resp_mock" + reply.key,
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": _model(body),
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "store": body.get("store", True),
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": _list(body.get("tools")),
        "top_p": 1.0,
        "usage": usage,
    }


def responses_response(body: dict, *, cache_mode: str = "read", auto_tools: bool = True) -> dict:
    reply = plan_responses(body, cache_mode=cache_mode, auto_tools=auto_tools)
    status = "incomplete" if reply.stop == "max_tokens" else "completed"
    return _envelope(body, reply, status, _output(reply), _usage(reply.usage))


def responses_stream(body: dict, *, cache_mode: str = "read", auto_tools: bool = True) -> list[bytes]:
    """The full event sequence OpenAI sends, ``response.created`` to ``response.completed``."""
    reply = plan_responses(body, cache_mode=cache_mode, auto_tools=auto_tools)
    events: list[bytes] = []

    def emit(kind: str, payload: dict) -> None:
        payload = {"type": kind, "sequence_number": len(events), **payload}
        events.append(b"event: " + kind.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n")

    status = "incomplete" if reply.stop == "max_tokens" else "completed"
    emit("response.created", {"response": _envelope(body, reply, "in_progress", [], None)})
    emit("response.in_progress", {"response": _envelope(body, reply, "in_progress", [], None)})
    [item] = _output(reply)
    item_id = item["id"]
    call = reply.tool_call
    if call is not None:
        emit("response.output_item.added", {"output_index": 0, "item": {**item, "arguments": "", "status": "in_progress"}})
        for fragment in split_json(call.arguments):
            emit("response.function_call_arguments.delta", {"item_id": item_id, "output_index": 0, "delta": fragment})
        emit("response.function_call_arguments.done", {"item_id": item_id, "output_index": 0, "arguments": call.arguments})
    else:
        emit("response.output_item.added", {"output_index": 0, "item": {**item, "content": [], "status": "in_progress"}})
        empty = {"type": "output_text", "text": "", "annotations": []}
        emit("response.content_part.added", {"item_id": item_id, "output_index": 0, "content_index": 0, "part": empty})
        for piece in split_text(reply.text):
            emit("response.output_text.delta", {"item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece})
        emit("response.output_text.done", {"item_id": item_id, "output_index": 0, "content_index": 0, "text": reply.text})
        part = {"type": "output_text", "text": reply.text, "annotations": []}
        emit("response.content_part.done", {"item_id": item_id, "output_index": 0, "content_index": 0, "part": part})
    emit("response.output_item.done", {"output_index": 0, "item": item})
    final = "response.incomplete" if status == "incomplete" else "response.completed"
    emit(final, {"response": _envelope(body, reply, status, [item], _usage(reply.usage))})
    return events
