"""Tool-call arguments: OpenAI's JSON *string* ⇄ Anthropic's ``input`` *object*.

Models served by OpenAI-compatible servers sometimes produce arguments that are not a
JSON object (truncated at ``max_tokens``, trailing prose, a bare string). Anthropic needs an
object, so such arguments are kept verbatim as ``{"_raw_arguments": "<the string>"}``
rather than dropped or raised on: the client's tool sees a schema mismatch and reports it
back to the model, which can retry. Going the other way the wrapper is unwrapped, so a
round trip gives back the exact string.
"""

from __future__ import annotations

import orjson

from keystile.translate.invalid_request import invalid

RAW_ARGUMENTS_KEY = "_raw_arguments"


def parse_arguments(raw: object) -> dict:
    """OpenAI ``function.arguments`` → Anthropic ``input``; never raises."""
    if isinstance(raw, dict):  # a few servers send an object instead of a string
        return raw
    if raw is None:
        return {}
    if not isinstance(raw, str):
        return {RAW_ARGUMENTS_KEY: orjson.dumps(raw).decode()}
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {RAW_ARGUMENTS_KEY: raw}
    return value if isinstance(value, dict) else {RAW_ARGUMENTS_KEY: raw}


def dump_arguments(tool_input: object, field: str = "input") -> str:
    """Anthropic ``input`` → OpenAI ``function.arguments`` (the raw string if it was wrapped)."""
    if isinstance(tool_input, dict) and len(tool_input) == 1:
        raw = tool_input.get(RAW_ARGUMENTS_KEY)
        if isinstance(raw, str):
            return raw
    try:
        return orjson.dumps(tool_input).decode()
    except TypeError as exc:  # e.g. an integer beyond 64 bits
        raise invalid(f"{field}: cannot be encoded as JSON ({exc})", field) from None


def is_complete_object(text: str) -> bool:
    """True if ``text`` is a whole JSON object or array: no further fragment can extend it."""
    if not text:
        return False
    try:
        return isinstance(orjson.loads(text), (dict, list))
    except orjson.JSONDecodeError:
        return False
