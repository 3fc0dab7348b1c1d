"""The mock model's replies in Google's Gemini format (``generateContent``, ``streamGenerateContent``).

The same deterministic "model" as ``mock_replies``, written by hand in Gemini's shapes (not
through keystile's translators). A streamed reply is ``data:`` events only, the last one
carrying ``finishReason`` and ``usageMetadata``, as Google's ``alt=sse`` stream does.
"""

from __future__ import annotations

import orjson

from keystile.accounting.usage import Usage
from keystile.providers.mock_replies import Reply, _list, _plan, split_text


def plan_gemini(body: dict, model: str, *, cache_mode: str = "read", auto_tools: bool = True) -> Reply:
    contents = _list(body.get("contents"))
    user_text, tool_results = _last_user_turn(contents)
    declarations = [
        d
        for tool in _list(body.get("tools"))
        if isinstance(tool, dict)
        for d in _list(tool.get("functionDeclarations"))
        if isinstance(d, dict)
    ]
    config = body.get("toolConfig")
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    mode = calling.get("mode") if isinstance(calling, dict) else None
    forced = mode == "ANY"
    wants_tools = (auto_tools or forced) and mode != "NONE"
    tool = declarations[0] if wants_tools and tool_results is None and declarations else None
    spec = None
    if tool is not None:
        spec = (tool.get("name"), tool.get("parametersJsonSchema") or _json_schema(tool.get("parameters")))
    generation = body.get("generationConfig")
    generation = generation if isinstance(generation, dict) else {}
    system = body.get("systemInstruction")
    return _plan(
        {**body, "model": model},
        user_text,
        tool_results,
        spec,
        [s for s in _list(generation.get("stopSequences")) if isinstance(s, str) and s],
        generation.get("maxOutputTokens"),
        (system, body.get("tools"), contents),
        cache_mode,  # type: ignore[arg-type]
        tool_id_prefix="call_mock",
        json_schema=_gemini_json_schema(generation),
    )


def _gemini_json_schema(generation: dict) -> dict | None:
    """JSON mode: ``responseMimeType: application/json`` with ``responseJsonSchema`` or ``responseSchema``."""
    if generation.get("responseMimeType") != "application/json":
        return None
    schema = generation.get("responseJsonSchema") or _json_schema(generation.get("responseSchema"))
    return _json_schema(schema) if isinstance(schema, dict) else {}


def _json_schema(schema: object) -> object:
    """Gemini's OpenAPI-style schema (``"type": "OBJECT"``) with JSON Schema's lower-case types."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _json_schema(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_json_schema(v) for v in schema]
    return schema


def _last_user_turn(contents: list) -> tuple[str, str | None]:
    for content in reversed(contents):
        if not isinstance(content, dict) or content.get("role", "user") != "user":
            continue
        texts, results = [], []
        for part in _list(content.get("parts")):
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str) and not part.get("thought"):
                texts.append(part["text"])
            response = part.get("functionResponse")
            if isinstance(response, dict):
                results.append(orjson.dumps(response.get("response")).decode())
        if results:
            return "", " ".join(results)
        return " ".join(texts), None
    return "", None


def _usage(usage: Usage) -> dict:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    out = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": prompt + usage.output_tokens,
    }
    if usage.cache_read_tokens:
        out["cachedContentTokenCount"] = usage.cache_read_tokens
    return out


_FINISH = {"max_tokens": "MAX_TOKENS"}


def _chunk(model: str, reply: Reply, parts: list[dict], finish: bool) -> dict:
    candidate: dict = {"content": {"role": "model", "parts": parts}, "index": 0}
    out: dict = {"candidates": [candidate], "modelVersion": model, "responseId": "mock" + reply.key}
    if finish:
        candidate["finishReason"] = _FINISH.get(reply.stop, "STOP")
        out["usageMetadata"] = _usage(reply.usage)
    return out


def _parts(reply: Reply) -> list[dict]:
    call = reply.tool_call
    if call is not None:
        return [{"functionCall": {"name": call.name, "args": call.input}}]
    return [{"text": reply.text}]


def gemini_response(body: dict, model: str, *, cache_mode: str = "read", auto_tools: bool = True) -> dict:
    reply = plan_gemini(body, model, cache_mode=cache_mode, auto_tools=auto_tools)
    return _chunk(model, reply, _parts(reply), True)


def gemini_stream(body: dict, model: str, *, cache_mode: str = "read", auto_tools: bool = True) -> list[bytes]:
    reply = plan_gemini(body, model, cache_mode=cache_mode, auto_tools=auto_tools)
    if reply.tool_call is not None:
        chunks = [_chunk(model, reply, _parts(reply), True)]
    else:
        pieces = split_text(reply.text) or [""]
        chunks = [_chunk(model, reply, [{"text": piece}], i == len(pieces) - 1) for i, piece in enumerate(pieces)]
    return [b"data: " + orjson.dumps(chunk) + b"\r\n\r\n" for chunk in chunks]


def gemini_count_tokens(body: dict, model: str) -> dict:
    request = body.get("generateContentRequest")
    reply = plan_gemini(request if isinstance(request, dict) else body, model, auto_tools=False)
    usage = reply.usage
    return {"totalTokens": usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens}
