"""Error bodies translated between formats: fixtures/errors.json, plus the pass-through rule."""

from __future__ import annotations

import orjson
import pytest
from anthropic.types import ErrorResponse

from .translation_harness import case_params
from keystile.apiformat import ApiFormat
from keystile.translate.errors import translate_error_body, translate_error_object


@pytest.mark.parametrize("case", case_params("errors.json"))
def test_translate_error_body(case: dict) -> None:
    out = translate_error_body(
        case["body"].encode(), case["status"], upstream=ApiFormat(case["upstream"]), client=ApiFormat(case["client"])
    )
    parsed = orjson.loads(out)
    assert parsed == case["expected"]
    if case["client"] == "anthropic":
        ErrorResponse.model_validate({**parsed, "request_id": None})


@pytest.mark.parametrize("fmt", list(ApiFormat))
@pytest.mark.parametrize("body", [b"", b"<html>oops</html>", b'{"error":{"message":"x"}}', b"\xff\xfe binary"])
def test_same_format_passes_through_unchanged(fmt: ApiFormat, body: bytes) -> None:
    assert translate_error_body(body, 500, upstream=fmt, client=fmt) is body


@pytest.mark.parametrize(
    "body",
    [b"\xff\xfe\x00binary", b"[]", b"[1]", b'"just a string"', b"null", b"123", b"{", b"   ", b'{"error": null}', b'{"error": 5}', b'[{"error": {"message": "first"}}]', b"x" * 10_000],
)
@pytest.mark.parametrize(("upstream", "client"), [(ApiFormat.OPENAI, ApiFormat.ANTHROPIC), (ApiFormat.ANTHROPIC, ApiFormat.OPENAI)])
def test_any_body_translates_to_a_valid_error(body: bytes, upstream: ApiFormat, client: ApiFormat) -> None:
    out = orjson.loads(translate_error_body(body, 502, upstream=upstream, client=client))
    message = out["error"]["message"]
    assert isinstance(message, str) and message and len(message) <= 600
    if client is ApiFormat.ANTHROPIC:
        assert out["type"] == "error" and out["error"]["type"] == "api_error"
    else:
        assert out["error"]["type"] == "server_error" and out["error"]["code"] == "upstream_error"


def test_in_stream_errors_map_by_type() -> None:
    assert translate_error_object(
        {"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"}}, 0, upstream=ApiFormat.ANTHROPIC, client=ApiFormat.OPENAI
    ) == {"error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": "rate_limit_exceeded"}}
    assert translate_error_object(
        {"error": {"message": "boom", "type": "server_error"}}, 0, upstream=ApiFormat.OPENAI, client=ApiFormat.ANTHROPIC
    ) == {"type": "error", "error": {"type": "api_error", "message": "boom"}}
    assert translate_error_object({"error": {"message": "?"}}, 0, upstream=ApiFormat.OPENAI, client=ApiFormat.ANTHROPIC) == {
        "type": "error",
        "error": {"type": "api_error", "message": "?"},
    }
