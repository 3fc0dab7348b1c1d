"""Anthropic Messages request → OpenAI Chat Completions request.

Lets an Anthropic client (Claude Code, the Anthropic SDK) run on an OpenAI model or any
OpenAI-compatible server (vLLM, Ollama, LM Studio, OpenRouter, Groq, DeepSeek, …).

Decisions, and why:

- ``max_tokens`` is sent as ``max_tokens``, which every OpenAI-compatible server
  understands, except for OpenAI's reasoning families (model names starting ``o1``, ``o3``,
  ``o4``, ``gpt-5``), which reject it and need ``max_completion_tokens``. A provider adapter
  that knows better (an Azure deployment with a custom name) passes ``max_tokens_field``.
- ``system`` (string or text blocks) becomes one leading ``system`` message, blocks joined
  with a blank line; several small servers only accept string content, so text-only user
  content is a string too (blocks joined the same way). Assistant text blocks are joined
  with nothing between them: they are pieces of one reply.
- ``tool_result`` blocks become ``tool`` messages placed before the rest of that user
  message (OpenAI wants them right after the assistant's ``tool_calls``). A tool result
  with ``is_error`` is prefixed ``"Error: "`` — OpenAI has no field for it. Images in a
  tool result move to the following user message, because ``tool`` messages carry text only.
- ``thinking`` blocks with an empty ``signature`` were produced by keystile from an
  OpenAI-compatible ``reasoning_content``; they go back as the assistant message's
  ``reasoning_content`` (DeepSeek's thinking mode refuses tool-call turns without it).
  Signed thinking and ``redacted_thinking`` come from Claude, mean nothing to another model
  and are dropped.
- Anthropic server tools (``web_search_…``, ``bash_…``, ``code_execution_…``) and their
  result blocks have no Chat Completions form and are dropped (debug log).
- ``thinking: {type: enabled, budget_tokens}`` → ``reasoning_effort`` (see
  ``reasoning_effort``); an explicit ``output_config.effort`` wins over the budget. An effort
  without explicitly enabled thinking (Claude Code sends ``thinking: {type: adaptive}`` and
  ``output_config.effort`` with every request) becomes ``reasoning_effort`` only for
  reasoning models (``o1``/``o3``/``o4``/``gpt-5`` names); OpenAI's other models (``gpt-4o``,
  ``gpt-4.1``, ``gpt-5-chat``, …) refuse the field with a 400, so they never get it, not even
  for explicitly enabled thinking (Gemini CLI asks for thinking with every request).
  ``output_config.format`` (JSON schema) → ``response_format``. ``context_management`` has no
  equivalent and is dropped.
- A ``role: "system"`` message inside ``messages`` (Claude Code's mid-conversation system
  messages) stays a ``system`` message at its place in the conversation.
- ``metadata.user_id`` → ``user``; one longer than OpenAI's 64 characters (Claude Code's is a
  JSON document) is sent as a stable hash of itself.
- ``top_k``, ``service_tier`` (the two tier vocabularies do not match) and any other
  field without a Chat Completions equivalent are dropped with a debug log.
- ``stream: true`` adds ``stream_options.include_usage`` so the final usage chunk arrives.
- An assistant prefill (a final assistant message) is sent as a plain assistant message;
  OpenAI models start a new reply rather than continue it.
"""

from __future__ import annotations

import hashlib
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
from keystile.translate.hub_request import (
    SERVER_TOOL_BLOCKS,
    content_source_text,
    hub_output_config,
    hub_tool_choice,
    hub_tools,
    search_result_text,
)
from keystile.translate.media import anthropic_source_to_url, data_url
from keystile.translate.reasoning_effort import (
    effort_for_budget,
    is_reasoning_model,
    openai_effort_for_anthropic_effort,
    refuses_reasoning,
)
from keystile.translate.tool_arguments import dump_arguments

log = logging.getLogger("keystile.translate")

# OpenAI's ``user`` / ``safety_identifier`` take at most 64 characters; Claude Code's user_id is a
# JSON document of ~150, so a longer one is sent as a stable hash of itself.
_MAX_USER = 64
_OPENAI_TOOL_CHOICE = {"auto": "auto", "any": "required", "none": "none"}

# Fields this module reads; anything else in the body is dropped with a debug log.
_HANDLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "metadata",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
    }
)


def messages_request_to_chat(body: dict, *, upstream_model: str, max_tokens_field: str | None = None) -> dict:
    """Translate an Anthropic Messages request body into a Chat Completions body.

    Raises ``GatewayError(INVALID_REQUEST)`` naming the field for malformed input.
    ``max_tokens_field`` overrides the ``max_tokens``/``max_completion_tokens`` choice.
    """
    body = expect_dict(body, "body")
    out: dict = {"model": upstream_model}

    messages: list[dict] = []
    system = body.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            messages.append({"role": "system", "content": text})
    for i, message in enumerate(expect_list(body.get("messages"), "messages")):
        _convert_message(message, f"messages[{i}]", messages)
    out["messages"] = messages

    max_tokens = optional_positive_int(body.get("max_tokens"), "max_tokens")
    if max_tokens is not None:
        out[max_tokens_field or _max_tokens_field(upstream_model)] = max_tokens
    for key in ("temperature", "top_p"):
        value = optional_number(body.get(key), key)
        if value is not None:
            out[key] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        stops = [expect_str(s, f"stop_sequences[{i}]") for i, s in enumerate(expect_list(stop, "stop_sequences"))]
        if stops:
            out["stop"] = stops
    if optional_bool(body.get("stream"), "stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    metadata = body.get("metadata")
    if metadata is not None:
        user = optional_str(expect_dict(metadata, "metadata").get("user_id"), "metadata.user_id")
        if user:
            out["user"] = user if len(user) <= _MAX_USER else "sha256:" + hashlib.sha256(user.encode()).hexdigest()[:48]

    tool_names = _convert_tools(body.get("tools"), out)
    _convert_tool_choice(body.get("tool_choice"), tool_names, out)
    _convert_reasoning(
        body.get("thinking"), body.get("output_config"), out,
        reasoning_model=is_reasoning_model(upstream_model), refuses=refuses_reasoning(upstream_model),
    )

    if log.isEnabledFor(logging.DEBUG):
        for key in body:
            if key not in _HANDLED:
                log.debug("anthropic→openai request: dropping %r, Chat Completions has no equivalent", key)
    return out


def _max_tokens_field(model: str) -> str:
    return "max_completion_tokens" if is_reasoning_model(model) else "max_tokens"


def _system_text(system: object) -> str:
    if isinstance(system, str):
        return system
    texts = []
    for i, block in enumerate(expect_list(system, "system")):
        where = f"system[{i}]"
        block = expect_dict(block, where)
        if block.get("type") != "text":
            raise invalid(f"{where}.type: system blocks must be text blocks", f"{where}.type")
        texts.append(expect_str(block.get("text"), f"{where}.text"))
    return "\n\n".join(texts)


def _convert_message(message: object, where: str, out: list[dict]) -> None:
    message = expect_dict(message, where)
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        _convert_user(content, where, out)
    elif role == "assistant":
        out.append(_convert_assistant(content, where))
    elif role == "system":
        # A system message in the middle of the conversation (Claude Code's beta
        # mid-conversation-system-2026-04-07): Chat Completions has the same thing.
        text = _system_text(content) if content is not None else ""
        if text:
            out.append({"role": "system", "content": text})
    else:
        raise invalid(f"{where}.role: expected 'user', 'assistant' or 'system', got {role!r}"[:200], f"{where}.role")


def _convert_user(content: object, where: str, out: list[dict]) -> None:
    if isinstance(content, str):
        out.append({"role": "user", "content": content})
        return
    parts: list[dict] = []
    tool_images: list[dict] = []
    tool_results = 0
    for j, block in enumerate(expect_list(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        block = expect_dict(block, at)
        kind = block.get("type")
        if kind == "tool_result":
            tool_message, images = _tool_result(block, at)
            out.append(tool_message)
            tool_results += 1
            if images:
                tool_images.append({"type": "text", "text": f"Images returned by tool call {tool_message['tool_call_id']}:"})
                tool_images.extend(images)
        else:
            part = _user_part(block, kind, at)
            if part is not None:
                parts.append(part)
    parts = tool_images + parts
    if parts:
        out.append({"role": "user", "content": _collapse_text(parts)})
    elif not tool_results:
        out.append({"role": "user", "content": ""})


def _user_part(block: dict, kind: object, at: str) -> dict | None:
    if kind == "text":
        return {"type": "text", "text": expect_str(block.get("text"), f"{at}.text")}
    if kind == "image":
        return {"type": "image_url", "image_url": {"url": anthropic_source_to_url(block.get("source"), f"{at}.source")}}
    if kind == "document":
        return _document_part(block, at)
    if kind == "search_result":
        return {"type": "text", "text": search_result_text(block, at)}
    if isinstance(kind, str) and kind in SERVER_TOOL_BLOCKS:
        log.debug("anthropic→openai request: dropping %s block at %s", kind, at)
        return None
    raise invalid(f"{at}.type: unsupported content block type {kind!r}"[:200], f"{at}.type")


def _document_part(block: dict, at: str) -> dict:
    source = expect_dict(block.get("source"), f"{at}.source")
    kind = source.get("type")
    if kind == "text":
        return {"type": "text", "text": expect_str(source.get("data"), f"{at}.source.data")}
    if kind == "content":
        return {"type": "text", "text": content_source_text(source, at)}
    if kind == "base64":
        media_type = expect_str(source.get("media_type"), f"{at}.source.media_type")
        data = expect_str(source.get("data"), f"{at}.source.data")
        title = block.get("title")
        filename = title if isinstance(title, str) and title else "document.pdf"
        return {"type": "file", "file": {"filename": filename, "file_data": data_url(media_type, data)}}
    raise invalid(f"{at}.source.type: documents from source type {kind!r} cannot be sent to this model"[:200], f"{at}.source.type")


def _collapse_text(parts: list[dict]) -> str | list[dict]:
    """Text-only content as one string: the form every OpenAI-compatible server accepts."""
    if all(p["type"] == "text" for p in parts):
        return "\n\n".join(p["text"] for p in parts)
    return parts


def _tool_result(block: dict, at: str) -> tuple[dict, list[dict]]:
    tool_call_id = expect_str(block.get("tool_use_id"), f"{at}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    images: list[dict] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for i, inner in enumerate(expect_list(content, f"{at}.content")):
            inner_at = f"{at}.content[{i}]"
            inner = expect_dict(inner, inner_at)
            kind = inner.get("type")
            if kind == "image":
                images.append(_user_part(inner, kind, inner_at))
            elif kind == "document":
                part = _document_part(inner, inner_at)
                if part["type"] == "text":
                    texts.append(part["text"])
                else:
                    images.append(part)
            elif kind == "text":
                texts.append(expect_str(inner.get("text"), f"{inner_at}.text"))
            elif kind == "search_result":
                texts.append(search_result_text(inner, inner_at))
            elif kind == "tool_reference":  # a tool found by Anthropic's tool search
                texts.append("Tool reference: " + expect_str(inner.get("tool_name"), f"{inner_at}.tool_name"))
            elif kind == "browser_state":
                log.debug("anthropic→openai request: dropping browser_state block at %s", inner_at)
            else:
                raise invalid(f"{inner_at}.type: unsupported tool result block type {kind!r}"[:200], f"{inner_at}.type")
    text = "\n\n".join(texts)
    if optional_bool(block.get("is_error"), f"{at}.is_error"):
        text = "Error: " + text if text else "Error"
    return {"role": "tool", "tool_call_id": tool_call_id, "content": text}, images


def _convert_assistant(content: object, where: str) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict] = []
    for j, block in enumerate(expect_list(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        block = expect_dict(block, at)
        kind = block.get("type")
        if kind == "text":
            texts.append(expect_str(block.get("text"), f"{at}.text"))
        elif kind == "tool_use":
            tool_input = block.get("input")
            tool_calls.append(
                {
                    "id": expect_str(block.get("id"), f"{at}.id"),
                    "type": "function",
                    "function": {
                        "name": expect_str(block.get("name"), f"{at}.name"),
                        "arguments": dump_arguments({} if tool_input is None else expect_dict(tool_input, f"{at}.input"), f"{at}.input"),
                    },
                }
            )
        elif kind == "thinking":
            thinking = expect_str(block.get("thinking"), f"{at}.thinking")
            if not block.get("signature") and thinking:
                reasoning.append(thinking)
            else:
                log.debug("anthropic→openai request: dropping signed thinking block at %s", at)
        elif kind == "redacted_thinking" or (isinstance(kind, str) and kind in SERVER_TOOL_BLOCKS):
            log.debug("anthropic→openai request: dropping %s block at %s", kind, at)
        else:
            raise invalid(f"{at}.type: unsupported assistant content block type {kind!r}"[:200], f"{at}.type")
    message: dict = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = "\n\n".join(reasoning)
    return message


def _convert_tools(tools: object, out: dict) -> set[str]:
    converted = []
    for tool in hub_tools(tools, "openai"):
        function: dict = {"name": tool.name}
        if tool.description:
            function["description"] = tool.description
        function["parameters"] = tool.schema
        if tool.strict is not None:
            function["strict"] = tool.strict
        converted.append({"type": "function", "function": function})
    if converted:
        out["tools"] = converted
    return {t["function"]["name"] for t in converted}


def _convert_tool_choice(choice: object, tool_names: set[str], out: dict) -> None:
    chosen = hub_tool_choice(choice, tool_names, "openai")
    if chosen is None or not tool_names:
        return  # OpenAI rejects tool_choice and parallel_tool_calls without tools
    if chosen.kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": chosen.name}}
    else:
        out["tool_choice"] = _OPENAI_TOOL_CHOICE[chosen.kind]
    if not chosen.parallel:
        out["parallel_tool_calls"] = False


def _convert_reasoning(thinking: object, output_config: object, out: dict, *, reasoning_model: bool, refuses: bool) -> None:
    requested, schema = hub_output_config(output_config)
    effort = openai_effort_for_anthropic_effort(requested) if requested is not None else None
    enabled = False
    if schema is not None:
        out["response_format"] = {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    if thinking is not None:
        thinking = expect_dict(thinking, "thinking")
        enabled = thinking.get("type") == "enabled"
        if enabled and effort is None:
            budget = optional_positive_int(thinking.get("budget_tokens"), "thinking.budget_tokens")
            if budget is not None:
                effort = effort_for_budget(budget)
    # Explicitly enabled thinking asks for reasoning; an effort alone (Claude Code sends
    # output_config.effort and adaptive thinking on every request) only for reasoning models.
    # OpenAI refuses reasoning_effort on its other models (gpt-4o, gpt-4.1) with a 400.
    if effort is not None and (reasoning_model or (enabled and not refuses)):
        out["reasoning_effort"] = effort
    elif effort is not None and enabled:
        log.debug("anthropic→openai request: thinking dropped, %s takes no reasoning_effort", out.get("model"))
