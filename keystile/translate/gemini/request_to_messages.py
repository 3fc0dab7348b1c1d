"""Gemini ``GenerateContentRequest`` → Anthropic Messages request.

Lets a Gemini client (Gemini CLI, google-genai, opencode's ``@ai-sdk/google``) run on Claude,
or through the hub on any model. The model and the stream flag live in a Gemini URL, not its
body, and are passed in.

Decisions, and why:

- Field names are read in camelCase or snake_case (see ``fields``). ``contents`` roles are
  ``user`` (also when missing, and the legacy ``function``) and ``model``. Consecutive
  same-role contents merge (Gemini CLI sends its session context and the prompt as two user
  contents; Anthropic needs alternating roles); ``tool_result`` blocks move to the front of
  their user turn; empty text and empty turns are dropped; a final assistant turn (prefill)
  loses trailing whitespace, which Anthropic refuses.
- ``systemInstruction`` → ``system`` (one string, parts joined by blank lines).
- Parts: ``text``; ``inlineData`` images → image blocks, PDF → document, ``text/*`` → a text
  document; ``fileData`` with an https URL → url image/document (Gemini Files API and
  ``gs://`` URIs cannot be fetched by another provider: 400); any other media type (audio,
  video) → 400 naming the part. ``thought`` parts are dropped and a keystile
  ``thoughtSignature`` restores the thinking blocks it carries (see ``signatures``); other
  signatures are ignored. Model-side media and code-execution parts are dropped (debug log).
- ``functionCall`` ⇄ ``tool_use``: Gemini calls often have no id. A call's id is its own
  ``id`` when it has one (made safe for Anthropic's id alphabet by a hash when it is not), else
  ``toolu_gemini_<content>_<part>`` — positional, so an append-only history gives the same ids
  every turn and prompt caching keeps working. A ``functionResponse`` answers the pending call
  with its id, else the first unanswered call of the same name (Gemini's own rule: by name, in
  order); one that answers no call becomes a text block, since Anthropic refuses a
  ``tool_result`` without its ``tool_use``. ``response`` ``{"output": x}`` / ``{"error": x}``
  (the convention Google documents and Gemini CLI uses) becomes the result text, the latter with
  ``is_error``; any other response object is sent as its JSON. ``functionResponse.parts``
  (multimodal results) become image/document blocks inside the result.
- ``tools[].functionDeclarations`` → tools; ``parameters`` (OpenAPI subset) and
  ``parametersJsonSchema`` → ``input_schema`` (see ``schema``); giving both is a 400, as at
  Google. Other Gemini tools (``googleSearch``, ``codeExecution``, ``urlContext``, …) are
  built into Google's service and are dropped (debug log).
- ``toolConfig.functionCallingConfig``: AUTO/VALIDATED → auto, NONE → none, ANY → any; ANY
  with one ``allowedFunctionNames`` entry → that tool; with several, the tool list is cut to
  those names (Anthropic cannot restrict ``any`` to a subset).
- ``generationConfig``: ``maxOutputTokens`` → ``max_tokens`` (else ``default_max_tokens``);
  ``temperature`` clamped to Anthropic's 0–1; ``topP`` only without ``temperature`` (Gemini CLI
  sends both, recent Claude models refuse both); ``topK``; ``stopSequences`` (blank ones
  dropped); ``candidateCount`` above 1 → 400. JSON mode (``responseMimeType:
  application/json``) with ``responseSchema`` or ``responseJsonSchema`` → ``output_config.format``
  with ``additionalProperties: false`` added where objects are silent; JSON mode without a
  schema has no Anthropic equivalent and is dropped (debug log). ``safetySettings``,
  penalties, ``seed``, logprobs, modalities and speech settings are dropped (debug log);
  ``cachedContent`` refers to a cache only Google has: 400.
- ``thinkingConfig`` → ``thinking: enabled`` with a budget: ``thinkingBudget`` N → N (at
  least Anthropic's 1,024), -1 (dynamic) → 8,192, 0 → off; ``thinkingLevel`` MINIMAL/LOW/
  MEDIUM/HIGH/XHIGH → 1,024/2,048/8,192/24,576/32,768 (``reasoning_effort``'s table); both at
  once → 400, as at Google; ``includeThoughts`` alone asks for the model's default, dynamic
  thinking: 8,192. No ``thinkingConfig`` → no thinking (Claude's default; Gemini models think
  by default, but Claude thinking costs a budget the client did not ask for). Whether
  thoughts are shown is not mapped: Claude's thinking always comes back, as thought parts,
  which Gemini clients that did not ask for them leave out of ``response.text``.
  With no ``maxOutputTokens``, ``max_tokens`` becomes ``default_max_tokens`` plus the budget,
  at most 32,000 (the smallest output limit of a thinking Claude model), so thinking does not
  eat the answer; with one, the budget is clamped below it. Thinking is left off where
  Anthropic would refuse it: forced tool use, a budget under 1,024, or a tool loop whose last
  assistant turn came back without its thinking. While it is on, ``temperature`` ≠ 1,
  ``top_p`` < 0.95 and ``top_k`` are dropped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import mimetypes
import re

import orjson

from keystile.translate.gemini.fields import field
from keystile.translate.gemini.schema import normalize_json_schema, openapi_to_json_schema, strict_object_schema
from keystile.translate.gemini.signatures import thinking_from_carrier
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
from keystile.translate.reasoning_effort import MIN_THINKING_BUDGET, budget_for_effort, enable_thinking, thinking_room

log = logging.getLogger("keystile.translate")

# Fields gemini_request_to_messages reads; anything else in the body is dropped with a debug log.
_HANDLED = frozenset({"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "model"})
_HANDLED_GENERATION = frozenset(
    {
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "stopSequences",
        "candidateCount",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "thinkingConfig",
    }
)

_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
_TOOL_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
_DYNAMIC_BUDGET = 8192
_FILES_API_HOSTS = ("https://generativelanguage.googleapis.com/",)

# Part keys that carry content; a part with none of them (and nothing else) is skipped.
_PART_DATA = ("text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult")
_PART_METADATA = frozenset(
    {"thought", "thoughtSignature", "thought_signature", "partMetadata", "part_metadata", "videoMetadata",
     "video_metadata", "mediaResolution", "media_resolution"}
)


class _Call:
    __slots__ = ("id", "name", "answered")

    def __init__(self, call_id: str, name: str) -> None:
        self.id = call_id
        self.name = name
        self.answered = False


def gemini_request_to_messages(body: dict, *, upstream_model: str, stream: bool, default_max_tokens: int) -> dict:
    """Translate a Gemini ``GenerateContentRequest`` into an Anthropic Messages body.

    Raises ``GatewayError(INVALID_REQUEST)`` naming the field for malformed input.
    """
    body = expect_dict(body, "body")
    if field(body, "cachedContent") is not None:
        raise invalid("cachedContent: a Gemini cached content cannot be used with this model", "cachedContent")
    generation = field(body, "generationConfig")
    generation = {} if generation is None else expect_dict(generation, "generationConfig")
    count = optional_positive_int(field(generation, "candidateCount"), "generationConfig.candidateCount")
    if count is not None and count != 1:
        raise invalid("generationConfig.candidateCount: only 1 candidate is supported for this model", "generationConfig.candidateCount")

    turns = _convert_contents(expect_list(field(body, "contents"), "contents"))
    if not turns:
        raise invalid("contents: at least one content with a non-empty part is required", "contents")
    client_max = optional_positive_int(field(generation, "maxOutputTokens"), "generationConfig.maxOutputTokens")
    out: dict = {"model": upstream_model, "max_tokens": client_max or default_max_tokens, "messages": turns}
    system = _system_text(field(body, "systemInstruction"))
    if system:
        out["system"] = system

    temperature = optional_number(field(generation, "temperature"), "generationConfig.temperature")
    if temperature is not None:
        out["temperature"] = min(max(temperature, 0), 1)
    top_p = optional_number(field(generation, "topP"), "generationConfig.topP")
    if top_p is not None and temperature is None:
        out["top_p"] = top_p
    top_k = optional_number(field(generation, "topK"), "generationConfig.topK")
    if top_k is not None and int(top_k) >= 1:
        out["top_k"] = int(top_k)
    stops = field(generation, "stopSequences")
    if stops is not None:
        at = "generationConfig.stopSequences"
        kept = [s for i, s in enumerate(expect_list(stops, at)) if expect_str(s, f"{at}[{i}]").strip()]
        if kept:
            out["stop_sequences"] = kept
    if stream:
        out["stream"] = True

    tools = _convert_tools(field(body, "tools"))
    if tools:
        choice, tools = _convert_tool_config(field(body, "toolConfig"), tools)
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
    _convert_json_mode(generation, out)
    _convert_thinking(field(generation, "thinkingConfig"), client_max, default_max_tokens, out)

    if log.isEnabledFor(logging.DEBUG):
        for key in body:
            if _camel(key) not in _HANDLED:
                log.debug("gemini→anthropic request: dropping %r, Messages has no equivalent", key)
        for key in generation:
            if _camel(key) not in _HANDLED_GENERATION:
                log.debug("gemini→anthropic request: dropping generationConfig.%s, Messages has no equivalent", key)
    return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _system_text(system: object) -> str:
    if system is None:
        return ""
    system = expect_dict(system, "systemInstruction")
    texts = []
    for i, part in enumerate(expect_list(field(system, "parts"), "systemInstruction.parts")):
        at = f"systemInstruction.parts[{i}]"
        part = expect_dict(part, at)
        text = field(part, "text")
        if text is None:
            raise invalid(f"{at}: system instructions take text parts only", at)
        texts.append(expect_str(text, f"{at}.text"))
    return "\n\n".join(t for t in texts if t)


def _convert_contents(contents: list) -> list[dict]:
    turns: list[dict] = []
    pending: list[_Call] = []  # calls of the latest model contents, answered by the next user contents
    previous_role = None
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        content = expect_dict(content, where)
        role = field(content, "role")
        role = "user" if role is None or role == "function" else role
        if role not in ("user", "model"):
            raise invalid(f"{where}.role: expected 'user' or 'model', got {role!r}"[:200], f"{where}.role")
        parts = expect_list(field(content, "parts"), f"{where}.parts")
        if role == "model":
            if previous_role != "model":
                pending = []
            _append(turns, "assistant", _model_blocks(parts, where, i, pending))
        else:
            _append(turns, "user", _user_blocks(parts, where, pending))
        previous_role = role

    for turn in turns:
        blocks = turn["content"]
        if turn["role"] == "user" and blocks[0]["type"] != "tool_result" and any(b["type"] == "tool_result" for b in blocks):
            turn["content"] = [b for b in blocks if b["type"] == "tool_result"] + [b for b in blocks if b["type"] != "tool_result"]
    if turns and turns[-1]["role"] == "assistant":
        _strip_final_whitespace(turns[-1])
    return [t for t in turns if t["content"]]


def _append(turns: list[dict], role: str, blocks: list[dict]) -> None:
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _strip_final_whitespace(turn: dict) -> None:
    blocks = turn["content"]
    if blocks and blocks[-1]["type"] == "text":
        text = blocks[-1]["text"].rstrip()
        if text:
            blocks[-1] = {"type": "text", "text": text}
        else:
            blocks.pop()


def _part_kind(part: dict, at: str) -> str | None:
    """The content key of a part (camelCase), or None for a part that carries only metadata."""
    for key in _PART_DATA:
        if field(part, key) is not None:
            return key
    if all(key in _PART_METADATA for key in part):
        return None
    raise invalid(f"{at}: unsupported part with keys {sorted(part)}"[:200], at)


def _model_blocks(parts: list, where: str, index: int, calls: list[_Call]) -> list[dict]:
    blocks: list[dict] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        part = expect_dict(part, at)
        carried = thinking_from_carrier(field(part, "thoughtSignature"))
        if carried:
            blocks.extend(carried)
        kind = _part_kind(part, at)
        if optional_bool(field(part, "thought"), f"{at}.thought"):
            if kind == "text":
                expect_str(field(part, "text"), f"{at}.text")
            continue  # Claude takes back only the thinking it signed: the carrier has it
        if kind == "text":
            text = expect_str(field(part, "text"), f"{at}.text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "functionCall":
            call = expect_dict(field(part, "functionCall"), f"{at}.functionCall")
            name = expect_str(call.get("name"), f"{at}.functionCall.name")
            args = call.get("args")
            raw_id = optional_str(call.get("id"), f"{at}.functionCall.id")
            tool_id = _anthropic_tool_id(raw_id) if raw_id else f"toolu_gemini_{index}_{j}"
            blocks.append({"type": "tool_use", "id": tool_id, "name": name,
                           "input": {} if args is None else expect_dict(args, f"{at}.functionCall.args")})
            calls.append(_Call(tool_id, name))
        elif kind == "functionResponse":
            raise invalid(f"{at}.functionResponse: function responses belong in a user content", f"{at}.functionResponse")
        elif kind is not None:
            log.debug("gemini→anthropic request: dropping a model %s part at %s", kind, at)
    return blocks


def _anthropic_tool_id(raw: str) -> str:
    """A client's call id, or (outside Anthropic's id alphabet) a stable hash of it."""
    if _TOOL_ID.fullmatch(raw):
        return raw
    return "toolu_" + hashlib.sha256(raw.encode()).hexdigest()[:24]


def _user_blocks(parts: list, where: str, pending: list[_Call]) -> list[dict]:
    blocks: list[dict] = []
    for j, part in enumerate(parts):
        at = f"{where}.parts[{j}]"
        part = expect_dict(part, at)
        kind = _part_kind(part, at)
        if optional_bool(field(part, "thought"), f"{at}.thought"):
            continue
        if kind == "text":
            text = expect_str(field(part, "text"), f"{at}.text")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "inlineData":
            blocks.append(_inline_block(field(part, "inlineData"), f"{at}.inlineData"))
        elif kind == "fileData":
            blocks.append(_file_block(field(part, "fileData"), f"{at}.fileData"))
        elif kind == "functionResponse":
            blocks.append(_function_response(field(part, "functionResponse"), f"{at}.functionResponse", pending))
        elif kind == "functionCall":
            raise invalid(f"{at}.functionCall: function calls belong in a model content", f"{at}.functionCall")
        elif kind is not None:
            log.debug("gemini→anthropic request: dropping a %s part at %s", kind, at)
    return blocks


def _inline_block(blob: object, at: str) -> dict:
    blob = expect_dict(blob, at)
    mime = expect_str(field(blob, "mimeType"), f"{at}.mimeType").lower()
    data = expect_str(field(blob, "data"), f"{at}.data")
    if mime in _IMAGE_TYPES:
        return {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}}
    if mime == "application/pdf":
        return {"type": "document", "source": {"type": "base64", "media_type": mime, "data": data}}
    if mime.startswith("text/") or mime in ("application/json", "application/xml"):
        try:
            text = base64.b64decode(data, validate=True).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            raise invalid(f"{at}.data: expected base64 data", f"{at}.data") from None
        return {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": text}}
    raise invalid(f"{at}.mimeType: {mime!r} content cannot be sent to this model"[:200], f"{at}.mimeType")


def _file_block(file: object, at: str) -> dict:
    file = expect_dict(file, at)
    uri = expect_str(field(file, "fileUri"), f"{at}.fileUri")
    mime = optional_str(field(file, "mimeType"), f"{at}.mimeType") or mimetypes.guess_type(uri)[0] or ""
    mime = mime.lower()
    if not uri.startswith(("https://", "http://")) or uri.startswith(_FILES_API_HOSTS):
        raise invalid(f"{at}.fileUri: Gemini Files API and Cloud Storage files cannot be sent to this model", f"{at}.fileUri")
    if mime.startswith("image/"):
        return {"type": "image", "source": {"type": "url", "url": uri}}
    if mime == "application/pdf":
        return {"type": "document", "source": {"type": "url", "url": uri}}
    raise invalid(f"{at}.mimeType: {mime or 'unknown'!r} files cannot be sent to this model"[:200], f"{at}.mimeType")


def _function_response(response: object, at: str, pending: list[_Call]) -> dict:
    response = expect_dict(response, at)
    name = expect_str(response.get("name"), f"{at}.name")
    raw_id = optional_str(response.get("id"), f"{at}.id")
    call = None
    if raw_id:
        tool_id = _anthropic_tool_id(raw_id)
        call = next((c for c in pending if c.id == tool_id and not c.answered), None)
    if call is None:
        call = next((c for c in pending if c.name == name and not c.answered), None)
    payload = response.get("response")
    payload = {} if payload is None else expect_dict(payload, f"{at}.response")
    text, is_error = _result_text(payload)
    media = []
    extra = response.get("parts")
    if extra is not None:
        for k, item in enumerate(expect_list(extra, f"{at}.parts")):
            item_at = f"{at}.parts[{k}]"
            item = expect_dict(item, item_at)
            if field(item, "inlineData") is not None:
                media.append(_inline_block(field(item, "inlineData"), f"{item_at}.inlineData"))
            elif field(item, "fileData") is not None:
                media.append(_file_block(field(item, "fileData"), f"{item_at}.fileData"))
    if call is None:
        log.debug("gemini→anthropic request: a response from %r answers no call; sent as text", name)
        return {"type": "text", "text": f"Result of function {name}: {text}" if text else f"Result of function {name}"}
    call.answered = True
    block: dict = {"type": "tool_result", "tool_use_id": call.id}
    if media:
        block["content"] = ([{"type": "text", "text": text}] if text else []) + media
    elif text:
        block["content"] = text
    if is_error:
        block["is_error"] = True
    return block


def _result_text(payload: dict) -> tuple[str, bool]:
    """``{"output": x}`` → x; ``{"error": x}`` → x, an error; anything else → its JSON."""
    if len(payload) == 1:
        key, value = next(iter(payload.items()))
        if key in ("output", "error"):
            return (value if isinstance(value, str) else _json(value)), key == "error"
    return ("" if not payload else _json(payload)), False


def _json(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer beyond 64 bits
        return str(value)


def _convert_tools(tools: object) -> list[dict]:
    if tools is None:
        return []
    converted = []
    for i, tool in enumerate(expect_list(tools, "tools")):
        at = f"tools[{i}]"
        tool = expect_dict(tool, at)
        declarations = field(tool, "functionDeclarations")
        if declarations is not None:
            for j, declaration in enumerate(expect_list(declarations, f"{at}.functionDeclarations")):
                converted.append(_tool(declaration, f"{at}.functionDeclarations[{j}]"))
        for key in tool:
            if _camel(key) != "functionDeclarations":
                log.debug("gemini→anthropic request: dropping the %r tool at %s: it runs inside Google's service", key, at)
    return converted


def _tool(declaration: object, at: str) -> dict:
    declaration = expect_dict(declaration, at)
    tool: dict = {"name": expect_str(declaration.get("name"), f"{at}.name")}
    description = optional_str(declaration.get("description"), f"{at}.description")
    if description:
        tool["description"] = description
    openapi = declaration.get("parameters")
    json_schema = field(declaration, "parametersJsonSchema")
    if openapi is not None and json_schema is not None:
        raise invalid(f"{at}.parametersJsonSchema: give parameters or parametersJsonSchema, not both", f"{at}.parametersJsonSchema")
    if json_schema is not None:
        schema = normalize_json_schema(json_schema, f"{at}.parametersJsonSchema")
    elif openapi is not None:
        schema = openapi_to_json_schema(openapi, f"{at}.parameters")
    else:
        schema = {"type": "object", "properties": {}}
    if "type" not in schema:  # Anthropic requires an object schema
        schema = {"type": "object", **schema}
    tool["input_schema"] = schema
    return tool


def _convert_tool_config(config: object, tools: list[dict]) -> tuple[dict | None, list[dict]]:
    if config is None:
        return None, tools
    config = expect_dict(config, "toolConfig")
    calling = field(config, "functionCallingConfig")
    if calling is None:
        return None, tools
    at = "toolConfig.functionCallingConfig"
    calling = expect_dict(calling, at)
    mode = optional_str(field(calling, "mode"), f"{at}.mode")
    mode = (mode or "AUTO").upper()
    names_raw = field(calling, "allowedFunctionNames")
    names = [] if names_raw is None else [
        expect_str(n, f"{at}.allowedFunctionNames[{i}]") for i, n in enumerate(expect_list(names_raw, f"{at}.allowedFunctionNames"))
    ]
    if mode in ("AUTO", "MODE_UNSPECIFIED", "VALIDATED"):
        return {"type": "auto"}, tools
    if mode == "NONE":
        return {"type": "none"}, tools
    if mode != "ANY":
        raise invalid(f"{at}.mode: unsupported value {mode!r}"[:200], f"{at}.mode")
    if len(names) == 1:
        return {"type": "tool", "name": names[0]}, tools
    if names:
        allowed = set(names)
        tools = [t for t in tools if t["name"] in allowed]
    return {"type": "any"}, tools


def _convert_json_mode(generation: dict, out: dict) -> None:
    mime = optional_str(field(generation, "responseMimeType"), "generationConfig.responseMimeType")
    openapi = field(generation, "responseSchema")
    json_schema = field(generation, "responseJsonSchema")
    if openapi is not None and json_schema is not None:
        raise invalid(
            "generationConfig.responseJsonSchema: give responseSchema or responseJsonSchema, not both", "generationConfig.responseJsonSchema"
        )
    if mime is None or mime.lower() != "application/json":
        if mime is not None and mime.lower() != "text/plain":
            log.debug("gemini→anthropic request: responseMimeType %r has no Messages equivalent; dropping it", mime)
        return
    if json_schema is not None:
        schema = normalize_json_schema(json_schema, "generationConfig.responseJsonSchema")
    elif openapi is not None:
        schema = openapi_to_json_schema(openapi, "generationConfig.responseSchema")
    else:
        log.debug("gemini→anthropic request: JSON mode without a schema has no Messages equivalent; dropping it")
        return
    out["output_config"] = {"format": {"type": "json_schema", "schema": strict_object_schema(schema)}}


def _convert_thinking(config: object, client_max: int | None, default_max_tokens: int, out: dict) -> None:
    if config is None:
        return
    at = "generationConfig.thinkingConfig"
    config = expect_dict(config, at)
    optional_bool(field(config, "includeThoughts"), f"{at}.includeThoughts")
    budget_raw = field(config, "thinkingBudget")
    level = optional_str(field(config, "thinkingLevel"), f"{at}.thinkingLevel")
    if budget_raw is not None and level is not None:
        raise invalid(f"{at}.thinkingLevel: give thinkingBudget or thinkingLevel, not both", f"{at}.thinkingLevel")
    if budget_raw is not None:
        if isinstance(budget_raw, bool) or not isinstance(budget_raw, int) or budget_raw < -1:
            raise invalid(f"{at}.thinkingBudget: expected an integer ≥ -1, got {budget_raw!r}"[:200], f"{at}.thinkingBudget")
        if budget_raw == 0:
            return
        budget = _DYNAMIC_BUDGET if budget_raw == -1 else max(budget_raw, MIN_THINKING_BUDGET)
    elif level is not None:
        name = level.lower()
        if name == "thinking_level_unspecified":
            budget = _DYNAMIC_BUDGET
        else:
            found = budget_for_effort(name) if name in ("minimal", "low", "medium", "high", "xhigh") else None
            if found is None:
                raise invalid(f"{at}.thinkingLevel: unsupported value {level!r}"[:200], f"{at}.thinkingLevel")
            budget = found
    else:
        budget = _DYNAMIC_BUDGET  # includeThoughts alone: the model's default, dynamic thinking

    budget, max_tokens = thinking_room(budget, client_max, default_max_tokens)

    enable_thinking(out, budget, max_tokens, direction="gemini→anthropic", limit_name="maxOutputTokens",
                    lost_thinking="the last model turn with function calls came back without its thinking")


# --- countTokens --------------------------------------------------------------------------


def gemini_count_tokens_to_messages(body: dict, *, upstream_model: str, default_max_tokens: int) -> dict:
    """A ``countTokens`` body (``contents`` alone, or a whole ``generateContentRequest``) as a
    Messages body for counting."""
    body = expect_dict(body, "body")
    inner = field(body, "generateContentRequest")
    request = expect_dict(inner, "generateContentRequest") if inner is not None else body
    return gemini_request_to_messages(request, upstream_model=upstream_model, stream=False, default_max_tokens=default_max_tokens)


def gemini_count_tokens_response(input_tokens: int) -> dict:
    return {"totalTokens": input_tokens}
