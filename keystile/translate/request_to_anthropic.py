"""OpenAI Chat Completions request → Anthropic Messages request.

Lets an OpenAI client (the OpenAI SDK, anything OpenAI-compatible) run on Claude.

Decisions, and why:

- ``system`` and ``developer`` messages, wherever they appear in the conversation, are
  gathered into Anthropic's single top-level ``system`` (a string when there is one, else
  text blocks in order).
- Anthropic needs strictly alternating roles: ``tool`` messages become ``tool_result``
  blocks of a user turn, consecutive same-role turns are merged, and within a user turn
  ``tool_result`` blocks are moved in front of other content. Empty text (which Anthropic
  rejects) is dropped; a turn left with nothing is dropped.
- ``max_completion_tokens`` wins over ``max_tokens``; with neither, ``default_max_tokens``
  (Anthropic requires a value), plus the thinking budget when there is one.
- ``n`` > 1 is refused (400): Anthropic returns one message per request.
- ``temperature`` is clamped to Anthropic's 0–1 range; ``top_p`` of 1 (a no-op some
  clients always send) is dropped, because recent Claude models refuse
  ``temperature`` and ``top_p`` together. ``top_k``, an extension some OpenAI clients send,
  is passed through (Anthropic accepts it).
- ``reasoning_effort`` → ``thinking`` with a budget (see ``reasoning_effort``): clamped
  below the client's ``max_tokens``, or added to ``default_max_tokens`` when it set none, so
  thinking does not eat the answer. Thinking is left off when Anthropic would refuse it: forced tool
  use, a budget that does not fit in ``max_tokens``, or a tool-use loop whose last
  assistant turn was sent back without its thinking blocks. While thinking is on,
  ``temperature`` ≠ 1, ``top_p`` < 0.95 and ``top_k`` are dropped (Anthropic refuses them).
- Assistant ``reasoning_content`` is dropped: Anthropic only accepts thinking it signed.
  Assistant ``thinking_blocks`` (the field keystile and LiteLLM put on responses, with
  signatures) are passed back as thinking blocks, so tool loops with thinking work.
- Tool-call ``arguments`` that are not a JSON object become
  ``{"_raw_arguments": "<string>"}`` (see ``tool_arguments``).
- Legacy ``functions`` / ``function_call`` / ``role: function`` are mapped onto tools.
- ``response_format`` ``json_schema`` → ``output_config.format``; ``json_object`` and any
  other field without an Anthropic equivalent are dropped with a debug log.
"""

from __future__ import annotations

import logging

from keystile.translate.invalid_request import (
    expect_dict,
    expect_list,
    expect_str,
    invalid,
    optional_bool,
    optional_number,
    optional_positive_int,
    optional_str,
)
from keystile.translate.media import parse_data_url, url_to_anthropic_source
from keystile.translate.reasoning_effort import budget_for_effort, enable_thinking, thinking_room
from keystile.translate.tool_arguments import parse_arguments

log = logging.getLogger("keystile.translate")

# Fields this module reads; anything else in the body is dropped with a debug log.
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "stream",
        "stream_options",
        "user",
        "safety_identifier",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "reasoning_effort",
        "response_format",
    }
)


def chat_request_to_messages(body: dict, *, upstream_model: str, default_max_tokens: int) -> dict:
    """Translate a Chat Completions request body into an Anthropic Messages body.

    Raises ``GatewayError(INVALID_REQUEST)`` naming the field for malformed input.
    """
    body = expect_dict(body, "body")
    n = body.get("n")
    if n is not None and n != 1:
        raise invalid("n: only n=1 is supported for this model", "n")

    system: list[str] = []
    turns = _convert_messages(expect_list(body.get("messages"), "messages"), system)
    if not turns:
        raise invalid("messages: at least one user or assistant message is required", "messages")

    max_tokens = optional_positive_int(body.get("max_completion_tokens"), "max_completion_tokens")
    if max_tokens is None:
        max_tokens = optional_positive_int(body.get("max_tokens"), "max_tokens")
    client_max = max_tokens
    out: dict = {"model": upstream_model, "max_tokens": max_tokens or default_max_tokens, "messages": turns}
    if system:
        out["system"] = system[0] if len(system) == 1 else [{"type": "text", "text": s} for s in system]

    temperature = optional_number(body.get("temperature"), "temperature")
    if temperature is not None:
        out["temperature"] = min(max(temperature, 0), 1)
    top_p = optional_number(body.get("top_p"), "top_p")
    if top_p is not None and top_p != 1:
        out["top_p"] = top_p
    top_k = optional_positive_int(body.get("top_k"), "top_k")
    if top_k is not None:
        out["top_k"] = top_k
    stop = _stop_sequences(body.get("stop"))
    if stop:
        out["stop_sequences"] = stop
    if optional_bool(body.get("stream"), "stream"):
        out["stream"] = True
    user = optional_str(body.get("user"), "user") or optional_str(body.get("safety_identifier"), "safety_identifier")
    if user:
        out["metadata"] = {"user_id": user}

    tools = _convert_tools(body)
    if tools:
        out["tools"] = tools
        choice = _convert_tool_choice(body)
        if choice is not None:
            out["tool_choice"] = choice
    _convert_reasoning(body.get("reasoning_effort"), client_max, default_max_tokens, out)
    _convert_response_format(body.get("response_format"), out)

    if log.isEnabledFor(logging.DEBUG):
        for key in body:
            if key not in _HANDLED:
                log.debug("openai→anthropic request: dropping %r, Messages has no equivalent", key)
    return out


# --- messages -------------------------------------------------------------------------


def _convert_messages(messages: list, system: list[str]) -> list[dict]:
    turns: list[dict] = []
    pending_function_ids: list[str] = []  # legacy function calls awaiting their result
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        message = expect_dict(message, where)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _plain_text(content, f"{where}.content")
            if text:
                system.append(text)
        elif role == "user":
            _append(turns, "user", _user_blocks(content, f"{where}.content"))
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, where, f"call_{i}", pending_function_ids))
        elif role == "tool":
            tool_call_id = expect_str(message.get("tool_call_id"), f"{where}.tool_call_id")
            _append(turns, "user", [_tool_result(tool_call_id, content, f"{where}.content")])
        elif role == "function":
            tool_id = pending_function_ids.pop(0) if pending_function_ids else f"call_{i}"  # orphan result
            _append(turns, "user", [_tool_result(tool_id, content, f"{where}.content")])
        else:
            raise invalid(f"{where}.role: unsupported role {role!r}"[:200], f"{where}.role")

    for turn in turns:
        if turn["role"] == "user":
            blocks = turn["content"]
            if any(b["type"] == "tool_result" for b in blocks) and blocks[0]["type"] != "tool_result":
                turn["content"] = [b for b in blocks if b["type"] == "tool_result"] + [b for b in blocks if b["type"] != "tool_result"]
    last = turns[-1] if turns else None
    if last is not None and last["role"] == "assistant":
        _strip_final_whitespace(last)
    return [t for t in turns if t["content"]]


def _append(turns: list[dict], role: str, blocks: list[dict]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _strip_final_whitespace(turn: dict) -> None:
    """Anthropic refuses a final assistant (prefill) turn ending in whitespace."""
    blocks = turn["content"]
    if blocks and blocks[-1]["type"] == "text":
        text = blocks[-1]["text"].rstrip()
        if text:
            blocks[-1] = {"type": "text", "text": text}
        else:
            blocks.pop()


def _plain_text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    texts = []
    for i, part in enumerate(expect_list(content, where)):
        part = expect_dict(part, f"{where}[{i}]")
        if part.get("type") not in ("text", "input_text"):
            raise invalid(f"{where}[{i}].type: expected a text part", f"{where}[{i}].type")
        texts.append(expect_str(part.get("text"), f"{where}[{i}].text"))
    return "\n\n".join(t for t in texts if t)


def _user_blocks(content: object, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for i, part in enumerate(expect_list(content, where)):
        block = _user_part(part, f"{where}[{i}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _user_part(part: object, at: str) -> dict | None:
    part = expect_dict(part, at)
    kind = part.get("type")
    if kind in ("text", "input_text"):
        text = expect_str(part.get("text"), f"{at}.text")
        return {"type": "text", "text": text} if text else None
    if kind == "image_url":
        image = part.get("image_url")
        url = image if isinstance(image, str) else expect_dict(image, f"{at}.image_url").get("url")
        url = expect_str(url, f"{at}.image_url.url")
        return {"type": "image", "source": url_to_anthropic_source(url, f"{at}.image_url.url")}
    if kind == "file":
        return _file_part(expect_dict(part.get("file"), f"{at}.file"), f"{at}.file")
    if kind == "input_audio":
        raise invalid(f"{at}.type: audio input is not supported by this model", f"{at}.type")
    raise invalid(f"{at}.type: unsupported content part type {kind!r}"[:200], f"{at}.type")


def _file_part(file: dict, at: str) -> dict:
    file_data = file.get("file_data")
    if file_data is None:
        raise invalid(f"{at}: only inline file_data can be sent to this model (not file_id)", at)
    parsed = parse_data_url(expect_str(file_data, f"{at}.file_data"))
    if parsed is None:
        raise invalid(f"{at}.file_data: expected a data: URL", f"{at}.file_data")
    block: dict = {"type": "document", "source": {"type": "base64", "media_type": parsed[0], "data": parsed[1]}}
    filename = file.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _assistant_blocks(message: dict, where: str, legacy_call_id: str, pending_function_ids: list[str]) -> list[dict]:
    blocks = _thinking_blocks(message.get("thinking_blocks"))
    if message.get("reasoning_content") or message.get("reasoning"):
        log.debug("openai→anthropic request: dropping unsigned reasoning at %s", where)
    content = message.get("content")
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif content is not None:
        for i, part in enumerate(expect_list(content, f"{where}.content")):
            at = f"{where}.content[{i}]"
            part = expect_dict(part, at)
            kind = part.get("type")
            if kind in ("text", "output_text"):
                text = expect_str(part.get("text"), f"{at}.text")
            elif kind == "refusal":
                text = expect_str(part.get("refusal"), f"{at}.refusal")
            else:
                raise invalid(f"{at}.type: unsupported assistant content part {kind!r}"[:200], f"{at}.type")
            if text:
                blocks.append({"type": "text", "text": text})
    tool_calls = message.get("tool_calls")
    if tool_calls is not None:
        for i, call in enumerate(expect_list(tool_calls, f"{where}.tool_calls")):
            at = f"{where}.tool_calls[{i}]"
            call = expect_dict(call, at)
            function = expect_dict(call.get("function"), f"{at}.function")
            blocks.append(
                {
                    "type": "tool_use",
                    "id": expect_str(call.get("id"), f"{at}.id"),
                    "name": expect_str(function.get("name"), f"{at}.function.name"),
                    "input": parse_arguments(function.get("arguments")),
                }
            )
    function_call = message.get("function_call")
    if function_call is not None:
        function_call = expect_dict(function_call, f"{where}.function_call")
        pending_function_ids.append(legacy_call_id)
        blocks.append(
            {
                "type": "tool_use",
                "id": legacy_call_id,
                "name": expect_str(function_call.get("name"), f"{where}.function_call.name"),
                "input": parse_arguments(function_call.get("arguments")),
            }
        )
    return blocks


def _thinking_blocks(value: object) -> list[dict]:
    """Signed thinking blocks echoed back by the client; anything malformed is left out."""
    if not isinstance(value, list):
        return []
    blocks = []
    for block in value:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "thinking" and isinstance(block.get("thinking"), str) and isinstance(block.get("signature"), str) and block["signature"]:
            blocks.append({"type": "thinking", "thinking": block["thinking"], "signature": block["signature"]})
        elif kind == "redacted_thinking" and isinstance(block.get("data"), str):
            blocks.append({"type": "redacted_thinking", "data": block["data"]})
    return blocks


def _tool_result(tool_use_id: str, content: object, where: str) -> dict:
    block: dict = {"type": "tool_result", "tool_use_id": tool_use_id}
    if isinstance(content, str):
        if content:
            block["content"] = content
    elif content is not None:
        inner = []
        for i, part in enumerate(expect_list(content, where)):
            converted = _user_part(part, f"{where}[{i}]")
            if converted is not None:
                inner.append(converted)
        if inner:
            block["content"] = inner
    return block


# --- parameters -----------------------------------------------------------------------


def _stop_sequences(stop: object) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop] if stop.strip() else []
    return [s for i, s in enumerate(expect_list(stop, "stop")) if expect_str(s, f"stop[{i}]").strip()]


def _convert_tools(body: dict) -> list[dict]:
    tools = []
    raw = body.get("tools")
    if raw is not None:
        for i, tool in enumerate(expect_list(raw, "tools")):
            at = f"tools[{i}]"
            tool = expect_dict(tool, at)
            kind = tool.get("type", "function")
            if kind != "function":
                log.debug("openai→anthropic request: dropping %r tool at %s: Messages has no equivalent", kind, at)
                continue
            tools.append(_function_tool(expect_dict(tool.get("function"), f"{at}.function"), f"{at}.function"))
    functions = body.get("functions")
    if functions is not None:
        for i, function in enumerate(expect_list(functions, "functions")):
            tools.append(_function_tool(expect_dict(function, f"functions[{i}]"), f"functions[{i}]"))
    return tools


def _function_tool(function: dict, at: str) -> dict:
    tool: dict = {"name": expect_str(function.get("name"), f"{at}.name")}
    description = optional_str(function.get("description"), f"{at}.description")
    if description:
        tool["description"] = description
    parameters = function.get("parameters")
    if parameters is None:
        schema: dict = {"type": "object", "properties": {}}
    else:
        schema = expect_dict(parameters, f"{at}.parameters")
        if "type" not in schema:  # Anthropic requires an object schema; {} means "no arguments"
            schema = {"type": "object", "properties": {}, **schema}
    tool["input_schema"] = schema
    return tool


def _convert_tool_choice(body: dict) -> dict | None:
    choice = body.get("tool_choice")
    field = "tool_choice"
    if choice is None and body.get("function_call") is not None:
        choice, field = body.get("function_call"), "function_call"
        if isinstance(choice, dict):
            choice = {"type": "function", "function": choice}
    result: dict | None
    if choice is None:
        result = None
    elif choice == "auto":
        result = {"type": "auto"}
    elif choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        result = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = expect_dict(choice.get("function"), f"{field}.function")
        result = {"type": "tool", "name": expect_str(function.get("name"), f"{field}.function.name")}
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        log.debug("openai→anthropic request: allowed_tools tool_choice becomes auto")
        result = {"type": "auto"}
    else:
        raise invalid(f"{field}: unsupported value {choice!r}"[:200], field)
    if optional_bool(body.get("parallel_tool_calls"), "parallel_tool_calls") is False:
        if result is None:
            result = {"type": "auto"}
        if result["type"] != "none":
            result["disable_parallel_tool_use"] = True
    return result


def _convert_reasoning(effort: object, client_max: int | None, default_max_tokens: int, out: dict) -> None:
    if effort is None:
        return
    effort = expect_str(effort, "reasoning_effort")
    if effort == "none":
        return
    budget = budget_for_effort(effort)
    if budget is None:
        raise invalid(f"reasoning_effort: unsupported value {effort!r}"[:200], "reasoning_effort")
    budget, max_tokens = thinking_room(budget, client_max, default_max_tokens)
    enable_thinking(out, budget, max_tokens, direction="openai→anthropic", limit_name="max_tokens",
                    lost_thinking="the last assistant tool call was sent back without its thinking blocks")


def _convert_response_format(fmt: object, out: dict) -> None:
    if fmt is None:
        return
    fmt = expect_dict(fmt, "response_format")
    kind = fmt.get("type")
    if kind == "json_schema":
        spec = expect_dict(fmt.get("json_schema"), "response_format.json_schema")
        schema = expect_dict(spec.get("schema"), "response_format.json_schema.schema")
        out["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
    elif kind != "text":
        log.debug("openai→anthropic request: response_format %r has no Messages equivalent; dropping it", kind)
