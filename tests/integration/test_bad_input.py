"""Bad input gets a clear 4xx in the client's format — never a 500 — and the server keeps serving."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.harness import GatewayProcess, anthropic_body, openai_body, standard_config

MESSAGES = "/v1/messages"
CHAT = "/v1/chat/completions"
DEEP = b'{"model": "claude-test", "max_tokens": 5, "messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"

CASES = [
    ("malformed JSON", b'{"model": "claude-test", "max_tokens": ', 400, "not valid JSON"),
    ("not an object", b'["model", "claude-test"]', 400, "must be a JSON object"),
    ("invalid UTF-8", b'{"model": "claude-test\xff\xfe", "max_tokens": 5, "messages": []}', 400, "not valid JSON"),
    ("empty body", b"", 400, "empty"),
    ("missing model", b'{"max_tokens": 5, "messages": []}', 400, "model"),
    ("model not a string", b'{"model": 42, "max_tokens": 5, "messages": []}', 400, "model"),
    ("unknown model", b'{"model": "no-such-model", "max_tokens": 5, "messages": []}', 404, "no-such-model"),
    ("messages not a list", b'{"model": "claude-test", "max_tokens": 5, "messages": "hi"}', 400, "messages"),
    ("max_tokens a string", b'{"model": "claude-test", "max_tokens": "5", "messages": []}', 400, "max_tokens"),
    ("stream not a boolean", b'{"model": "claude-test", "max_tokens": 5, "messages": [], "stream": "yes"}', 400, "stream"),
    ("deeply nested JSON", DEEP, 400, "JSON"),
]


@pytest.mark.parametrize("case,body,status,words", CASES, ids=[c[0] for c in CASES])
def test_bad_anthropic_bodies(gateway, key, case, body, status, words):
    response = httpx.post(f"{gateway.url}{MESSAGES}", content=body, headers={"x-api-key": key, "content-type": "application/json"})
    assert response.status_code == status, response.text
    error = response.json()
    assert error["type"] == "error"
    assert words.lower() in error["error"]["message"].lower()


@pytest.mark.parametrize("case,body,status,words", CASES, ids=[c[0] for c in CASES])
def test_bad_openai_bodies(gateway, key, case, body, status, words):
    body = body.replace(b"claude-test", b"gpt-test").replace(b'"max_tokens": "5"', b'"messages": 5')
    response = httpx.post(f"{gateway.url}{CHAT}", content=body, headers={"authorization": f"Bearer {key}"})
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}


def test_translation_rejects_malformed_content_with_400(gateway, key):
    """Wrong types deep inside a body that must be translated are a 400, not a crash."""
    body = {"model": "gpt-test", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": 7}]}]}
    response = httpx.post(f"{gateway.url}{MESSAGES}", json=body, headers={"x-api-key": key})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_40_mb_body_is_refused_with_413(gateway, key):
    big = b'{"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "' + b"x" * (40 * 1024 * 1024) + b'"}]}'
    response = httpx.post(f"{gateway.url}{MESSAGES}", content=big, headers={"x-api-key": key}, timeout=60)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"


def test_40_mb_chunked_body_is_refused_with_413(gateway, key):
    def chunks():
        yield b'{"model": "claude-test", "max_tokens": 5, "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"x" * (1024 * 1024)
        yield b'"}]}'

    try:
        response = httpx.post(f"{gateway.url}{MESSAGES}", content=chunks(), headers={"x-api-key": key}, timeout=60)
    except httpx.WriteError:
        pytest.skip("the server closed the connection before the client finished writing")  # also acceptable
    assert response.status_code == 413


def test_60_kb_header_is_refused_with_431(gateway, key):
    response = httpx.post(
        f"{gateway.url}{MESSAGES}",
        json=anthropic_body(),
        headers={"x-api-key": key, "x-padding": "p" * (60 * 1024)},
    )
    assert response.status_code == 431, response.text
    assert response.json()["type"] == "error"


def test_60_kb_key_header_is_refused(gateway):
    response = httpx.post(f"{gateway.url}{MESSAGES}", json=anthropic_body(), headers={"x-api-key": "k" * (60 * 1024)})
    assert 400 <= response.status_code < 500
    assert "k" * 100 not in response.text


def test_wrong_method_and_unknown_path(gateway, key):
    wrong = httpx.get(f"{gateway.url}{MESSAGES}", headers={"x-api-key": key})
    assert wrong.status_code == 405 and wrong.json()["type"] == "error"
    unknown = httpx.post(f"{gateway.url}/v1/nope", headers={"authorization": f"Bearer {key}"})
    assert unknown.status_code == 404 and "error" in unknown.json()


def test_server_keeps_serving_after_bad_input(gateway, key):
    for body, *_ in [(c[1],) for c in CASES]:
        httpx.post(f"{gateway.url}{MESSAGES}", content=body, headers={"x-api-key": key})
    ok = httpx.post(f"{gateway.url}{MESSAGES}", json=anthropic_body(), headers={"x-api-key": key})
    assert ok.status_code == 200
    assert "Traceback" not in gateway.log()


def test_the_configured_body_and_header_limits_apply(upstream, tmp_path):
    config = standard_config(upstream.url, extra="server:\n  max_body_bytes: 4096\n  max_header_bytes: 2048\n")
    with GatewayProcess(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}

        def send(text: str, **extra: str) -> httpx.Response:
            return httpx.post(f"{gw.url}{MESSAGES}", json=anthropic_body(text=text), headers={**headers, **extra}, timeout=10)

        assert send("x" * 3000).status_code == 200
        too_big = send("x" * 5000)
        assert too_big.status_code == 413 and "4096-byte limit" in too_big.json()["error"]["message"]
        assert send("hi", **{"x-padding": "p" * 1000}).status_code == 200
        too_long = send("hi", **{"x-padding": "p" * 3000})
        assert too_long.status_code == 431 and "2048-byte limit" in too_long.json()["error"]["message"]
        # OpenAI clients get the same refusal in their own format.
        chat = httpx.post(f"{gw.url}{CHAT}", json=openai_body(text="x" * 5000), headers={"authorization": f"Bearer {key}"}, timeout=10)
        assert chat.status_code == 413 and set(chat.json()["error"]) == {"message", "type", "param", "code"}
