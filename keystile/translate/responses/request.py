"""OpenAI Responses request ⇄ Anthropic Messages request (Messages is keystile's hub form).

``responses_request_to_messages`` lets a Responses client (Codex CLI, the OpenAI SDK,
opencode) run on Claude, and feeds every other upstream through the Messages hub;
``messages_request_to_responses`` lets anything that reached the hub run on an OpenAI
Responses upstream.

Responses → Messages, decisions and why:

- Stateless only: ``previous_response_id``, ``conversation``, stored ``prompt`` templates,
  ``background`` mode and ``item_reference`` items need responses kept on a server and are
  refused (400 naming the field). ``store`` is accepted and ignored: nothing is stored.
- ``instructions`` and the ``system``/``developer`` messages before the first user,
  assistant or tool item become Anthropic's ``system``. A ``system``/``developer`` message
  further down (Codex inserts one when a setting changes mid-session) stays where it is,
  as text in a user turn wrapped in ``<system-reminder>`` tags — the convention Claude Code
  itself uses for mid-conversation instructions. Anthropic's mid-conversation ``system``
  role needs a beta header a translator cannot add, and folding such a message into the
  system prompt would move it to before the history it refers to.
- Items map to blocks: user/assistant messages → text, image and document blocks;
  ``function_call``/``custom_tool_call``/``local_shell_call`` → ``tool_use`` (names as in
  ``tools``), their outputs → ``tool_result``; ``reasoning`` items keystile made from Claude
  thinking → thinking blocks again (``reasoning``; others are dropped). Records of tools
  OpenAI ran itself (``web_search_call`` …) and ``compaction`` items (readable only by
  OpenAI) are dropped with a debug log; any other item type is refused.
- Roles alternate as Anthropic needs: consecutive same-role items merge into one turn,
  tool results move to the front of their user turn, an empty turn is dropped, and a final
  assistant turn loses trailing whitespace (Anthropic refuses it in a prefill).
- ``max_output_tokens`` → ``max_tokens`` (``default_max_tokens`` when absent: Anthropic
  needs one; plus the thinking budget when there is one, see below). ``temperature`` is clamped to 0–1; ``top_p`` of 1 is dropped (recent Claude
  models refuse ``temperature`` and ``top_p`` together).
- ``reasoning.effort`` → ``thinking`` with a budget (``reasoning_effort``): clamped below
  ``max_output_tokens`` when the client set one, else added to ``max_tokens`` (Codex sets
  none: its answers must not be eaten by thinking); ``none`` and ``minimal`` (OpenAI's "little or no reasoning") and a
  missing effort mean no thinking. As in the Chat translator thinking is left off where
  Anthropic would refuse it (forced tool use, a budget under the minimum, a tool loop
  whose last assistant turn came back without its thinking), and while it is on,
  ``temperature`` ≠ 1, ``top_p`` < 0.95 and ``top_k`` are dropped.
- ``tools``/``tool_choice``/``parallel_tool_calls`` as in ``tools``; ``text.format``
  ``json_schema`` → ``output_config.format`` (``json_object`` has no equivalent: dropped).
- ``user`` / ``safety_identifier`` → ``metadata.user_id``. ``include``, ``prompt_cache_key``,
  ``truncation``, ``service_tier``, ``text.verbosity``, Codex's ``client_metadata`` and other
  fields without a Messages equivalent are dropped with a debug log.
- Prompt caching: OpenAI caches prompt prefixes by itself, Anthropic only up to the
  ``cache_control`` breakpoints it is given. Responses clients send none, so two are set:
  on the last system block and on the last block of the last message. An agent's next
  request then reads everything up to there from the cache, as it would on OpenAI.

Messages → Responses, decisions and why:

- Always ``store: false`` with the whole history as input items: keystile is stateless.
- ``system`` → ``instructions`` (text blocks joined by a blank line). Claude Code's
  per-request billing block is removed before the hub reaches here
  (``translate.claude_code``). Mid-conversation ``role: "system"`` messages (a Claude Code
  beta) → ``developer`` items in place.
- Blocks → items in order: text/image/document → ``message`` content parts (an assistant's
  text as string content, the form the SDK types allow without an item id), ``tool_use``
  → ``function_call``, ``tool_result`` → ``function_call_output`` (``is_error`` → an
  ``Error:`` prefix: Responses has no error flag), thinking signed by OpenAI → ``reasoning``
  items (``reasoning``); other thinking, ``redacted_thinking`` and Anthropic server-tool
  blocks are dropped. Tools become function tools with ``strict`` always stated (the
  Responses API requires the field): false unless the Anthropic tool asked for strict,
  since strict mode refuses most hand-written schemas. Anthropic server tools are dropped.
- ``max_tokens`` → ``max_output_tokens``, raised to OpenAI's minimum of 16.
  ``metadata.user_id`` → ``user`` when it fits OpenAI's 64 characters (Claude Code's does
  not: it is a JSON object of ids; it is dropped).
  ``stop_sequences`` and ``top_k`` have no Responses equivalent and are dropped.
- Thinking (``enabled`` with a budget, ``adaptive``, or an ``output_config.effort``) →
  ``reasoning`` with an effort (``reasoning_effort``) and ``summary: "auto"``, plus
  ``include: ["reasoning.encrypted_content"]`` so the reasoning comes back signed and can
  be returned on the next turn — as a reasoning item without an ``id``: under ``store:
  false`` OpenAI looks an id up and fails ("Item with id 'rs_…' not found"); Codex sends
  none either. Without thinking neither is sent (OpenAI refuses both
  for models that do not reason), nor to OpenAI's models that do not reason (``gpt-4o``,
  ``gpt-4.1``, ``gpt-5-chat``: ``reasoning_effort.refuses_reasoning``) whatever the client
  asked. ``output_config.format`` → ``text.format``.
"""

from __future__ import annotations

import logging

from keystile.translate.hub_request import (
    SERVER_TOOL_BLOCKS,
    content_source_text,
    hub_output_config,
    hub_tool_choice,
    hub_tools,
    search_result_text,
)
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
from keystile.translate.media import anthropic_source_to_url, parse_data_url, url_to_anthropic_source
from keystile.translate.reasoning_effort import (
    budget_for_effort,
    effort_for_budget,
    enable_thinking,
    openai_effort_for_anthropic_effort,
    refuses_reasoning,
    thinking_room,
)
from keystile.translate.responses.reasoning import reasoning_input_for_thinking, thinking_for_client_reasoning
from keystile.translate.responses.tools import ToolNames, additional_tools, convert_tools
from keystile.translate.tool_arguments import dump_arguments, parse_arguments

log = logging.getLogger("keystile.translate")

# Items recording what OpenAI did on its side; Claude can neither read nor redo them.
_OPENAI_SIDE_ITEMS = frozenset(
    {
        "web_search_call",
        "file_search_call",
        "computer_call",
        "computer_call_output",
        "image_generation_call",
        "code_interpreter_call",
        "mcp_list_tools",
        "mcp_approval_request",
        "mcp_approval_response",
        "mcp_call",
        "tool_search_call",
        "tool_search_output",
        "compaction",
        "compaction_trigger",
        "shell_call",
        "shell_call_output",
        "apply_patch_call",
        "apply_patch_call_output",
        "program",
        "program_output",
        "configuration_update",
    }
)

# Stateful features: they refer to responses a server kept, and keystile keeps none.
_STATEFUL = (
    ("previous_response_id", "previous_response_id: keystile is stateless; send the whole conversation as input (store: false) instead of a previous response id"),
    ("conversation", "conversation: keystile is stateless; send the whole conversation as input instead of a conversation id"),
    ("prompt", "prompt: stored prompt templates are not available through keystile; send instructions and input instead"),
)

_HANDLED = frozenset(
    {
        "model", "input", "instructions", "max_output_tokens", "temperature", "top_p", "top_k", "stream", "store",
        "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text", "user", "safety_identifier",
        "previous_response_id", "conversation", "prompt", "background",
    }
)

_MIN_OPENAI_OUTPUT_TOKENS = 16
_MAX_OPENAI_USER = 64
_CACHE = {"type": "ephemeral"}
_UNCACHEABLE = frozenset({"thinking", "redacted_thinking"})


# --- Responses → Messages -------------------------------------------------------------


def responses_request_to_messages(body: dict, *, upstream_model: str, default_max_tokens: int) -> dict:
    """Translate a Responses request body into an Anthropic Messages body.

    Raises ``GatewayError(INVALID_REQUEST)`` naming the field for malformed or stateful input.
    """
    body = expect_dict(body, "body")
    for field, message in _STATEFUL:
        if body.get(field) is not None:
            raise invalid(message, field)
    if optional_bool(body.get("background"), "background"):
        raise invalid("background: background responses need stored state, which keystile does not keep", "background")

    raw_input = body.get("input")
    items = [{"type": "message", "role": "user", "content": raw_input}] if isinstance(raw_input, str) else expect_list(raw_input, "input")
    tools, names = convert_tools(body.get("tools"), additional_tools(items))

    system: list[str] = []
    instructions = optional_str(body.get("instructions"), "instructions")
    if instructions:
        system.append(instructions)
    turns = _Turns()
    _convert_items(items, names, system, turns)
    messages = turns.finish()
    if not messages:
        raise invalid("input: at least one user or assistant message is required", "input")

    client_max = optional_positive_int(body.get("max_output_tokens"), "max_output_tokens")
    out: dict = {"model": upstream_model, "max_tokens": client_max or default_max_tokens, "messages": messages}
    if system:
        out["system"] = [{"type": "text", "text": s} for s in system]

    temperature = optional_number(body.get("temperature"), "temperature")
    if temperature is not None:
        out["temperature"] = min(max(temperature, 0), 1)
    top_p = optional_number(body.get("top_p"), "top_p")
    if top_p is not None and top_p != 1:
        out["top_p"] = top_p
    top_k = optional_positive_int(body.get("top_k"), "top_k")
    if top_k is not None:
        out["top_k"] = top_k
    stream = optional_bool(body.get("stream"), "stream")
    if stream is not None:
        out["stream"] = stream
    user = optional_str(body.get("user"), "user") or optional_str(body.get("safety_identifier"), "safety_identifier")
    if user:
        out["metadata"] = {"user_id": user}

    if tools:
        out["tools"] = tools
        choice = _tool_choice(body.get("tool_choice"), names)
        if optional_bool(body.get("parallel_tool_calls"), "parallel_tool_calls") is False:
            choice = choice or {"type": "auto"}
            if choice["type"] != "none":
                choice["disable_parallel_tool_use"] = True
        if choice is not None:
            out["tool_choice"] = choice
    _text_format(body.get("text"), out)
    _thinking(body.get("reasoning"), client_max, default_max_tokens, out)
    _cache_breakpoints(out)

    if log.isEnabledFor(logging.DEBUG):
        for key in body:
            if key not in _HANDLED:
                log.debug("responses→anthropic request: dropping %r, Messages has no equivalent", key)
    return out


class _Turns:
    """Alternating Anthropic turns, merged as items arrive."""

    __slots__ = ("turns",)

    def __init__(self) -> None:
        self.turns: list[dict] = []

    def add(self, role: str, blocks: list[dict]) -> None:
        if not blocks:
            return
        if self.turns and self.turns[-1]["role"] == role:
            self.turns[-1]["content"].extend(blocks)
        else:
            self.turns.append({"role": role, "content": blocks})

    def finish(self) -> list[dict]:
        for turn in self.turns:
            blocks = turn["content"]
            if turn["role"] == "user" and any(b["type"] == "tool_result" for b in blocks) and blocks[0]["type"] != "tool_result":
                turn["content"] = [b for b in blocks if b["type"] == "tool_result"] + [b for b in blocks if b["type"] != "tool_result"]
        if self.turns and self.turns[-1]["role"] == "assistant":
            blocks = self.turns[-1]["content"]
            if blocks and blocks[-1]["type"] == "text":
                text = blocks[-1]["text"].rstrip()
                if text:
                    blocks[-1] = {"type": "text", "text": text}
                else:
                    blocks.pop()
        return [t for t in self.turns if t["content"]]


def _convert_items(items: list, names: ToolNames, system: list[str], turns: _Turns) -> None:
    conversation_started = False
    for i, item in enumerate(items):
        at = f"input[{i}]"
        item = expect_dict(item, at)
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role in ("system", "developer"):
                text = _instruction_text(item.get("content"), f"{at}.content")
                if not text:
                    continue
                if conversation_started:
                    turns.add("user", [{"type": "text", "text": f"<system-reminder>\n{text}\n</system-reminder>"}])
                else:
                    system.append(text)
                continue
            if role == "user":
                turns.add("user", _message_blocks(item.get("content"), f"{at}.content"))
            elif role == "assistant":
                turns.add("assistant", _message_blocks(item.get("content"), f"{at}.content"))
            else:
                raise invalid(f"{at}.role: expected 'user', 'assistant', 'system' or 'developer', got {role!r}"[:200], f"{at}.role")
        elif kind == "function_call":
            name = expect_str(item.get("name"), f"{at}.name")
            namespace = optional_str(item.get("namespace"), f"{at}.namespace")
            turns.add("assistant", [_tool_use(item, at, names.anthropic_name(name, namespace), parse_arguments(item.get("arguments")))])
        elif kind == "custom_tool_call":
            name = expect_str(item.get("name"), f"{at}.name")
            namespace = optional_str(item.get("namespace"), f"{at}.namespace")
            tool_input = {"input": expect_str(item.get("input"), f"{at}.input")}
            turns.add("assistant", [_tool_use(item, at, names.anthropic_name(name, namespace), tool_input)])
        elif kind == "local_shell_call":
            action = expect_dict(item.get("action"), f"{at}.action")
            tool_input = {k: v for k, v in action.items() if k != "type"}
            turns.add("assistant", [_tool_use(item, at, names.anthropic_name("local_shell"), tool_input)])
        elif kind in ("function_call_output", "custom_tool_call_output", "local_shell_call_output"):
            turns.add("user", [_tool_result(item, at)])
        elif kind == "reasoning":
            block = thinking_for_client_reasoning(item)
            if block is not None:
                turns.add("assistant", [block])
        elif kind == "additional_tools":
            continue  # read by convert_tools
        elif kind == "item_reference":
            raise invalid(f"{at}.type: item_reference points to a stored item; keystile is stateless, send the item itself", f"{at}.type")
        elif isinstance(kind, str) and kind in _OPENAI_SIDE_ITEMS:
            log.debug("responses→anthropic request: dropping %s item at %s: it records work OpenAI did", kind, at)
            continue
        else:
            raise invalid(f"{at}.type: unsupported input item type {kind!r}"[:200], f"{at}.type")
        conversation_started = True


def _instruction_text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(expect_list(content, where)):
        part = expect_dict(part, f"{where}[{j}]")
        if part.get("type") not in ("input_text", "output_text", "text"):
            raise invalid(f"{where}[{j}].type: system and developer messages take text only", f"{where}[{j}].type")
        texts.append(expect_str(part.get("text"), f"{where}[{j}].text"))
    return "\n\n".join(t for t in texts if t)


def _message_blocks(content: object, where: str) -> list[dict]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(expect_list(content, where)):
        block = _content_block(part, f"{where}[{j}]")
        if block is not None:
            blocks.append(block)
    return blocks


def _content_block(part: object, at: str) -> dict | None:
    part = expect_dict(part, at)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        text = expect_str(part.get("text"), f"{at}.text")
        return {"type": "text", "text": text} if text else None
    if kind == "refusal":
        text = expect_str(part.get("refusal"), f"{at}.refusal")
        return {"type": "text", "text": text} if text else None
    if kind == "input_image":
        if part.get("image_url") is None:
            raise invalid(f"{at}: only images given by image_url can be sent to this model (not file_id)", at)
        url = expect_str(part.get("image_url"), f"{at}.image_url")
        return {"type": "image", "source": url_to_anthropic_source(url, f"{at}.image_url")}
    if kind == "input_file":
        return _file_block(part, at)
    raise invalid(f"{at}.type: unsupported content part type {kind!r}"[:200], f"{at}.type")


def _file_block(part: dict, at: str) -> dict:
    file_data = part.get("file_data")
    if file_data is not None:
        file_data = expect_str(file_data, f"{at}.file_data")
        parsed = parse_data_url(file_data)
        media_type, data = parsed if parsed is not None else ("application/pdf", file_data)
        if media_type.startswith("image/"):
            return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
        if media_type != "application/pdf":
            raise invalid(f"{at}.file_data: files of type {media_type!r} cannot be sent to this model (PDF and images can)"[:200], f"{at}.file_data")
        block: dict = {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": data}}
    elif part.get("file_url") is not None:
        block = {"type": "document", "source": {"type": "url", "url": expect_str(part.get("file_url"), f"{at}.file_url")}}
    else:
        raise invalid(f"{at}: only inline file_data or a file_url can be sent to this model (not file_id)", at)
    filename = part.get("filename")
    if isinstance(filename, str) and filename:
        block["title"] = filename
    return block


def _tool_use(item: dict, at: str, name: str, tool_input: dict) -> dict:
    return {"type": "tool_use", "id": expect_str(item.get("call_id"), f"{at}.call_id"), "name": name, "input": tool_input}


def _tool_result(item: dict, at: str) -> dict:
    call_id = item.get("call_id")
    if call_id is None and item.get("type") == "local_shell_call_output":
        call_id = item.get("id")  # this item type names its call by "id"
    block: dict = {"type": "tool_result", "tool_use_id": expect_str(call_id, f"{at}.call_id")}
    output = item.get("output")
    if isinstance(output, str):
        if output:
            block["content"] = output
    elif output is not None:
        inner = []
        for j, part in enumerate(expect_list(output, f"{at}.output")):
            converted = _content_block(part, f"{at}.output[{j}]")
            if converted is not None:
                inner.append(converted)
        if inner:
            block["content"] = inner
    return block


def _tool_choice(choice: object, names: ToolNames) -> dict | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "required":
        return {"type": "any"}
    if choice == "none":
        return {"type": "none"}
    if not isinstance(choice, dict):
        raise invalid(f"tool_choice: unsupported value {choice!r}"[:200], "tool_choice")
    kind = choice.get("type")
    if kind in ("function", "custom"):
        name = expect_str(choice.get("name"), "tool_choice.name")
        anthropic_name = names.anthropic_name(name, optional_str(choice.get("namespace"), "tool_choice.namespace"))
        if anthropic_name in names:
            return {"type": "tool", "name": anthropic_name}
        log.debug("responses→anthropic request: tool_choice names %r, which is not among the tools; dropping it", name)
        return None
    if kind == "allowed_tools":
        log.debug("responses→anthropic request: allowed_tools tool_choice becomes auto or any")
        return {"type": "any"} if choice.get("mode") == "required" else {"type": "auto"}
    if isinstance(kind, str):
        log.debug("responses→anthropic request: tool_choice %r names a tool OpenAI runs; dropping it", kind)
        return None
    raise invalid(f"tool_choice.type: unsupported value {kind!r}"[:200], "tool_choice.type")


def _text_format(text: object, out: dict) -> None:
    if text is None:
        return
    fmt = expect_dict(text, "text").get("format")
    if fmt is None:
        return
    fmt = expect_dict(fmt, "text.format")
    kind = fmt.get("type")
    if kind == "json_schema":
        out["output_config"] = {"format": {"type": "json_schema", "schema": expect_dict(fmt.get("schema"), "text.format.schema")}}
    elif kind != "text":
        log.debug("responses→anthropic request: text.format %r has no Messages equivalent; dropping it", kind)


def _thinking(reasoning: object, client_max: int | None, default_max_tokens: int, out: dict) -> None:
    if reasoning is None:
        return
    effort = optional_str(expect_dict(reasoning, "reasoning").get("effort"), "reasoning.effort")
    if effort is None or effort in ("none", "minimal"):
        return
    budget = budget_for_effort(effort)
    if budget is None:
        raise invalid(f"reasoning.effort: unsupported value {effort!r}"[:200], "reasoning.effort")
    budget, max_tokens = thinking_room(budget, client_max, default_max_tokens)
    enable_thinking(out, budget, max_tokens, direction="responses→anthropic", limit_name="max_output_tokens",
                    lost_thinking="the last assistant tool call came back without its reasoning item")


def _cache_breakpoints(out: dict) -> None:
    system = out.get("system")
    if system:
        system[-1]["cache_control"] = _CACHE
    blocks = out["messages"][-1]["content"]
    for index in range(len(blocks) - 1, -1, -1):
        if blocks[index]["type"] not in _UNCACHEABLE:
            blocks[index] = {**blocks[index], "cache_control": _CACHE}
            return


# --- Messages → Responses -------------------------------------------------------------

_MESSAGES_HANDLED = frozenset(
    {
        "model", "messages", "system", "max_tokens", "temperature", "top_p", "stream", "metadata", "tools",
        "tool_choice", "thinking", "output_config",
    }
)


def messages_request_to_responses(body: dict, *, upstream_model: str) -> dict:
    """Translate an Anthropic Messages request body into a stateless Responses body.

    Raises ``GatewayError(INVALID_REQUEST)`` naming the field for malformed input.
    """
    body = expect_dict(body, "body")
    out: dict = {"model": upstream_model}
    system = body.get("system")
    if system is not None:
        instructions = _system_text(system)
        if instructions:
            out["instructions"] = instructions
    items: list[dict] = []
    for i, message in enumerate(expect_list(body.get("messages"), "messages")):
        _message_items(expect_dict(message, f"messages[{i}]"), f"messages[{i}]", items)
    out["input"] = items
    out["store"] = False

    max_tokens = optional_positive_int(body.get("max_tokens"), "max_tokens")
    if max_tokens is not None:
        out["max_output_tokens"] = max(max_tokens, _MIN_OPENAI_OUTPUT_TOKENS)
    for key in ("temperature", "top_p"):
        value = optional_number(body.get(key), key)
        if value is not None:
            out[key] = value
    if optional_bool(body.get("stream"), "stream"):
        out["stream"] = True
    metadata = body.get("metadata")
    if metadata is not None:
        user = optional_str(expect_dict(metadata, "metadata").get("user_id"), "metadata.user_id")
        if user and len(user) <= _MAX_OPENAI_USER:
            out["user"] = user
        elif user:
            log.debug("anthropic→responses request: dropping metadata.user_id, longer than OpenAI's %d characters", _MAX_OPENAI_USER)

    tool_names = _function_tools(body.get("tools"), out)
    _function_tool_choice(body.get("tool_choice"), tool_names, out)
    _reasoning(body.get("thinking"), body.get("output_config"), out)
    if "reasoning" in out and refuses_reasoning(upstream_model):
        log.debug("anthropic→responses request: %s does not reason; dropping reasoning", upstream_model)
        del out["reasoning"], out["include"]

    if log.isEnabledFor(logging.DEBUG):
        for key in body:
            if key not in _MESSAGES_HANDLED:
                log.debug("anthropic→responses request: dropping %r, Responses has no equivalent", key)
    return out


def _system_text(system: object) -> str:
    if isinstance(system, str):
        return system
    texts = []
    for i, block in enumerate(expect_list(system, "system")):
        block = expect_dict(block, f"system[{i}]")
        if block.get("type") != "text":
            raise invalid(f"system[{i}].type: system blocks must be text blocks", f"system[{i}].type")
        texts.append(expect_str(block.get("text"), f"system[{i}].text"))
    return "\n\n".join(texts)


def _message_items(message: dict, where: str, items: list[dict]) -> None:
    role = message.get("role")
    content = message.get("content")
    if role == "system":  # Claude Code's mid-conversation system message (beta)
        text = content if isinstance(content, str) else _system_text_blocks(content, f"{where}.content")
        if text:
            items.append({"type": "message", "role": "developer", "content": text})
        return
    if role not in ("user", "assistant"):
        raise invalid(f"{where}.role: expected 'user', 'assistant' or 'system', got {role!r}"[:200], f"{where}.role")
    if isinstance(content, str):
        if role == "user":
            items.append({"type": "message", "role": "user", "content": content})
        elif content:
            items.append(_assistant_message(content))
        return
    parts: list[dict] = []
    for j, block in enumerate(expect_list(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        block = expect_dict(block, at)
        kind = block.get("type")
        if kind == "text":
            text = expect_str(block.get("text"), f"{at}.text")
            if text:
                parts.append({"type": "output_text" if role == "assistant" else "input_text", "text": text})
            continue
        if role == "user" and kind in ("image", "document", "search_result"):
            parts.append(_input_part(block, kind, at))
            continue
        _flush(role, parts, items)
        if role == "user" and kind == "tool_result":
            items.append(_function_call_output(block, at))
        elif role == "assistant" and kind == "tool_use":
            tool_input = block.get("input")
            items.append(
                {
                    "type": "function_call",
                    "call_id": expect_str(block.get("id"), f"{at}.id"),
                    "name": expect_str(block.get("name"), f"{at}.name"),
                    "arguments": dump_arguments({} if tool_input is None else expect_dict(tool_input, f"{at}.input"), f"{at}.input"),
                }
            )
        elif role == "assistant" and kind == "thinking":
            expect_str(block.get("thinking"), f"{at}.thinking")
            item = reasoning_input_for_thinking(block)
            if item is not None:
                items.append(item)
        elif kind == "redacted_thinking" or (isinstance(kind, str) and kind in SERVER_TOOL_BLOCKS):
            log.debug("anthropic→responses request: dropping %s block at %s", kind, at)
        else:
            raise invalid(f"{at}.type: unsupported {role} content block type {kind!r}"[:200], f"{at}.type")
    _flush(role, parts, items)


def _system_text_blocks(content: object, where: str) -> str:
    texts = []
    for j, block in enumerate(expect_list(content, where)):
        block = expect_dict(block, f"{where}[{j}]")
        if block.get("type") != "text":
            raise invalid(f"{where}[{j}].type: system messages take text blocks only", f"{where}[{j}].type")
        texts.append(expect_str(block.get("text"), f"{where}[{j}].text"))
    return "\n\n".join(texts)


def _flush(role: str, parts: list[dict], items: list[dict]) -> None:
    if not parts:
        return
    if role == "assistant":
        items.append(_assistant_message("".join(p["text"] for p in parts)))
    else:
        items.append({"type": "message", "role": "user", "content": list(parts)})
    parts.clear()


def _assistant_message(text: str) -> dict:
    # String content: a list would have to be an output message with an id and a status.
    return {"type": "message", "role": "assistant", "content": text}


def _input_part(block: dict, kind: str, at: str) -> dict:
    if kind == "image":
        return {"type": "input_image", "image_url": anthropic_source_to_url(block.get("source"), f"{at}.source"), "detail": "auto"}
    if kind == "search_result":
        return {"type": "input_text", "text": search_result_text(block, at)}
    source = expect_dict(block.get("source"), f"{at}.source")
    source_kind = source.get("type")
    if source_kind == "text":
        return {"type": "input_text", "text": expect_str(source.get("data"), f"{at}.source.data")}
    if source_kind == "content":
        return {"type": "input_text", "text": content_source_text(source, at)}
    title = block.get("title")
    filename = title if isinstance(title, str) and title else "document.pdf"
    if source_kind == "url":
        return {"type": "input_file", "file_url": expect_str(source.get("url"), f"{at}.source.url"), "filename": filename}
    return {"type": "input_file", "file_data": anthropic_source_to_url(source, f"{at}.source"), "filename": filename}


def _function_call_output(block: dict, at: str) -> dict:
    call_id = expect_str(block.get("tool_use_id"), f"{at}.tool_use_id")
    is_error = optional_bool(block.get("is_error"), f"{at}.is_error")
    content = block.get("content")
    output: str | list[dict]
    if content is None or isinstance(content, str):
        output = content or ""
        if is_error:
            output = "Error: " + output if output else "Error"
    else:
        output = []
        for i, inner in enumerate(expect_list(content, f"{at}.content")):
            inner_at = f"{at}.content[{i}]"
            inner = expect_dict(inner, inner_at)
            kind = inner.get("type")
            if kind == "text":
                output.append({"type": "input_text", "text": expect_str(inner.get("text"), f"{inner_at}.text")})
            elif kind in ("image", "document", "search_result"):
                output.append(_input_part(inner, kind, inner_at))
            elif kind == "tool_reference":  # a tool found by Anthropic's tool search
                output.append({"type": "input_text", "text": "Tool reference: " + expect_str(inner.get("tool_name"), f"{inner_at}.tool_name")})
            else:
                raise invalid(f"{inner_at}.type: unsupported tool result block type {kind!r}"[:200], f"{inner_at}.type")
        if is_error:
            output.insert(0, {"type": "input_text", "text": "Error:"})
        if all(p["type"] == "input_text" for p in output):
            output = "\n\n".join(p["text"] for p in output)
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _function_tools(tools: object, out: dict) -> set[str]:
    converted = []
    for tool in hub_tools(tools, "responses"):
        function: dict = {"type": "function", "name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.schema
        function["strict"] = tool.strict is True
        converted.append(function)
    if converted:
        out["tools"] = converted
    return {t["name"] for t in converted}


def _function_tool_choice(choice: object, tool_names: set[str], out: dict) -> None:
    chosen = hub_tool_choice(choice, tool_names, "responses")
    if chosen is None or not tool_names:
        return
    if chosen.kind == "tool":
        out["tool_choice"] = {"type": "function", "name": chosen.name}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[chosen.kind]
    if not chosen.parallel:
        out["parallel_tool_calls"] = False


def _reasoning(thinking: object, output_config: object, out: dict) -> None:
    requested, schema = hub_output_config(output_config)
    effort = openai_effort_for_anthropic_effort(requested) if requested is not None else None
    wanted = False
    if schema is not None:
        out["text"] = {"format": {"type": "json_schema", "name": "response", "schema": schema}}
    if thinking is not None:
        thinking = expect_dict(thinking, "thinking")
        kind = thinking.get("type")
        if kind == "enabled":
            wanted = True
            budget = optional_positive_int(thinking.get("budget_tokens"), "thinking.budget_tokens")
            if effort is None and budget is not None:
                effort = effort_for_budget(budget)
        elif kind == "adaptive":
            wanted = True
        elif kind == "disabled":
            return
    if wanted or effort is not None:
        reasoning: dict = {"summary": "auto"}
        if effort is not None:
            reasoning["effort"] = effort
        out["reasoning"] = reasoning
        out["include"] = ["reasoning.encrypted_content"]
