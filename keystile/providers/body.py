"""The upstream request body: the client's bytes with only the model renamed, or a translation.

Same-format traffic is not re-serialised: the value of the single top-level ``"model"``
key is spliced in place, so everything else reaches the upstream byte for byte. Only when
the body holds several ``"model"`` keys (a tool schema with a ``model`` property) is it
re-encoded, which orjson does faithfully in about a microsecond.
"""

from __future__ import annotations

import orjson

from keystile.apiformat import ApiFormat
from keystile.translate.request_to_anthropic import chat_request_to_messages
from keystile.translate.request_to_openai import messages_request_to_chat

_MODEL_KEY = b'"model"'
_SPACE = b" \t\r\n"


def rename_model(raw: bytes, parsed: dict, new_model: str) -> bytes:
    """``raw`` with the top-level model value replaced by ``new_model``.

    Inside a JSON string every quote is escaped, so an unescaped ``"model"`` followed by a
    colon can only be a key; when it occurs exactly once it is the top-level one.
    """
    if parsed.get("model") == new_model:
        return raw
    if raw.count(_MODEL_KEY) == 1:
        start = raw.find(_MODEL_KEY) + len(_MODEL_KEY)
        length = len(raw)
        while start < length and raw[start] in _SPACE:
            start += 1
        if start < length and raw[start] == 0x3A:  # ':'
            start += 1
            while start < length and raw[start] in _SPACE:
                start += 1
            if raw[start:start + 1] == b'"':
                end = _string_end(raw, start + 1)
                if end is not None:
                    return raw[:start] + orjson.dumps(new_model) + raw[end:]
    return orjson.dumps({**parsed, "model": new_model})


def _string_end(raw: bytes, pos: int) -> int | None:
    """Index just past the closing quote of the JSON string whose content starts at ``pos``."""
    while True:
        quote = raw.find(b'"', pos)
        if quote < 0:
            return None
        backslashes = 0
        i = quote - 1
        while i >= pos and raw[i] == 0x5C:
            backslashes += 1
            i -= 1
        if backslashes % 2 == 0:
            return quote + 1
        pos = quote + 1


def with_stream_usage(raw: bytes, parsed: dict) -> bytes:
    """An OpenAI streaming body that asks for the final usage chunk (keystile needs it to charge)."""
    options = parsed.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return raw
    if options is None and raw[:1] == b"{" and b'"stream_options"' not in raw:
        rest = raw[1:].lstrip()
        separator = b"" if rest[:1] == b"}" else b","
        return b'{"stream_options":{"include_usage":true}' + separator + rest
    merged = dict(options) if isinstance(options, dict) else {}
    merged["include_usage"] = True
    return orjson.dumps({**parsed, "stream_options": merged})


def upstream_body(
    raw: bytes,
    parsed: dict,
    *,
    client: ApiFormat,
    wire: ApiFormat,
    upstream_model: str,
    stream: bool,
    default_max_tokens: int,
) -> bytes:
    """The body to send upstream for a chat/messages call, in ``wire`` format."""
    if client is wire:
        body = rename_model(raw, parsed, upstream_model)
        if stream and wire is ApiFormat.OPENAI:
            body = with_stream_usage(body, parsed if body is raw else {**parsed, "model": upstream_model})
        return body
    if wire is ApiFormat.OPENAI:
        return orjson.dumps(messages_request_to_chat(parsed, upstream_model=upstream_model))
    return orjson.dumps(chat_request_to_messages(parsed, upstream_model=upstream_model, default_max_tokens=default_max_tokens))
