"""Upstream answers checked before the client sees them (keystile.providers.answer).
Expected values are hand-written."""

from __future__ import annotations

import orjson
import pytest

from keystile.accounting.usage import Usage
from keystile.apiformat import ApiFormat
from keystile.providers.answer import UnreadableAnswer, error_page, read_answer, recover_usage, stream_page, too_large_error
from keystile.upstream.errors import UpstreamTooLarge

A, O = ApiFormat.ANTHROPIC, ApiFormat.OPENAI

LONE_SURROGATE = (
    b'{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-5",'
    b'"content":[{"type":"text","text":"broken \\ud800 here"}],"stop_reason":"end_turn",'
    b'"usage":{"input_tokens":1000,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    b'"cache_creation":{"ephemeral_5m_input_tokens":0},"output_tokens":1000,"service_tier":"standard"}}'
)
SIGN_IN = b"<!DOCTYPE html><html><head><title>Corporate proxy: sign in</title></head><body>...</body></html>"


def test_a_readable_answer_is_its_object() -> None:
    assert read_answer(b'{"id":"x","usage":{}}', 200, b"application/json", A) == {"id": "x", "usage": {}}


def test_lone_surrogate_is_a_502_that_still_carries_the_reported_usage() -> None:
    with pytest.raises(UnreadableAnswer) as caught:
        read_answer(LONE_SURROGATE, 200, b"application/json", A)
    error = caught.value
    assert (error.status, error.kind.anthropic_type) == (502, "api_error")
    assert error.message.startswith("The upstream answered HTTP 200 with a body that is not valid JSON (")
    assert error.usage == Usage(input_tokens=1000, output_tokens=1000)
    assert error.from_model


def test_html_page_with_200_is_a_502_that_names_the_page_and_charges_nothing() -> None:
    with pytest.raises(UnreadableAnswer) as caught:
        read_answer(SIGN_IN, 200, b"text/html; charset=utf-8", A)
    assert caught.value.message == "The upstream answered HTTP 200 with an HTML page instead of JSON: Corporate proxy: sign in."
    assert caught.value.usage is None and not caught.value.from_model
    with pytest.raises(UnreadableAnswer) as caught:
        read_answer(b"upstream connect error or disconnect/reset before headers", 200, b"text/plain", O)
    assert "with a text page instead of JSON: upstream connect error" in caught.value.message
    assert not caught.value.from_model


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1,2]", "JSON that is an array, not an object"),
        (b"null", "JSON that is null, not an object"),
        (b'"ok"', "JSON that is a string, not an object"),
    ],
)
def test_json_that_is_not_an_object(body: bytes, message: str) -> None:
    with pytest.raises(UnreadableAnswer, match=message) as caught:
        read_answer(body, 200, b"application/json", O)
    assert caught.value.usage is None and not caught.value.from_model


def test_truncated_json_without_usage_is_from_the_model_with_nothing_recovered() -> None:
    with pytest.raises(UnreadableAnswer) as caught:
        read_answer(b'{"id":"chatcmpl-1","choices":[{"message":{"content":"half', 200, b"application/json", O)
    assert caught.value.from_model and caught.value.usage is None


@pytest.mark.parametrize(
    ("body", "wire", "usage"),
    [
        # OpenAI: cached tokens are part of prompt_tokens; usage sits after the choices.
        (
            b'{"choices":[{"message":{"content":"\\udc00"}}],"usage":{"prompt_tokens":120,"completion_tokens":30,'
            b'"prompt_tokens_details":{"cached_tokens":100}},"system_fingerprint":"fp"}',
            O,
            Usage(input_tokens=20, output_tokens=30, cache_read_tokens=100),
        ),
        # A "usage" inside a string is escaped, so the real key (the last one) is found.
        (
            b'{"content":[{"text":"the \\"usage\\": {\\"input_tokens\\": 9} \\ud800"}],"usage":{"input_tokens":7,"output_tokens":3}}',
            A,
            Usage(input_tokens=7, output_tokens=3),
        ),
        # Strings with braces inside the usage object do not end it early.
        (b'{"x":"\\ud800","usage":{"note":"}{","input_tokens":5,"output_tokens":1}}', A, Usage(5, 1)),
        (b'{"x":"\\ud800","usage":{"input_tokens":5', A, None),  # cut inside the usage
        (b'{"x":"\\ud800","usage":null}', A, None),
        (b'{"x":"\\ud800"}', A, None),
        (b'{"x":"\\ud800","usage":{"input_tokens":0,"output_tokens":0}}', A, None),  # nothing reported
        (b'{"usage":{"input_tokens":"\\ud800"}}', A, None),  # the usage itself is broken
    ],
)
def test_recover_usage(body: bytes, wire: ApiFormat, usage: Usage | None) -> None:
    assert recover_usage(body, wire) == usage


def test_error_pages_become_the_clients_format_with_the_upstreams_status() -> None:
    gateway_page = b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>nginx</center></body></html>"
    assert orjson.loads(error_page(gateway_page, 503, b"text/html", A) or b"") == {
        "type": "error",
        "error": {
            "type": "api_error",
            "message": "The upstream answered HTTP 503 with an HTML page instead of a JSON error: 503 Service Temporarily Unavailable.",
        },
    }
    assert orjson.loads(error_page(b"Forbidden\n", 403, b"text/plain", O) or b"") == {
        "error": {
            "message": "The upstream answered HTTP 403 with a text page instead of a JSON error: Forbidden.",
            "type": "permission_error",
            "param": None,
            "code": "permission_denied",
        }
    }
    empty = orjson.loads(error_page(b"", 429, None, A) or b"")
    assert empty["error"] == {"type": "rate_limit_error", "message": "The upstream answered HTTP 429 with an empty body."}
    long_page = b"<html><body>" + b"word " * 2000 + b"</body></html>"
    message = orjson.loads(error_page(long_page, 500, b"text/html", O) or b"")["error"]["message"]
    assert len(message) < 300 and message.endswith("word….")


@pytest.mark.parametrize("body", [b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', b'[{"error":{}}]'])
def test_json_error_bodies_are_left_to_the_usual_path(body: bytes) -> None:
    assert error_page(body, 529, b"application/json", A) is None


def test_too_large_names_the_setting() -> None:
    error = too_large_error(UpstreamTooLarge("body", 8388608), " (gpt#0)")
    assert (error.status, error.message) == (
        502,
        "The upstream (gpt#0) sent an answer larger than keystile accepts (upstream.max_body_bytes: 8388608 bytes).",
    )
    assert "upstream.max_header_bytes: 65536" in too_large_error(UpstreamTooLarge("headers", 65536)).message


@pytest.mark.parametrize(
    ("content_type", "first", "page"),
    [
        (b"text/event-stream", b"<html>odd but declared a stream", False),
        (b"text/event-stream; charset=utf-8", b"event: message_start\ndata: {}\n\n", False),
        (None, b"data: {}\n\n", False),  # no type: judged by its first byte
        (b"application/json", b'{"type":"error"}', False),  # the relay deals with JSON
        (b"text/html", b"", True),
        (b"text/plain", b"\n  <!DOCTYPE html><title>Login</title>", True),
    ],
)
def test_stream_page(content_type: bytes | None, first: bytes, page: bool) -> None:
    error = stream_page(200, content_type, first)
    assert (error is not None) is page
    if error is not None:
        assert error.status == 502 and error.message.startswith("The upstream answered HTTP 200 with an HTML page instead of an event stream")
