"""An upstream's answer, checked before the client sees it: a JSON object, or an error in the
client's format that says what the upstream sent instead.

Upstreams are expected to answer JSON (or SSE, which the relay checks). What else arrives —
a proxy's HTML login page with status 200, an error page from a load balancer, a body with
a lone surrogate — must not reach an SDK labelled ``application/json``, and must not lose
the charge when the upstream did run the model:

- a 2xx answer that is not a JSON object is a **502** (``read_answer`` raises
  `UnreadableAnswer`). It is charged the usage the upstream reported in it when that part
  can still be read (`recover_usage`: a broken string elsewhere does not hide a well-formed
  ``usage`` object); when it cannot, a body that looks like the model's own JSON is charged
  an estimate of its input, as a stream cut short is, and a page that is not JSON at all
  (HTML, text: someone other than the model answered) is charged nothing.
- a 2xx answer to a streaming request that is plainly a page, not an event stream (HTML, by
  its type or its first byte), is a 502 before anything reaches the client (``stream_page``).
- an error answer (4xx/5xx) whose body is not JSON keeps the upstream's status and becomes
  the client's error format, saying the upstream answered with an HTML or text page
  (``error_page``); a JSON error body is left to the usual pass-through / translation.

The checks reuse the parse keystile needs anyway (usage, translation): a readable answer
costs nothing extra.
"""

from __future__ import annotations

import re

import orjson

from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, GatewayError, error_body, kind_for_status
from keystile.formats import FORMATS
from keystile.translate.invalid_request import json_type_name
from keystile.upstream.errors import UpstreamTooLarge

__all__ = ["UnreadableAnswer", "read_answer", "recover_usage", "stream_page", "error_page", "too_large_error"]

_QUOTE = 200  # characters of upstream text quoted in a message
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
_USAGE_KEY = b'"usage"'


class UnreadableAnswer(GatewayError):
    """A 2xx upstream answer that is not a JSON object: a 502 for the client.

    ``usage`` is what the upstream reported in it, when that much could still be read;
    ``from_model`` says the body looks like the model's JSON (broken), not a page put in its
    place — with no usage, the caller charges an estimate for the former and nothing for the latter.
    """

    def __init__(self, message: str, *, usage: Usage | None, from_model: bool) -> None:
        super().__init__(ErrorKind.UPSTREAM_ERROR, message)
        self.usage = usage
        self.from_model = from_model


def read_answer(data: bytes, status: int, content_type: bytes | None, wire: ApiFormat) -> dict:
    """The JSON object of a successful upstream answer; raises `UnreadableAnswer` for anything else."""
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        kind = _page_kind(data, content_type)
        if kind is None:
            reason = f"a body that is not valid JSON ({_quote(str(exc))})"
        else:
            reason = f"{kind} instead of JSON{_page_excerpt(data)}"
        raise UnreadableAnswer(
            _sentence(f"The upstream answered HTTP {status} with {reason}"),
            usage=recover_usage(data, wire),
            from_model=kind is None and data.lstrip()[:1] == b"{",
        ) from None
    if not isinstance(parsed, dict):
        raise UnreadableAnswer(
            f"The upstream answered HTTP {status} with JSON that is {json_type_name(parsed)}, not an object.",
            usage=None,
            from_model=False,
        )
    return parsed


def recover_usage(data: bytes, wire: ApiFormat) -> Usage | None:
    """The usage in a body that does not parse as a whole, if its ``usage`` object is intact.

    The last unescaped ``"usage"`` key is taken (inside a JSON string every quote is escaped,
    so it is a key; Anthropic and OpenAI put the top-level usage after the content), the
    object after it is matched brace by brace, parsed on its own and read as ``wire``'s usage.
    """
    at = data.rfind(_USAGE_KEY)
    if at < 0:
        return None
    start = data.find(b"{", at + len(_USAGE_KEY))
    if start < 0 or data[at + len(_USAGE_KEY):start].strip() != b":":
        return None
    end = _object_end(data, start)
    if end is None:
        return None
    try:
        usage = orjson.loads(data[start:end])
    except orjson.JSONDecodeError:
        return None
    if not isinstance(usage, dict):
        return None
    found: Usage = FORMATS[wire].usage({"usage": usage})
    return found if found.total_tokens else None


def stream_page(status: int, content_type: bytes | None, first: bytes) -> GatewayError | None:
    """The 502 for a 2xx answer to a streaming request that is an HTML page, not an event
    stream (judged from its type and its first chunk); None for anything else (the relay
    judges the events)."""
    media = (content_type or b"").split(b";", 1)[0].strip().lower()
    if media == b"text/event-stream":
        return None
    if b"html" not in media and first.lstrip()[:1] != b"<":
        return None
    return GatewayError(
        ErrorKind.UPSTREAM_ERROR,
        _sentence(f"The upstream answered HTTP {status} with an HTML page instead of an event stream{_page_excerpt(first)}"),
    )


def error_page(body: bytes, status: int, content_type: bytes | None, client: ApiFormat) -> bytes | None:
    """An upstream error answer whose body is not JSON, as the client's error body (None: it is JSON).

    The caller keeps the upstream's status; the message names what came instead (an HTML or
    text page, an empty body) and quotes its title or first words.
    """
    stripped = body.strip()
    if stripped:
        try:
            parsed = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
        else:
            if isinstance(parsed, (dict, list)):
                return None
    if not stripped:
        message = f"The upstream answered HTTP {status} with an empty body."
    else:
        kind = _page_kind(body, content_type) or "a body that is not JSON"
        message = _sentence(f"The upstream answered HTTP {status} with {kind} instead of a JSON error{_page_excerpt(body)}")
    return orjson.dumps(error_body(client, kind_for_status(status), message))


def too_large_error(exc: UpstreamTooLarge, where: str = "") -> GatewayError:
    """The 502 for an upstream answer over one of the ``upstream:`` size caps (``where``: " (deployment id)")."""
    setting = "upstream.max_header_bytes" if exc.part == "headers" else "upstream.max_body_bytes"
    what = "response headers" if exc.part == "headers" else "an answer"
    return GatewayError(
        ErrorKind.UPSTREAM_ERROR,
        f"The upstream{where} sent {what} larger than keystile accepts ({setting}: {exc.limit} bytes).",
    )


def _page_kind(body: bytes, content_type: bytes | None) -> str | None:
    """"an HTML page" / "a text page" for a body that is plainly not JSON; None for one that looks like JSON."""
    head = body[:512].lstrip().lower()
    media = (content_type or b"").split(b";", 1)[0].strip().lower()
    if b"html" in media or head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<title")):
        return "an HTML page"
    if head[:1] in (b"{", b"[") or media.endswith(b"json"):
        return None
    return "a text page" if media.startswith(b"text/") or not media else f"a {media.decode('latin-1')[:50]} body"


def _page_excerpt(body: bytes) -> str:
    """``: <title>`` of an HTML page, or its first words; nothing for an empty one."""
    title = _TITLE.search(body[:8192])
    if title:
        text = title.group(1).decode("utf-8", "replace")
    else:
        text = body[: _QUOTE * 4].decode("utf-8", "replace")
        if "<" in text:
            text = _TAG.sub(" ", text)
    text = " ".join(text.split())
    return f": {_quote(text)}" if text else ""


def _sentence(text: str) -> str:
    """``text`` with a full stop, unless the quoted page already ended it."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _quote(text: str) -> str:
    return text if len(text) <= _QUOTE else text[: _QUOTE - 1] + "…"


def _object_end(data: bytes, start: int) -> int | None:
    """Index just past the ``}`` closing the object that opens at ``start`` (strings skipped)."""
    depth = 0
    i = start
    length = len(data)
    while i < length:
        byte = data[i]
        if byte == 0x22:  # '"': skip the string, escapes included
            i += 1
            while i < length and data[i] != 0x22:
                i += 2 if data[i] == 0x5C else 1
        elif byte == 0x7B:  # '{'
            depth += 1
        elif byte == 0x7D:  # '}'
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None

