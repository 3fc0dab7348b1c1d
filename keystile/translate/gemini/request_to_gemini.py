"""Anthropic Messages request → Gemini ``GenerateContentRequest``.

Lets an Anthropic client (Claude Code, the Anthropic SDK), or anything routed through the hub,
run on a Gemini upstream (AI Studio or Vertex). The model and streaming go in the URL, so they
are not in the body.

Decisions, and why:

- ``system`` → ``systemInstruction``, one part per text block (Claude Code's per-request
  billing block is removed before any translation to a non-Anthropic upstream, by
  ``claude_code.without_billing_header``). A mid-conversation ``role: "system"`` message
  (Claude Code's beta) becomes a user content ``<system>…</system>`` in its place: Gemini has
  no system role in ``contents``, and the instruction stays where it was given while the
  prefix before it stays stable for Gemini's implicit caching.
- ``user`` → ``user``, ``assistant`` → ``model``. Images and PDFs → ``inlineData`` (base64) or
  ``fileData`` (URL, media type from the file name); text documents and search results → text.
- ``tool_use`` → ``functionCall`` (name, args) and ``tool_result`` → ``functionResponse``
  named after its ``tool_use`` (``{"output": text}``, ``{"error": text}`` when ``is_error``);
  images in a result follow as ``inlineData`` parts. No ids are sent: Google's AI Studio and
  Vertex reject ``id`` in requests ("Unknown name \\"id\\"") and match responses by name and
  order. A ``tool_result`` whose ``tool_use`` is not in the conversation → 400. A function
  call in the active loop (after the last user turn that is not only tool results) that has
  no signature gets Google's documented stand-in ``skip_thought_signature_validator``, which
  Gemini 3 accepts where its own signature was lost (Gemini CLI does the same).
- Thinking blocks: see ``signatures``; Claude-signed thinking and redacted thinking mean
  nothing to Gemini and are dropped; unsigned thinking (from an OpenAI-compatible upstream)
  is sent as thought parts.
- Custom tools → one ``functionDeclarations`` entry each, ``input_schema`` as
  ``parametersJsonSchema`` (JSON Schema as is, no lossy conversion); Anthropic server tools
  are dropped. ``tool_choice`` auto/any/none → AUTO/ANY/NONE, ``tool`` → ANY with that one
  allowed name; ``disable_parallel_tool_use`` has no equivalent.
- ``max_tokens`` → ``maxOutputTokens``; ``temperature``, ``top_p``, ``top_k``,
  ``stop_sequences`` → their ``generationConfig`` fields; ``output_config.format`` →
  ``responseMimeType: application/json`` + ``responseJsonSchema``.
- ``thinking: enabled`` → ``thinkingConfig {thinkingBudget, includeThoughts: true}``;
  ``adaptive`` → ``includeThoughts`` with the model's dynamic budget, or the budget of
  ``output_config.effort`` when given; budgets stop at 24,576, the largest every Gemini
  thinking model accepts (2.5 Flash's maximum). No thinking → no ``thinkingConfig``: Gemini
  models then think by their default and keep it hidden. ``metadata``,
  ``context_management``, ``cache_control``, ``service_tier`` and the like are dropped.
"""

from __future__ import annotations

import logging
import mimetypes

from keystile.translate.gemini.signatures import GEMINI_NEXT_SIGNATURE, GEMINI_SIGNATURE, SKIP_SIGNATURE_VALIDATOR
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
from keystile.translate.reasoning_effort import budget_for_effort

log = logging.getLogger("keystile.translate")

_GEMINI_MAX_BUDGET = 24576  # the largest thinkingBudget every Gemini thinking model accepts


_HANDLED_MESSAGES = frozenset(
    {"model", "messages", "system", "max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "stream",
     "tools", "tool_choice", "thinking", "output_config"}
)


def messages_request_to_gemini(body: dict) -> dict:
    """Translate an Anthropic Messages body into a Gemini ``GenerateContentRequest`` body.

    The model and streaming go in the URL. Raises ``GatewayError(INVALID_REQUEST)`` naming
    the field for malformed input.
    """
    body = expect_dict(body, "body")
    out: dict = {}
    names: dict[str, str] = {}  # tool_use id → function name, for the results that follow
    contents: list[dict] = []
    for i, message in enumerate(expect_list(body.get("messages"), "messages")):
        content = _message_content(message, f"messages[{i}]", names)
        if content is not None:
            contents.append(content)
    _sign_active_loop(contents)
    out["contents"] = contents
    system = body.get("system")
    if system is not None:
        parts = _system_parts(system)
        if parts:
            out["systemInstruction"] = {"parts": parts}

    tool_names = _gemini_tools(body.get("tools"), out)
    _gemini_tool_choice(body.get("tool_choice"), tool_names, out)

    generation: dict = {}
    max_tokens = optional_positive_int(body.get("max_tokens"), "max_tokens")
    if max_tokens is not None:
        generation["maxOutputTokens"] = max_tokens
    for key, name in (("temperature", "temperature"), ("top_p", "topP")):
        value = optional_number(body.get(key), key)
        if value is not None:
            generation[name] = value
    top_k = optional_positive_int(body.get("top_k"), "top_k")
    if top_k is not None:
        generation["topK"] = top_k
    stop = body.get("stop_sequences")
    if stop is not None:
        stops = [expect_str(s, f"stop_sequences[{i}]") for i, s in enumerate(expect_list(stop, "stop_sequences"))]
        if stops:
            generation["stopSequences"] = stops
    _gemini_output_config(body.get("thinking"), body.get("output_config"), generation)
    if generation:
        out["generationConfig"] = generation

    if log.isEnabledFor(logging.DEBUG):
        for key in body:
            if key not in _HANDLED_MESSAGES:
                log.debug("anthropic→gemini request: dropping %r, Gemini has no equivalent", key)
    return out


def _system_parts(system: object) -> list[dict]:
    if isinstance(system, str):
        return [{"text": system}] if system else []
    parts = []
    for i, block in enumerate(expect_list(system, "system")):
        where = f"system[{i}]"
        block = expect_dict(block, where)
        if block.get("type") != "text":
            raise invalid(f"{where}.type: system blocks must be text blocks", f"{where}.type")
        text = expect_str(block.get("text"), f"{where}.text")
        if text:
            parts.append({"text": text})
    return parts


def _message_content(message: object, where: str, names: dict[str, str]) -> dict | None:
    message = expect_dict(message, where)
    role = message.get("role")
    content = message.get("content")
    if role == "user":
        parts = _user_parts(content, where, names)
        gemini_role = "user"
    elif role == "assistant":
        parts = _model_parts(content, where, names)
        gemini_role = "model"
    elif role == "system":
        text = _plain_text(content, f"{where}.content")
        parts = [{"text": f"<system>\n{text}\n</system>"}] if text else []
        gemini_role = "user"
    else:
        raise invalid(f"{where}.role: expected 'user', 'assistant' or 'system', got {role!r}"[:200], f"{where}.role")
    return {"role": gemini_role, "parts": parts} if parts else None


def _plain_text(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    texts = []
    for i, block in enumerate(expect_list(content, where)):
        block = expect_dict(block, f"{where}[{i}]")
        if block.get("type") != "text":
            raise invalid(f"{where}[{i}].type: expected a text block", f"{where}[{i}].type")
        texts.append(expect_str(block.get("text"), f"{where}[{i}].text"))
    return "\n\n".join(t for t in texts if t)


def _user_parts(content: object, where: str, names: dict[str, str]) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict] = []
    for j, block in enumerate(expect_list(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        block = expect_dict(block, at)
        kind = block.get("type")
        if kind == "tool_result":
            parts.extend(_tool_result_parts(block, at, names))
        else:
            part = _media_part(block, kind, at)
            if part is not None:
                parts.append(part)
    return parts


def _media_part(block: dict, kind: object, at: str) -> dict | None:
    """A user content block other than a tool result, as a Gemini part (None: nothing to send)."""
    if kind == "text":
        text = expect_str(block.get("text"), f"{at}.text")
        return {"text": text} if text else None
    if kind in ("image", "document"):
        return _source_part(block, at)
    if kind == "search_result":
        return {"text": search_result_text(block, at)}
    if isinstance(kind, str) and kind in SERVER_TOOL_BLOCKS:
        log.debug("anthropic→gemini request: dropping %s block at %s", kind, at)
        return None
    raise invalid(f"{at}.type: unsupported content block type {kind!r}"[:200], f"{at}.type")


def _source_part(block: dict, at: str) -> dict:
    source = expect_dict(block.get("source"), f"{at}.source")
    kind = source.get("type")
    if kind == "base64":
        mime = expect_str(source.get("media_type"), f"{at}.source.media_type")
        return {"inlineData": {"mimeType": mime, "data": expect_str(source.get("data"), f"{at}.source.data")}}
    if kind == "url":
        url = expect_str(source.get("url"), f"{at}.source.url")
        default = "application/pdf" if block.get("type") == "document" else "image/jpeg"
        return {"fileData": {"mimeType": mimetypes.guess_type(url)[0] or default, "fileUri": url}}
    if kind == "text":
        return {"text": expect_str(source.get("data"), f"{at}.source.data")}
    if kind == "content":
        return {"text": content_source_text(source, at)}
    if kind == "file":
        raise invalid(f"{at}.source: Files API references (source type 'file') cannot be sent to this model", f"{at}.source")
    raise invalid(f"{at}.source.type: unsupported source type {kind!r}"[:200], f"{at}.source.type")


def _tool_result_parts(block: dict, at: str, names: dict[str, str]) -> list[dict]:
    tool_use_id = expect_str(block.get("tool_use_id"), f"{at}.tool_use_id")
    name = names.get(tool_use_id)
    if name is None:
        raise invalid(f"{at}.tool_use_id: no earlier tool_use has the id {tool_use_id!r}"[:200], f"{at}.tool_use_id")
    content = block.get("content")
    texts: list[str] = []
    media: list[dict] = []
    if isinstance(content, str):
        texts.append(content)
    elif content is not None:
        for i, inner in enumerate(expect_list(content, f"{at}.content")):
            inner_at = f"{at}.content[{i}]"
            inner = expect_dict(inner, inner_at)
            kind = inner.get("type")
            if kind == "tool_reference":  # a tool found by Anthropic's tool search
                texts.append("Tool reference: " + expect_str(inner.get("tool_name"), f"{inner_at}.tool_name"))
                continue
            if kind == "browser_state":
                continue
            part = _media_part(inner, kind, inner_at)
            if part is None:
                continue
            if "text" in part:
                texts.append(part["text"])
            else:
                media.append(part)
    key = "error" if optional_bool(block.get("is_error"), f"{at}.is_error") else "output"
    return [{"functionResponse": {"name": name, "response": {key: "\n\n".join(texts)}}}, *media]


def _model_parts(content: object, where: str, names: dict[str, str]) -> list[dict]:
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts: list[dict] = []
    pending_signature: str | None = None
    for j, block in enumerate(expect_list(content, f"{where}.content")):
        at = f"{where}.content[{j}]"
        block = expect_dict(block, at)
        kind = block.get("type")
        part: dict | None = None
        if kind == "text":
            text = expect_str(block.get("text"), f"{at}.text")
            if text or pending_signature:
                part = {"text": text}
        elif kind == "tool_use":
            tool_id = expect_str(block.get("id"), f"{at}.id")
            name = expect_str(block.get("name"), f"{at}.name")
            tool_input = block.get("input")
            names[tool_id] = name
            part = {"functionCall": {"name": name, "args": {} if tool_input is None else expect_dict(tool_input, f"{at}.input")}}
        elif kind == "thinking":
            thinking = expect_str(block.get("thinking"), f"{at}.thinking")
            signature = optional_str(block.get("signature"), f"{at}.signature") or ""
            if signature.startswith(GEMINI_NEXT_SIGNATURE):
                pending_signature = signature[len(GEMINI_NEXT_SIGNATURE) :]
            elif signature.startswith(GEMINI_SIGNATURE):
                parts.append({"text": thinking, "thought": True, "thoughtSignature": signature[len(GEMINI_SIGNATURE) :]})
            elif not signature and thinking:
                parts.append({"text": thinking, "thought": True})
            else:
                log.debug("anthropic→gemini request: dropping Claude-signed thinking at %s", at)
            continue
        elif kind == "redacted_thinking" or (isinstance(kind, str) and kind in SERVER_TOOL_BLOCKS):
            log.debug("anthropic→gemini request: dropping %s block at %s", kind, at)
            continue
        else:
            raise invalid(f"{at}.type: unsupported assistant content block type {kind!r}"[:200], f"{at}.type")
        if part is not None:
            if pending_signature:
                part["thoughtSignature"] = pending_signature
                pending_signature = None
            parts.append(part)
    if pending_signature:
        parts.append({"text": "", "thoughtSignature": pending_signature})
    return parts


def _sign_active_loop(contents: list[dict]) -> None:
    """The stand-in signature on each unsigned first function call after the last real user turn."""
    start = 0
    for i in range(len(contents) - 1, -1, -1):
        content = contents[i]
        parts = content["parts"]
        if content["role"] == "user" and any("text" in p for p in parts) and not any("functionResponse" in p for p in parts):
            start = i
            break
    for content in contents[start:]:
        if content["role"] != "model":
            continue
        for part in content["parts"]:
            if "functionCall" in part:
                part.setdefault("thoughtSignature", SKIP_SIGNATURE_VALIDATOR)
                break


def _gemini_tools(tools: object, out: dict) -> set[str]:
    declarations = []
    for tool in hub_tools(tools, "gemini"):
        declaration: dict = {"name": tool.name}
        if tool.description:
            declaration["description"] = tool.description
        declaration["parametersJsonSchema"] = tool.schema
        declarations.append(declaration)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
    return {d["name"] for d in declarations}


def _gemini_tool_choice(choice: object, tool_names: set[str], out: dict) -> None:
    chosen = hub_tool_choice(choice, tool_names, "gemini")
    if chosen is None or not tool_names:  # Gemini rejects a function-calling config without functions
        return
    if chosen.kind == "tool":
        config: dict = {"mode": "ANY", "allowedFunctionNames": [chosen.name]}
    else:
        config = {"mode": {"auto": "AUTO", "any": "ANY", "none": "NONE"}[chosen.kind]}
    out["toolConfig"] = {"functionCallingConfig": config}


def _gemini_output_config(thinking: object, output_config: object, generation: dict) -> None:
    effort, schema = hub_output_config(output_config)
    effort_budget = budget_for_effort(effort) if effort is not None else None
    if schema is not None:
        generation["responseMimeType"] = "application/json"
        generation["responseJsonSchema"] = schema
    if thinking is None:
        return
    thinking = expect_dict(thinking, "thinking")
    kind = thinking.get("type")
    if kind == "disabled":
        return
    if kind not in ("enabled", "adaptive"):
        raise invalid(f"thinking.type: unsupported value {kind!r}"[:200], "thinking.type")
    budget = optional_positive_int(thinking.get("budget_tokens"), "thinking.budget_tokens") if kind == "enabled" else None
    if budget is None:
        budget = effort_budget
    config: dict = {"includeThoughts": True}
    if budget is not None:
        config["thinkingBudget"] = min(budget, _GEMINI_MAX_BUDGET)
    generation["thinkingConfig"] = config
