"""Deterministic replies in the Anthropic and OpenAI wire formats, computed from the request.

Pure functions, no I/O: the in-process ``mock`` provider and the mock upstream server
(``keystile.testing.upstream``) both answer with them. The same request always gets the same
reply, so tests can assert on text, tool calls and token counts.

What the "model" does:

* Plain conversation: ``"Hello from keystile mock. You said: <last user text, ~100 chars>"``.
* Tools defined (and ``tool_choice`` is not ``none``) and the last user turn is not a tool
  result — and either ``auto_tools`` (the default; the mock upstream server) or a
  ``tool_choice`` that forces a tool (the built-in provider, so a demo Claude Code session
  gets text instead of placeholder tool calls): a call to the chosen tool (the named one, else the first) with an input built
  from the tool's JSON schema (required properties: string → ``"mock"`` or the first enum
  value, integer/number → 1, boolean → true, array → [], object → {}).
* Last user turn carries tool results: ``"Tool result received: <content>"``.
* Structured output asked for (Anthropic ``output_config.format``, Chat ``response_format``,
  Responses ``text.format``, Gemini ``responseMimeType: application/json``): the text is a
  JSON object built from the schema like a tool input (no schema: ``{"reply": <the text>}``),
  so a client that parses it (Gemini CLI's routing call) gets what it asked for.
* ``max_tokens`` (counted in words) and stop sequences truncate text replies.

Usage is an estimate: input tokens = ceil(characters of text / 4), at least 1; output
tokens = words in the reply text plus ceil(tool input JSON characters / 4). When the
request marks ``cache_control``, the prompt prefix up to the last marked block is reported
as cached (read by default, or written with ``cache_mode="write"``).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from typing import Literal

import orjson

from keystile.accounting.usage import Usage
from keystile.eventstream import encode_message
from keystile.sse import encode_event

CacheMode = Literal["read", "write", "none"]

CREATED = 1_735_689_600
"""The fixed ``created`` timestamp of OpenAI replies (2025-01-01): replies stay deterministic."""

GREETING = "Hello from keystile mock."
ECHO_CHARS = 100
STREAM_PIECES = 4
"""Text is streamed in about this many deltas, tool input JSON in about three fragments."""
EMBEDDING_DIMENSIONS = 8

# Values under these keys are not prompt text: base64 media, ids, discriminators.
_NOT_TEXT_KEYS = frozenset(
    {"type", "data", "id", "tool_use_id", "cache_control", "media_type", "role", "signature"}
)


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    input: dict
    arguments: str
    """``input`` as compact JSON, the way both APIs stream it."""


@dataclass(slots=True)
class Reply:
    """One answer, independent of the wire format it is rendered in."""

    text: str
    tool_call: ToolCall | None
    stop: Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]
    stop_sequence: str | None
    usage: Usage
    key: str
    """A short hex digest of the request's gist; ids are derived from it."""


# ---------------------------------------------------------------------------------------
# Anthropic Messages


def anthropic_message(body: dict, *, cache_mode: CacheMode = "read", auto_tools: bool = True) -> dict:
    """A complete Anthropic Messages response for an Anthropic request body."""
    reply = plan_anthropic(body, cache_mode=cache_mode, auto_tools=auto_tools)
    return {
        "id": "msg_mock" + reply.key,
        "type": "message",
        "role": "assistant",
        "model": _model(body),
        "content": _anthropic_content(reply),
        "stop_reason": reply.stop,
        "stop_sequence": reply.stop_sequence,
        "usage": _anthropic_usage(reply.usage),
    }


def anthropic_stream(body: dict, *, cache_mode: CacheMode = "read", auto_tools: bool = True) -> list[bytes]:
    """The same reply as complete SSE events, in the order the real API sends them."""
    reply = plan_anthropic(body, cache_mode=cache_mode, auto_tools=auto_tools)
    start_usage = _anthropic_usage(reply.usage)
    start_usage["output_tokens"] = 1
    events = [
        _anthropic_event(
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_mock" + reply.key,
                    "type": "message",
                    "role": "assistant",
                    "model": _model(body),
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": start_usage,
                },
            },
        )
    ]
    for index, block in enumerate(_anthropic_content(reply)):
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in split_text(block["text"])]
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in split_json(reply.tool_call.arguments)
            ]
        events.append(
            _anthropic_event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            )
        )
        if index == 0:
            events.append(_anthropic_event("ping", {"type": "ping"}))
        for delta in deltas:
            events.append(
                _anthropic_event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(
            _anthropic_event("content_block_stop", {"type": "content_block_stop", "index": index})
        )
    final_usage = _anthropic_usage(reply.usage)
    del final_usage["service_tier"], final_usage["cache_creation"]
    events.append(
        _anthropic_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop, "stop_sequence": reply.stop_sequence},
                "usage": final_usage,
            },
        )
    )
    events.append(_anthropic_event("message_stop", {"type": "message_stop"}))
    return events


def anthropic_count_tokens(body: dict) -> dict:
    """The ``/v1/messages/count_tokens`` answer: every input token, cached or not."""
    total, _ = _prompt_tokens(body, (body.get("tools"), body.get("system"), body.get("messages")))
    return {"input_tokens": total}


def plan_anthropic(body: dict, *, cache_mode: CacheMode = "read", auto_tools: bool = True) -> Reply:
    messages = _list(body.get("messages"))
    user_text, tool_results = _anthropic_last_user_turn(messages)
    tools = [
        tool
        for tool in _list(body.get("tools"))
        if isinstance(tool, dict) and isinstance(tool.get("input_schema"), dict)
    ]
    choice = body.get("tool_choice")
    forced = isinstance(choice, dict) and choice.get("type") in ("any", "tool")
    wants_tools = (auto_tools or forced) and not (isinstance(choice, dict) and choice.get("type") == "none")
    named = choice.get("name") if isinstance(choice, dict) and choice.get("type") == "tool" else None
    tool = _pick_tool(tools, named, lambda t: t.get("name")) if wants_tools and tool_results is None else None
    schema = tool.get("input_schema") if tool is not None else None
    stops = [s for s in _list(body.get("stop_sequences")) if isinstance(s, str) and s]
    return _plan(
        body,
        user_text,
        tool_results,
        (tool.get("name"), schema) if tool is not None else None,
        stops,
        body.get("max_tokens"),
        (body.get("tools"), body.get("system"), messages),
        cache_mode,
        tool_id_prefix="toolu_mock",
        json_schema=_anthropic_json_schema(body),
    )


def _anthropic_json_schema(body: dict) -> dict | None:
    """``output_config.format`` (or the older beta ``output_format``): ``{"type": "json_schema", "schema"}``."""
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else body.get("output_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _anthropic_last_user_turn(messages: list) -> tuple[str, str | None]:
    """(text of the last user message, joined tool results if that message carries any)."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content, None
        texts: list[str] = []
        results: list[str] = []
        for block in _list(content):
            if not isinstance(block, dict):
                continue
            if block.get("type") == "text":
                text = _str(block.get("text"))
                if not text.lstrip().startswith("<system-reminder>"):  # context Claude Code injects
                    texts.append(text)
            elif block.get("type") == "tool_result":
                results.append(_block_text(block.get("content")))
        return " ".join(texts), (" ".join(results) if results else None)
    return "", None


def _anthropic_content(reply: Reply) -> list[dict]:
    content: list[dict] = [{"type": "text", "text": reply.text}]
    call = reply.tool_call
    if call is not None:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input})
    return content


def _anthropic_usage(usage: Usage) -> dict:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_write_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "output_tokens": usage.output_tokens,
        "service_tier": "standard",
    }


def _anthropic_event(name: str, payload: dict) -> bytes:
    return encode_event(orjson.dumps(payload), name)


# ---------------------------------------------------------------------------------------
# OpenAI Chat Completions and embeddings


def openai_completion(body: dict, *, cache_mode: CacheMode = "read", auto_tools: bool = True) -> dict:
    """A complete ``chat.completion`` object for an OpenAI Chat Completions request body."""
    reply = plan_openai(body, cache_mode=cache_mode, auto_tools=auto_tools)
    message: dict = {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []}
    call = reply.tool_call
    if call is not None:
        message["content"] = None
        message["tool_calls"] = [
            {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
        ]
    return {
        "id": "chatcmpl-mock" + reply.key,
        "object": "chat.completion",
        "created": CREATED,
        "model": _model(body),
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": _finish_reason(reply)}
        ],
        "usage": _openai_usage(reply.usage),
        "service_tier": "default",
        "system_fingerprint": "fp_keystile_mock",
    }


def openai_stream(body: dict, *, cache_mode: CacheMode = "read", auto_tools: bool = True) -> list[bytes]:
    """``chat.completion.chunk`` events, the usage chunk if asked for, then ``[DONE]``."""
    reply = plan_openai(body, cache_mode=cache_mode, auto_tools=auto_tools)
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    base = {
        "id": "chatcmpl-mock" + reply.key,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": _model(body),
        "service_tier": "default",
        "system_fingerprint": "fp_keystile_mock",
    }

    def chunk(delta: dict, finish_reason: str | None = None) -> bytes:
        payload = dict(base)
        payload["choices"] = [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        ]
        if include_usage:
            # With include_usage every chunk carries "usage": null except the last one.
            payload["usage"] = None
        return encode_event(orjson.dumps(payload))

    finish = _finish_reason(reply)
    call = reply.tool_call
    if call is not None:
        fragments = split_json(call.arguments)
        events = [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ],
                }
            )
        ]
        for i, fragment in enumerate(fragments):
            events.append(
                chunk(
                    {"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]},
                    finish if i == len(fragments) - 1 else None,
                )
            )
    else:
        pieces = split_text(reply.text)
        events = [chunk({"role": "assistant", "content": "", "refusal": None})]
        for i, piece in enumerate(pieces):
            events.append(chunk({"content": piece}, finish if i == len(pieces) - 1 else None))
        if not pieces:
            events.append(chunk({}, finish))
    if include_usage:
        payload = dict(base)
        payload["choices"] = []
        payload["usage"] = _openai_usage(reply.usage)
        events.append(encode_event(orjson.dumps(payload)))
    events.append(b"data: [DONE]\n\n")
    return events


def openai_embeddings(body: dict) -> dict:
    """A ``list`` of embeddings: unit vectors derived from a hash of each input."""
    raw = body.get("input")
    inputs: list = raw if isinstance(raw, list) and raw and not isinstance(raw[0], int) else [raw]
    dimensions = body.get("dimensions")
    if not isinstance(dimensions, int) or isinstance(dimensions, bool) or not 1 <= dimensions <= 4096:
        dimensions = EMBEDDING_DIMENSIONS
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        if isinstance(item, str):
            tokens += _tokens_for_chars(len(item))
            seed = item.encode()
        else:
            tokens += len(item) if isinstance(item, list) else 1
            seed = orjson.dumps(item)
        vector = embedding_vector(seed, dimensions)
        embedding: list[float] | str = vector
        if as_base64:
            embedding = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": _model(body),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def embedding_vector(seed: bytes, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for ``seed``."""
    digest = b""
    counter = 0
    while len(digest) < 2 * dimensions:
        digest += hashlib.blake2b(seed, digest_size=64, salt=counter.to_bytes(16, "little")).digest()
        counter += 1
    values = [(int.from_bytes(digest[2 * i : 2 * i + 2], "little") / 32767.5) - 1.0 for i in range(dimensions)]
    norm = sum(v * v for v in values) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in values]


def plan_openai(body: dict, *, cache_mode: CacheMode = "read", auto_tools: bool = True) -> Reply:
    messages = _list(body.get("messages"))
    user_text, tool_results = _openai_last_user_turn(messages)
    tools = [
        tool
        for tool in _list(body.get("tools"))
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    named = None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        named = choice["function"].get("name")
    forced = choice == "required" or named is not None
    wants_tools = (auto_tools or forced) and choice != "none"
    tool = (
        _pick_tool(tools, named, lambda t: t["function"].get("name"))
        if wants_tools and tool_results is None
        else None
    )
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in _list(stop) if isinstance(s, str)]
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    spec = None
    if tool is not None:
        function = tool["function"]
        spec = (function.get("name"), function.get("parameters"))
    return _plan(
        body,
        user_text,
        tool_results,
        spec,
        [s for s in stops if s],
        max_tokens,
        (body.get("tools"), messages),
        cache_mode,
        tool_id_prefix="call_mock",
        json_schema=openai_json_schema(body.get("response_format"), nested=True),
    )


def openai_json_schema(fmt: object, *, nested: bool) -> dict | None:
    """Chat's ``response_format`` (schema under ``json_schema.schema``: ``nested``) or Responses'
    ``text.format`` (schema beside ``type``); ``json_object`` is any JSON object."""
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {}
    if fmt.get("type") != "json_schema":
        return None
    holder = fmt.get("json_schema") if nested else fmt
    schema = holder.get("schema") if isinstance(holder, dict) else None
    return schema if isinstance(schema, dict) else {}


def _openai_last_user_turn(messages: list) -> tuple[str, str | None]:
    """Tool results are the ``tool`` messages after the last assistant message, if any."""
    results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role in ("tool", "function"):
            results.append(_block_text(message.get("content")))
            continue
        if results:
            break
        if role == "user":
            return _block_text(message.get("content")), None
    if results:
        return "", " ".join(reversed(results))
    return "", None


def _openai_usage(usage: Usage) -> dict:
    prompt = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output_tokens,
        "total_tokens": prompt + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish_reason(reply: Reply) -> str:
    return {"tool_use": "tool_calls", "max_tokens": "length"}.get(reply.stop, "stop")


# ---------------------------------------------------------------------------------------
# Shared planning


def _plan(
    body: dict,
    user_text: str,
    tool_results: str | None,
    tool: tuple[object, object] | None,
    stop_sequences: list[str],
    max_tokens: object,
    prompt_parts: tuple,
    cache_mode: CacheMode,
    *,
    tool_id_prefix: str,
    json_schema: dict | None = None,
) -> Reply:
    """``json_schema``: the client asked for JSON output in this shape (``{}``: any JSON object)."""
    total, cached = _prompt_tokens(body, prompt_parts)
    if cache_mode == "none":
        cached = 0
    usage = Usage(input_tokens=total - cached)
    if cache_mode == "write":
        usage.cache_write_tokens = cached
    else:
        usage.cache_read_tokens = cached

    if tool is not None:
        name = tool[0] if isinstance(tool[0], str) else "tool"
        arguments_input = input_from_schema(tool[1])
        arguments = orjson.dumps(arguments_input).decode()
        key = _digest(_model(body), user_text, name)
        text = f"Calling {name}."
        usage.output_tokens = len(text.split()) + _tokens_for_chars(len(arguments))
        call = ToolCall(tool_id_prefix + key, name, arguments_input, arguments)
        return Reply(text, call, "tool_use", None, usage, key)

    if tool_results is not None:
        text = "Tool result received: " + _echo(tool_results)
    else:
        echoed = _echo(user_text)
        text = f"{GREETING} You said: {echoed}" if echoed else GREETING
    if json_schema is not None:
        shaped = input_from_schema(json_schema) if json_schema.get("properties") else {"reply": text}
        text = orjson.dumps(shaped).decode()
        usage.output_tokens = _tokens_for_chars(len(text))
        return Reply(text, None, "end_turn", None, usage, _digest(_model(body), user_text, text))
    stop: Literal["end_turn", "max_tokens", "stop_sequence"] = "end_turn"
    matched: str | None = None
    cut = len(text)
    for sequence in stop_sequences:
        position = text.find(sequence)
        if 0 <= position < cut:
            cut, matched = position, sequence
    if matched is not None:
        text, stop = text[:cut], "stop_sequence"
    words = text.split()
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and 0 < max_tokens < len(words):
        text, stop, matched = " ".join(words[:max_tokens]), "max_tokens", None
        words = words[:max_tokens]
    usage.output_tokens = max(len(words), 1)
    return Reply(text, None, stop, matched, usage, _digest(_model(body), user_text, tool_results or ""))


def input_from_schema(schema: object) -> dict:
    """A tool input satisfying ``schema``'s required properties, with placeholder values."""
    if not isinstance(schema, dict):
        return {}
    properties = schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    result: dict = {}
    for name in _list(schema.get("required")):
        if isinstance(name, str):
            prop = properties.get(name)
            result[name] = _placeholder(prop if isinstance(prop, dict) else {})
    return result


def _placeholder(prop: dict) -> object:
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind in ("integer", "number"):
        return 1
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return input_from_schema(prop)
    return "mock"


def _pick_tool(tools: list[dict], named: object, name_of) -> dict | None:
    if not tools:
        return None
    if isinstance(named, str):
        for tool in tools:
            if name_of(tool) == named:
                return tool
    return tools[0]


def _prompt_tokens(body: dict, parts: tuple) -> tuple[int, int]:
    """(all input tokens, tokens of the prefix up to the last ``cache_control`` mark)."""
    total = 0
    marked = 0
    for part in parts:
        if isinstance(part, str):
            total += len(part)
            continue
        for unit in _list(part):
            if isinstance(unit, dict) and isinstance(unit.get("content"), list) and "role" in unit:
                # A message: the cache marks sit on its content blocks.
                for block in unit["content"]:
                    total += _chars(block)
                    if isinstance(block, dict) and block.get("cache_control"):
                        marked = total
                continue
            total += _chars(unit)
            if isinstance(unit, dict) and unit.get("cache_control"):
                marked = total
    if body.get("cache_control"):
        marked = total
    tokens = _tokens_for_chars(total)
    cached = min(_tokens_for_chars(marked), tokens - 1) if marked else 0
    return tokens, cached


def _chars(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(v) for k, v in value.items() if k not in _NOT_TEXT_KEYS)
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    return 0


def _tokens_for_chars(chars: int) -> int:
    return max((chars + 3) // 4, 1)


# ---------------------------------------------------------------------------------------
# Streaming splits and small helpers


def split_text(text: str, pieces: int = STREAM_PIECES) -> list[str]:
    """``text`` in up to ``pieces`` deltas cut at word boundaries; they join back exactly."""
    if not text:
        return []
    words = text.split(" ")
    size = max(-(-len(words) // pieces), 1)
    out = [" ".join(words[i : i + size]) for i in range(0, len(words), size)]
    return [piece if i == 0 else " " + piece for i, piece in enumerate(out)]


def split_json(arguments: str, pieces: int = 3) -> list[str]:
    """Tool input JSON in a few arbitrary fragments, as the providers stream it."""
    size = max(-(-len(arguments) // pieces), 1)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _echo(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= ECHO_CHARS else flat[:ECHO_CHARS].rstrip() + "…"


def _block_text(content: object) -> str:
    """Text of a string or of a list of content blocks / parts."""
    if isinstance(content, str):
        return content
    texts = [
        _str(block.get("text"))
        for block in _list(content)
        if isinstance(block, dict) and block.get("type") == "text"
    ]
    return " ".join(texts)


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=10).hexdigest()


def _model(body: dict) -> str:
    model = body.get("model")
    return model if isinstance(model, str) else "mock"


def _list(value: object) -> list:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


# ---------------------------------------------------------------------------------------
# Bedrock: the Messages stream in AWS event-stream frames


def bedrock_frames(events: list[bytes]) -> list[bytes]:
    """Messages SSE events as Bedrock's InvokeModelWithResponseStream frames them: one ``chunk``
    per event, ``{"bytes": base64(<event JSON>), "p": <padding>}``, and the invocation metrics
    Bedrock adds to ``message_stop``."""
    frames = []
    headers = {":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}
    input_tokens = output_tokens = 0
    for raw in events:
        data = raw.split(b"data: ", 1)[1].rstrip(b"\n")
        payload = orjson.loads(data)
        if payload.get("type") == "message_start":
            input_tokens = payload["message"]["usage"].get("input_tokens", 0)
        elif payload.get("type") == "message_delta":
            output_tokens = payload.get("usage", {}).get("output_tokens", 0)
        elif payload.get("type") == "message_stop":
            payload["amazon-bedrock-invocationMetrics"] = {
                "inputTokenCount": input_tokens,
                "outputTokenCount": output_tokens,
                "invocationLatency": 1,
                "firstByteLatency": 1,
            }
            data = orjson.dumps(payload)
        chunk = {"bytes": base64.b64encode(data).decode(), "p": "abcdefghijklmnopqrstuvwxyz"[: 1 + len(frames) % 26]}
        frames.append(encode_message(headers, orjson.dumps(chunk)))
    return frames
