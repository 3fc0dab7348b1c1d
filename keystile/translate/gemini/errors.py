"""Google's error shape ``{"error":{"code","message","status"}}`` ⇄ Anthropic error objects.

``code`` is the HTTP status and ``status`` Google's canonical name for it (``google.rpc.Code``:
400 INVALID_ARGUMENT, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 NOT_FOUND, 429
RESOURCE_EXHAUSTED, 500 INTERNAL, 503 UNAVAILABLE, 504 DEADLINE_EXCEEDED, …), from the one
table in ``keystile.errors``.

Upstream Gemini errors reaching an Anthropic client keep their message; the HTTP status
decides the Anthropic type and Google's ``status`` refines it among kinds with the same HTTP
status, as in ``translate.errors``. In-stream errors (Google sends ``data: {"error":{…}}`` on
a 200 stream) have no HTTP status: their ``code`` stands in. An in-stream Anthropic
``overloaded_error`` becomes code 503 UNAVAILABLE, the answer Google itself gives when a model
is overloaded; a 529 response keeps its code (the body says what the HTTP status says). A
Gemini context-length error is prefixed ``"prompt is too long: "`` for an Anthropic client
(the wording Claude Code recognises to offer compaction), as OpenAI's are.
"""

from __future__ import annotations

import orjson

from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, error_body, kind_for_status
from keystile.translate.errors import translate_error_body

_KIND_FOR_GOOGLE_STATUS = {
    "INVALID_ARGUMENT": ErrorKind.INVALID_REQUEST,
    "FAILED_PRECONDITION": ErrorKind.INVALID_REQUEST,
    "OUT_OF_RANGE": ErrorKind.INVALID_REQUEST,
    "UNAUTHENTICATED": ErrorKind.AUTHENTICATION,
    "PERMISSION_DENIED": ErrorKind.PERMISSION,
    "NOT_FOUND": ErrorKind.NOT_FOUND,
    "RESOURCE_EXHAUSTED": ErrorKind.RATE_LIMITED,
    "INTERNAL": ErrorKind.INTERNAL,
    "UNKNOWN": ErrorKind.INTERNAL,
    "DATA_LOSS": ErrorKind.INTERNAL,
    "UNAVAILABLE": ErrorKind.UNAVAILABLE,
    "DEADLINE_EXCEEDED": ErrorKind.UPSTREAM_TIMEOUT,
}

_CODE_FOR_ANTHROPIC_TYPE = {
    "invalid_request_error": 400,
    "billing_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 503,
    "timeout_error": 504,
}


def gemini_error_body(status: int, message: str) -> dict:
    """An error response body in Google's shape."""
    return error_body(ApiFormat.GEMINI, kind_for_status(status), message, status=status)


def gemini_error_to_anthropic(body: bytes, status: int) -> dict:
    """A Gemini upstream's error response body as an Anthropic error object."""
    try:
        parsed = orjson.loads(body) if body.strip() else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, (dict, list)):
        # Not Google's JSON (a proxy's HTML page, an empty body): described from the text.
        return orjson.loads(translate_error_body(body, status, upstream=ApiFormat.OPENAI, client=ApiFormat.ANTHROPIC))
    return gemini_error_object_to_anthropic(parsed, status)


def gemini_error_object_to_anthropic(obj: object, status: int) -> dict:
    """A parsed Google error (response body, or an in-stream chunk with ``status`` 0)."""
    if isinstance(obj, list) and obj:  # alt=json streams wrap their chunks in an array
        obj = obj[0]
    inner = obj.get("error") if isinstance(obj, dict) else None
    if isinstance(inner, str):
        inner = {"message": inner}
    if not isinstance(inner, dict):
        inner = obj if isinstance(obj, dict) else {}
    message = inner.get("message")
    code = inner.get("code")
    if not status and isinstance(code, int) and not isinstance(code, bool) and code >= 400:
        status = code
    google = inner.get("status")
    hinted = _KIND_FOR_GOOGLE_STATUS.get(google) if isinstance(google, str) else None
    if status >= 400:
        kind = kind_for_status(status)
        if hinted is not None and hinted.status == kind.status:
            kind = hinted
    else:
        kind = hinted or ErrorKind.UPSTREAM_ERROR
    if not isinstance(message, str) or not message:
        message = f"upstream error (HTTP {status})" if status else "upstream error"
    elif _is_context_overflow(message):
        message = "prompt is too long: " + message
    return error_body(ApiFormat.ANTHROPIC, kind, message)


def anthropic_error_to_gemini(obj: dict, status: int) -> dict:
    """An Anthropic error (body, or in-stream ``error`` event with ``status`` 0) in Google's shape."""
    inner = obj.get("error") if isinstance(obj, dict) else None
    if not isinstance(inner, dict):
        inner = {}
    message = inner.get("message")
    if not isinstance(message, str) or not message:
        message = f"upstream error (HTTP {status})" if status else "upstream error"
    if not status:
        kind = inner.get("type")
        status = _CODE_FOR_ANTHROPIC_TYPE.get(kind, 500) if isinstance(kind, str) else 500
    return gemini_error_body(status, message)


def _is_context_overflow(message: str) -> bool:
    lowered = message.lower()
    return "input token count" in lowered and "exceeds the maximum" in lowered
