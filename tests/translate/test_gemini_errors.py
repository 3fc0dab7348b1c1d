"""Google's error shape ⇄ Anthropic error objects; Google's bodies are as its API sends them and the
google-genai SDK judges keystile's."""

from __future__ import annotations

import orjson
import pytest

from .gemini_harness import GeminiSDKServer
from keystile.translate.gemini.errors import anthropic_error_to_gemini, gemini_error_body, gemini_error_to_anthropic

# The canonical status for each HTTP code, as listed in Google's Gemini API troubleshooting guide
# and google.rpc.Code.
GOOGLE_STATUSES = [
    (400, "INVALID_ARGUMENT"), (401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED"), (404, "NOT_FOUND"),
    (409, "ABORTED"), (429, "RESOURCE_EXHAUSTED"), (499, "CANCELLED"), (500, "INTERNAL"), (501, "UNIMPLEMENTED"),
    (503, "UNAVAILABLE"), (504, "DEADLINE_EXCEEDED"),
]


@pytest.mark.parametrize(("code", "status"), GOOGLE_STATUSES)
def test_gemini_error_body_statuses(code: int, status: str) -> None:
    assert gemini_error_body(code, "m") == {"error": {"code": code, "message": "m", "status": status}}


@pytest.mark.parametrize(("code", "status", "error_class"), [
    (400, "INVALID_ARGUMENT", "ClientError"), (401, "UNAUTHENTICATED", "ClientError"), (429, "RESOURCE_EXHAUSTED", "ClientError"),
    (502, "UNAVAILABLE", "ServerError"), (503, "UNAVAILABLE", "ServerError"),
])
def test_the_sdk_reads_keystiles_error_bodies(code: int, status: str, error_class: str) -> None:
    from google.genai import errors

    with GeminiSDKServer() as server:
        server.queue(orjson.dumps(gemini_error_body(code, "budget exceeded for key sk-…a1b2")), status=code)
        client = server.client()
        with pytest.raises(errors.APIError) as caught:
            client.models.generate_content(model="m", contents="hi")
    assert type(caught.value).__name__ == error_class
    assert (caught.value.code, caught.value.status, caught.value.message) == (code, status, "budget exceeded for key sk-…a1b2")


API_KEY_INVALID = b"""{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"}
      }
    ]
  }
}
"""


@pytest.mark.parametrize(("body", "status", "anthropic_type", "message"), [
    (API_KEY_INVALID, 400, "invalid_request_error", "API key not valid. Please pass a valid API key."),
    (b'{"error": {"code": 403, "message": "Permission denied on resource project x.", "status": "PERMISSION_DENIED"}}', 403,
     "permission_error", "Permission denied on resource project x."),
    (b'{"error": {"code": 404, "message": "models/gemini-9 is not found for API version v1beta", "status": "NOT_FOUND"}}', 404,
     "not_found_error", "models/gemini-9 is not found for API version v1beta"),
    (b'{"error": {"code": 429, "message": "You exceeded your current quota.", "status": "RESOURCE_EXHAUSTED"}}', 429,
     "rate_limit_error", "You exceeded your current quota."),
    (b'{"error": {"code": 503, "message": "The model is overloaded. Please try again later.", "status": "UNAVAILABLE"}}', 503,
     "api_error", "The model is overloaded. Please try again later."),
    (b'{"error": {"code": 504, "message": "Deadline expired before operation could complete.", "status": "DEADLINE_EXCEEDED"}}', 504,
     "timeout_error", "Deadline expired before operation could complete."),
    (b'[{"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}}]', 500,
     "api_error", "An internal error has occurred."),
    (b'{"error": {"code": 400, "message": "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", "status": "INVALID_ARGUMENT"}}', 400,
     "invalid_request_error", "prompt is too long: The input token count (1200000) exceeds the maximum number of tokens allowed (1048576)."),
    (b"<html><head><title>502 Bad Gateway</title></head></html>", 502, "api_error", "upstream returned HTTP 502: 502 Bad Gateway"),
    (b"", 503, "api_error", "upstream returned HTTP 503 with an empty body"),
])
def test_gemini_errors_for_anthropic_clients(body: bytes, status: int, anthropic_type: str, message: str) -> None:
    from anthropic.types import ErrorResponse

    obj = gemini_error_to_anthropic(body, status)
    parsed = ErrorResponse.model_validate({**obj, "request_id": None})
    assert (parsed.error.type, parsed.error.message) == (anthropic_type, message)


@pytest.mark.parametrize(("anthropic_type", "code", "status"), [
    ("overloaded_error", 503, "UNAVAILABLE"), ("rate_limit_error", 429, "RESOURCE_EXHAUSTED"), ("api_error", 500, "INTERNAL"),
    ("invalid_request_error", 400, "INVALID_ARGUMENT"), ("timeout_error", 504, "DEADLINE_EXCEEDED"), ("mystery", 500, "INTERNAL"),
])
def test_in_stream_anthropic_errors_for_gemini_clients(anthropic_type: str, code: int, status: str) -> None:
    event = {"type": "error", "error": {"type": anthropic_type, "message": "boom"}}
    assert anthropic_error_to_gemini(event, 0) == {"error": {"code": code, "message": "boom", "status": status}}


def test_anthropic_error_bodies_keep_their_http_status() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    assert anthropic_error_to_gemini(body, 529) == {"error": {"code": 529, "message": "Overloaded", "status": "UNAVAILABLE"}}
    assert anthropic_error_to_gemini({}, 502) == {"error": {"code": 502, "message": "upstream error (HTTP 502)", "status": "UNAVAILABLE"}}
