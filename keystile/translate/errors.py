"""Upstream error bodies and in-stream error events, re-shaped for the client's format.

The caller keeps the upstream HTTP status; this module keeps the upstream's message and
picks the error type from ``keystile.errors``' table. The status decides the kind (a 429
is a rate-limit error whatever the body calls it); the upstream's own type or code only
refines it among kinds with the same status (404 → ``model_not_found`` vs ``not_found``).
In-stream errors have no status, so there the upstream type decides.

Upstream bodies come in many shapes and are tolerated: OpenAI's
``{"error":{message,type,param,code}}``, Anthropic's ``{"type":"error","error":{type,message}}``,
vLLM's flat ``{"object":"error","message",…}``, Ollama's ``{"error":"<text>"}``, FastAPI's
``{"detail":…}``, HTML pages from proxies, and empty bodies.

One deliberate rewording: an OpenAI-side context-length error reaching an Anthropic client
is prefixed ``"prompt is too long: "``, the wording Claude Code recognises to offer
compaction; the upstream message follows unchanged.
"""

from __future__ import annotations

import re

import orjson

from keystile.apiformat import ANTHROPIC_FAMILY, ANTHROPIC_SHAPED, ApiFormat
from keystile.errors import ErrorKind, error_body, kind_for_status

_ANTHROPIC_TYPE_KIND = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "request_too_large": ErrorKind.REQUEST_TOO_LARGE,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "api_error": ErrorKind.INTERNAL,
    "overloaded_error": ErrorKind.OVERLOADED,
    "timeout_error": ErrorKind.UPSTREAM_TIMEOUT,
    "billing_error": ErrorKind.INVALID_REQUEST,
}

# OpenAI's ``code`` is more specific than its ``type`` (401s are "invalid_request_error").
_OPENAI_CODE_KIND = {
    "invalid_api_key": ErrorKind.AUTHENTICATION,
    "model_not_found": ErrorKind.MODEL_NOT_FOUND,
    "not_found": ErrorKind.NOT_FOUND,
    "permission_denied": ErrorKind.PERMISSION,
    "rate_limit_exceeded": ErrorKind.RATE_LIMITED,
    "insufficient_quota": ErrorKind.RATE_LIMITED,
    "budget_exceeded": ErrorKind.BUDGET_EXCEEDED,
    "request_too_large": ErrorKind.REQUEST_TOO_LARGE,
    "context_length_exceeded": ErrorKind.INVALID_REQUEST,
    "internal_error": ErrorKind.INTERNAL,
    "upstream_error": ErrorKind.UPSTREAM_ERROR,
    "service_unavailable": ErrorKind.UNAVAILABLE,
    "upstream_timeout": ErrorKind.UPSTREAM_TIMEOUT,
    "overloaded": ErrorKind.OVERLOADED,
}

_OPENAI_TYPE_KIND = {
    "invalid_request_error": ErrorKind.INVALID_REQUEST,
    "authentication_error": ErrorKind.AUTHENTICATION,
    "permission_error": ErrorKind.PERMISSION,
    "not_found_error": ErrorKind.NOT_FOUND,
    "rate_limit_error": ErrorKind.RATE_LIMITED,
    "insufficient_quota": ErrorKind.RATE_LIMITED,
    "budget_exceeded": ErrorKind.BUDGET_EXCEEDED,
    "server_error": ErrorKind.INTERNAL,
    "api_error": ErrorKind.INTERNAL,
    "timeout_error": ErrorKind.UPSTREAM_TIMEOUT,
}

_SNIPPET = 500
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")


def translate_error_body(body: bytes, status: int, *, upstream: ApiFormat, client: ApiFormat) -> bytes:
    """An upstream error response body in ``client``'s format; unchanged if the formats match,
    or if it is an Anthropic error going between Anthropic and Vertex (Vertex relays Claude's
    errors as they are; its own, Google-shaped ones are translated)."""
    if upstream is client:
        return body
    try:
        parsed = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        parsed = None
    if (upstream, client) in ANTHROPIC_SHAPED and isinstance(parsed, dict) and parsed.get("type") == "error":
        return body
    if parsed is None:
        return orjson.dumps(error_body(client, kind_for_status(status), _text_message(body, status)))
    return orjson.dumps(translate_error_object(parsed, status, upstream=upstream, client=client))


def translate_error_object(obj: object, status: int, *, upstream: ApiFormat, client: ApiFormat) -> dict:
    """A parsed upstream error (body or in-stream event) as ``client``'s error object.

    ``status`` is 0 for in-stream errors, which have none.
    """
    message, err_type, code, param = _describe(obj)
    if isinstance(code, int) and not isinstance(code, bool) and not status and code >= 400:
        status = code  # vLLM puts the HTTP status in "code"
        code = None
    code_text = code if isinstance(code, str) else None
    if upstream in ANTHROPIC_FAMILY:
        hinted = _ANTHROPIC_TYPE_KIND.get(err_type)
    else:
        hinted = _OPENAI_CODE_KIND.get(code_text) or _OPENAI_TYPE_KIND.get(err_type)
    kind = _resolve(status, hinted)
    if message is None:
        message = f"upstream error (HTTP {status})" if status else "upstream error"
    if client is ApiFormat.ANTHROPIC and upstream is ApiFormat.OPENAI and _is_context_overflow(code_text, message):
        message = "prompt is too long: " + message
    return error_body(client, kind, message, param=param if client is ApiFormat.OPENAI else None)


_GOOGLE_STATUS_KIND = {
    "INVALID_ARGUMENT": ErrorKind.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.INVALID_REQUEST,
    "OUT_OF_RANGE": ErrorKind.INVALID_REQUEST,
    "UNAUTHENTICATED": ErrorKind.AUTHENTICATION,
    "PERMISSION_DENIED": ErrorKind.PERMISSION,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMITED,
    "INTERNAL": ErrorKind.INTERNAL,
    "UNAVAILABLE": ErrorKind.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ErrorKind.UPSTREAM_TIMEOUT,
}


def error_kind_of(obj: object) -> ErrorKind | None:
    """The kind an in-band error object stands for, whatever its format: Anthropic's ``type``,
    OpenAI's ``code`` or ``type``, Google's ``status`` or numeric ``code``; None if it names none.

    Streams carry no HTTP status, so this is how a failed stream is logged with the status
    its error meant (an ``overloaded_error`` is a 529, not a 200).
    """
    if not isinstance(obj, dict):
        return None
    response = obj.get("response")  # Responses' response.failed wraps the error
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        obj = response
    _message, err_type, code, _param = _describe(obj)
    source = obj.get("error") if isinstance(obj.get("error"), dict) else obj
    google = source.get("status") if isinstance(source, dict) else None
    if isinstance(google, str) and google in _GOOGLE_STATUS_KIND:
        return _GOOGLE_STATUS_KIND[google]
    if isinstance(code, str):
        kind = _OPENAI_CODE_KIND.get(code) or _OPENAI_TYPE_KIND.get(code)
        if kind is not None:
            return kind
    if err_type is not None:
        kind = _ANTHROPIC_TYPE_KIND.get(err_type) or _OPENAI_TYPE_KIND.get(err_type)
        if kind is not None:
            return kind
    if isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        return kind_for_status(code)
    return None


def _resolve(status: int, hinted: ErrorKind | None) -> ErrorKind:
    if status >= 400:
        base = kind_for_status(status)
        return hinted if hinted is not None and hinted.status == base.status else base
    return hinted or ErrorKind.UPSTREAM_ERROR


def _describe(obj: object) -> tuple[str | None, str | None, object, str | None]:
    """(message, type, code, param) from any of the error shapes upstreams use."""
    if isinstance(obj, list) and obj:
        obj = obj[0]
    if not isinstance(obj, dict):
        return (_truncate(str(obj)) if obj is not None else None), None, None, None
    inner = obj.get("error")
    if isinstance(inner, str):
        return inner, None, None, None
    source = inner if isinstance(inner, dict) else obj
    message = source.get("message")
    if not isinstance(message, str):
        detail = source.get("detail")
        if isinstance(detail, str):
            message = detail
        elif detail is not None:
            message = _truncate(orjson.dumps(detail).decode())
        else:
            message = _truncate(orjson.dumps(obj).decode()) if source is obj and obj.get("type") != "error" else None
    err_type = source.get("type")
    param = source.get("param")
    return (
        message,
        err_type if isinstance(err_type, str) else None,
        source.get("code"),
        param if isinstance(param, str) else None,
    )


def _text_message(body: bytes, status: int) -> str:
    if not body.strip():
        return f"upstream returned HTTP {status} with an empty body"
    title = _TITLE.search(body[:4096])
    if title:
        text = title.group(1).decode("utf-8", "replace")
    else:
        text = body[: _SNIPPET * 4].decode("utf-8", "replace")
        if "<" in text:
            text = _TAG.sub(" ", text)
    return f"upstream returned HTTP {status}: {_truncate(' '.join(text.split()))}"


def _truncate(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[: _SNIPPET - 1] + "…"


def _is_context_overflow(code: str | None, message: str) -> bool:
    if code == "context_length_exceeded":
        return True
    lowered = message.lower()
    return "maximum context length" in lowered or "context window" in lowered
