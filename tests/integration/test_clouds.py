"""Bedrock, Vertex AI and Gemini upstreams, and the Bedrock and Vertex surfaces, through the real
server: every client surface (Messages, Chat, Responses, Gemini, Bedrock, Vertex) on every cloud
(official SDKs as clients), streams and tools, usage
and prices, errors in the client's format, retries and fallback, byte-for-byte relays where the
framing is the same. The mock upstream checks SigV4 signatures with botocore and issues Google
OAuth tokens to a test service account (``keystile.testing.clouds``)."""

from __future__ import annotations

import json
import textwrap
from typing import Callable, Iterator

import anthropic
import httpx
import openai
import pytest
from google.genai import types

from keystile.eventstream import EventStreamParser
from keystile.providers import mock_replies
from tests.integration.clouds import (
    AWS_KEY_ID,
    AWS_SECRET,
    BEDROCK_API_KEY,
    bedrock_client,
    cloud_gateway,
    genai_client,
    genai_vertex_client,
    service_account,
    vertex_client,
)
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, GatewayProcess

HELLO = "Hello from keystile mock. You said: hi there"
GEMINI_KEY = "gemini-studio-key-SECRET-8888"


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("clouds")
    sa = service_account(upstream, folder)
    url = upstream.url
    config = textwrap.dedent(
        f"""\
        models:
          - name: claude-bedrock
            provider: bedrock
            model: us.anthropic.claude-sonnet-4-5-20250929-v1:0
            region: us-east-1
            api_base: {url}
            aws_access_key_id: {AWS_KEY_ID}
            aws_secret_access_key: {AWS_SECRET}
          - name: claude-bedrock-key
            provider: bedrock
            model: global.anthropic.claude-haiku-4-5-20251001-v1:0
            region: us-east-1
            api_base: {url}
          - name: claude-vertex
            provider: vertex_ai
            model: claude-sonnet-4-5@20250929
            vertex_project: keystile-test
            vertex_location: us-east5
            vertex_credentials: {sa}
            api_base: {url}
          - name: gemini-vertex
            provider: vertex_ai
            model: gemini-2.5-pro
            vertex_location: us-central1
            vertex_credentials: {sa}
            api_base: {url}
          - name: gemini-studio
            provider: gemini
            model: gemini-2.5-flash
            api_base: {url}
          - name: claude-anthropic
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {url}
            api_key: {UPSTREAM_ANTHROPIC_KEY}
          - name: gpt-test
            provider: openai
            model: gpt-4.1
            api_base: {url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
          - name: claude-failover
            provider: bedrock
            model: anthropic.claude-opus-4-1-20250805-v1:0
            region: us-east-1
            api_base: {url}
            api_key: {BEDROCK_API_KEY}
        router:
          num_retries: 1
          retry_backoff: 0.01s
          fallbacks:
            claude-failover: [claude-vertex]
        """
    )
    with cloud_gateway(config, env={"AWS_BEARER_TOKEN_BEDROCK": BEDROCK_API_KEY, "GEMINI_API_KEY": GEMINI_KEY}) as gw:
        yield gw


CLOUD_MODELS = {
    # model → the upstream path it must reach
    "claude-bedrock": "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
    "claude-bedrock-key": "/model/global.anthropic.claude-haiku-4-5-20251001-v1%3A0/invoke",
    "claude-vertex": "/v1/projects/keystile-test/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5@20250929:",
    "gemini-vertex": "/v1/projects/keystile-test/locations/us-central1/publishers/google/models/gemini-2.5-pro:",
    "gemini-studio": "/v1beta/models/gemini-2.5-flash:",
}


def _messages(gw, key, model, stream):  # type: ignore[no-untyped-def]
    with anthropic.Anthropic(base_url=gw.url, api_key=key, max_retries=0) as client:
        return _anthropic_text(client, model, stream)


def _bedrock(gw, key, model, stream):  # type: ignore[no-untyped-def]
    with bedrock_client(gw, key) as client:
        return _anthropic_text(client, model, stream)


def _vertex(gw, key, model, stream):  # type: ignore[no-untyped-def]
    with vertex_client(gw, key) as client:
        return _anthropic_text(client, model, stream)


def _anthropic_text(client, model: str, stream: bool) -> str:  # type: ignore[no-untyped-def]
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]}
    if stream:
        with client.messages.stream(**body) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**body)
    assert message.usage.output_tokens > 0
    return message.content[0].text


def _chat(gw, key, model, stream):  # type: ignore[no-untyped-def]
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as client:
        messages = [{"role": "user", "content": "hi there"}]
        if stream:
            chunks = list(client.chat.completions.create(model=model, messages=messages, stream=True))
            assert chunks[-1].choices == [] or chunks[-1].choices[0].finish_reason in (None, "stop")
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return client.chat.completions.create(model=model, messages=messages).choices[0].message.content


def _responses(gw, key, model, stream):  # type: ignore[no-untyped-def]
    with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as client:
        if stream:
            events = list(client.responses.create(model=model, input="hi there", stream=True))
            assert events[-1].type == "response.completed"
            return events[-1].response.output_text
        return client.responses.create(model=model, input="hi there").output_text


def _gemini(make_client) -> Callable:  # type: ignore[no-untyped-def]
    def call(gw, key, model, stream):  # type: ignore[no-untyped-def]
        client = make_client(gw, key)
        if stream:
            chunks = list(client.models.generate_content_stream(model=model, contents="hi there"))
            assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
            return "".join(c.text or "" for c in chunks)
        return client.models.generate_content(model=model, contents="hi there").text

    return call


SURFACES = {
    "messages": _messages,
    "chat": _chat,
    "responses": _responses,
    "gemini": _gemini(genai_client),
    "gemini-vertex-mode": _gemini(genai_vertex_client),
    "bedrock": _bedrock,
    "vertex": _vertex,
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("model", list(CLOUD_MODELS))
@pytest.mark.parametrize("surface", list(SURFACES))
def test_every_surface_reaches_every_cloud(gateway, key, upstream, surface, model, stream):
    assert SURFACES[surface](gateway, key, model, stream).startswith(HELLO)
    [sent] = [r for r in upstream.requests() if r["path"].startswith(CLOUD_MODELS[model])]
    assert key not in json.dumps(sent)  # the gateway key never goes upstream


def test_sigv4_requests_carry_a_signature_botocore_accepts(gateway, key, upstream):
    # (the mock refuses any request whose signature botocore's signer does not reproduce)
    assert _messages(gateway, key, "claude-bedrock", False).startswith(HELLO)
    [sent] = upstream.requests()
    headers = dict(sent["headers"])
    assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
    assert "/us-east-1/bedrock/aws4_request" in headers["authorization"]
    assert AWS_SECRET not in gateway.log()


def test_a_bedrock_api_key_from_the_environment_is_sent_as_bearer(gateway, key, upstream):
    _messages(gateway, key, "claude-bedrock-key", True)
    [sent] = upstream.requests()
    assert dict(sent["headers"])["authorization"] == f"Bearer {BEDROCK_API_KEY}"
    assert BEDROCK_API_KEY not in gateway.log()


def test_vertex_requests_carry_the_service_accounts_token(gateway, key, upstream):
    _messages(gateway, key, "claude-vertex", False)
    sent = [r for r in upstream.requests() if r["path"] != "/token"][-1]
    assert dict(sent["headers"])["authorization"].startswith("Bearer ya29.mock-")
    body = json.loads(sent["body"])
    assert body["anthropic_version"] == "vertex-2023-10-16" and "model" not in body


def test_gemini_studio_gets_its_key_in_x_goog_api_key(gateway, key, upstream):
    _chat(gateway, key, "gemini-studio", False)
    [sent] = upstream.requests()
    assert dict(sent["headers"])["x-goog-api-key"] == GEMINI_KEY


@pytest.mark.parametrize("model", ["claude-bedrock", "claude-vertex", "gemini-vertex", "gemini-studio", "gpt-test"])
@pytest.mark.parametrize("surface", ["messages", "chat", "bedrock"])
def test_a_tool_call_streams_from_every_cloud(gateway, key, model, surface):
    tool = {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
    if surface in ("messages", "bedrock"):
        client_for = bedrock_client if surface == "bedrock" else lambda gw, k: anthropic.Anthropic(base_url=gw.url, api_key=k, max_retries=0)
        with client_for(gateway, key) as client:
            with client.messages.stream(model=model, max_tokens=64, tools=[tool], messages=[{"role": "user", "content": "Weather in Paris?"}]) as events:
                message = events.get_final_message()
        [call] = [b for b in message.content if b.type == "tool_use"]
        assert (call.name, call.input, message.stop_reason) == ("get_weather", {"city": "mock"}, "tool_use")
    else:
        function = {"type": "function", "function": {"name": tool["name"], "description": tool["description"], "parameters": tool["input_schema"]}}
        with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0) as client:
            chunks = list(client.chat.completions.create(model=model, tools=[function], stream=True, messages=[{"role": "user", "content": "Weather in Paris?"}]))
        calls = [c.choices[0].delta.tool_calls for c in chunks if c.choices and c.choices[0].delta.tool_calls]
        arguments = "".join(part.function.arguments or "" for parts in calls for part in parts)
        assert calls[0][0].function.name == "get_weather" and json.loads(arguments) == {"city": "mock"}
        assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_a_bedrock_stream_is_charged_at_claudes_price(gateway, upstream):
    key = gateway.create_key()
    with bedrock_client(gateway, key) as client:
        with client.messages.stream(model="claude-bedrock", max_tokens=64, messages=[{"role": "user", "content": "hi there"}]) as events:
            usage = events.get_final_message().usage
    # Claude Sonnet 4.5 on Anthropic's price list: $3 / $15 per million input / output tokens
    expected = (usage.input_tokens * 3 + usage.output_tokens * 15) / 1_000_000
    [row] = gateway.admin("GET", "/spend/logs", params={"api_key": key}).json()
    assert row["spend"] == pytest.approx(expected)


def test_a_gemini_answer_is_charged_at_geminis_price(gateway, upstream):
    key = gateway.create_key()
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        usage = client.messages.create(model="gemini-vertex", max_tokens=64, messages=[{"role": "user", "content": "hi there"}]).usage
    # Gemini 2.5 Pro on Google's price list: $1.25 / $10 per million input / output tokens
    [row] = gateway.admin("GET", "/spend/logs", params={"api_key": key}).json()
    assert row["spend"] == pytest.approx((usage.input_tokens * 1.25 + usage.output_tokens * 10) / 1_000_000)


# --- the same framing on both sides: relayed byte for byte -------------------------------------------


def _raw_stream(url: str, headers: dict, body: dict) -> bytes:
    with httpx.stream("POST", url, headers=headers, json=body, timeout=30) as response:
        assert response.status_code == 200, response.read()
        return b"".join(response.iter_raw())


def test_a_bedrock_client_on_a_bedrock_upstream_gets_its_frames_byte_for_byte(gateway, key):
    body = {"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["interleaved-thinking-2025-05-14"], "max_tokens": 64,
            "messages": [{"role": "user", "content": "hi there"}]}
    got = _raw_stream(f"{gateway.url}/bedrock/model/claude-bedrock/invoke-with-response-stream", {"authorization": f"Bearer {key}"}, body)
    # what the mock upstream sends for this body (it answers as Bedrock would, frames included)
    upstream_body = {**{k: v for k, v in body.items() if k != "anthropic_version"}, "model": "us.anthropic.claude-sonnet-4-5-20250929-v1:0", "stream": True}
    assert got == b"".join(mock_replies.bedrock_frames(mock_replies.anthropic_stream(upstream_body)))


def test_an_anthropic_client_on_a_vertex_upstream_gets_its_events_byte_for_byte(gateway, key, upstream):
    body = {"model": "claude-vertex", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi there"}]}
    got = _raw_stream(f"{gateway.url}/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}, body)
    assert got == b"".join(mock_replies.anthropic_stream({**body, "model": "claude-sonnet-4-5@20250929"}))


def test_a_bedrock_client_keeps_its_own_betas_and_an_anthropic_clients_are_filtered(gateway, key, upstream):
    body = {"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["interleaved-thinking-2025-05-14", "a-beta-keystile-does-not-know"],
            "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]}
    response = httpx.post(f"{gateway.url}/bedrock/model/claude-bedrock/invoke", headers={"authorization": f"Bearer {key}"}, json=body)
    assert response.status_code == 200
    assert json.loads(upstream.requests()[-1]["body"])["anthropic_beta"] == body["anthropic_beta"]
    # Claude Code's first-party betas: the ones Bedrock refuses (invalid beta flag) are left out
    betas = "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,prompt-caching-scope-2026-01-05,fast-mode-2026-02-01"
    response = httpx.post(f"{gateway.url}/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01", "anthropic-beta": betas},
                          json={"model": "claude-bedrock", "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]})
    assert response.status_code == 200, response.text
    assert json.loads(upstream.requests()[-1]["body"])["anthropic_beta"] == ["claude-code-20250219", "interleaved-thinking-2025-05-14"]


def test_a_bedrock_clients_betas_reach_an_anthropic_upstream_as_its_header(gateway, key, upstream):
    body = {"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"],
            "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]}
    response = httpx.post(f"{gateway.url}/bedrock/model/claude-anthropic/invoke", headers={"authorization": f"Bearer {key}"}, json=body)
    assert response.status_code == 200, response.text
    [sent] = upstream.requests()
    assert dict(sent["headers"])["anthropic-beta"] == "interleaved-thinking-2025-05-14,context-1m-2025-08-07"
    sent_body = json.loads(sent["body"])
    assert "anthropic_version" not in sent_body and "anthropic_beta" not in sent_body and sent_body["model"] == "claude-sonnet-4-5-20250929"


# --- errors in the client's format -------------------------------------------------------------------


def _fault(upstream, path: str, status: int, **action) -> None:  # type: ignore[no-untyped-def]
    upstream.set_faults([{"match": {"path": path}, "action": {"type": "status", "status": status, **action}}])


def test_bedrock_throttling_reaches_each_client_in_its_own_shape(gateway, key, upstream):
    _fault(upstream, "/model/us.anthropic.claude-sonnet-4-5*", 429)
    with pytest.raises(anthropic.RateLimitError) as info:
        _messages(gateway, key, "claude-bedrock", False)
    assert info.value.body["error"]["type"] == "rate_limit_error"
    # a Bedrock client gets Bedrock's own error, unmodified, with its error type header
    response = httpx.post(f"{gateway.url}/bedrock/model/claude-bedrock/invoke", headers={"authorization": f"Bearer {key}"},
                          json={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 429 and set(response.json()) == {"message"}
    assert response.headers["x-amzn-errortype"] == "ThrottlingException"


def test_a_bedrock_exception_mid_stream_ends_each_clients_stream_with_its_error(gateway, key, upstream):
    upstream.set_faults([{"match": {"path": "/model/us.anthropic.claude-sonnet-4-5*"}, "action": {"type": "error_after_events", "events": 3, "status": 429, "seconds": 0.2}}])
    body = {"model": "claude-bedrock", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi there"}]}
    raw = _raw_stream(f"{gateway.url}/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}, body)
    last = raw.strip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error") and b'"rate_limit_error"' in last
    # a Bedrock client: Bedrock's exception frame, as Bedrock sent it
    frames = _raw_stream(f"{gateway.url}/bedrock/model/claude-bedrock/invoke-with-response-stream", {"authorization": f"Bearer {key}"},
                         {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]})
    messages = EventStreamParser().feed(frames)
    assert messages[-1].headers[":message-type"] == "exception" and messages[-1].headers[":exception-type"] == "throttlingException"
    # and the Anthropic SDK's Bedrock client raises it
    with pytest.raises(Exception, match="Number of request tokens"):
        with bedrock_client(gateway, key) as client:
            with client.messages.stream(model="claude-bedrock", max_tokens=64, messages=[{"role": "user", "content": "hi there"}]) as events:
                events.get_final_message()


def test_a_vertex_error_from_claude_passes_as_it_is_and_googles_are_translated(gateway, key, upstream):
    claude_error = {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 250000 tokens > 200000 maximum"}}
    _fault(upstream, "/v1/projects/*/publishers/anthropic/*", 400, body=claude_error)
    response = httpx.post(f"{gateway.url}/v1/messages", headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                          json={"model": "claude-vertex", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    assert (response.status_code, response.json()) == (400, claude_error)
    google_error = {"error": {"code": 429, "message": "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model", "status": "RESOURCE_EXHAUSTED"}}
    _fault(upstream, "/v1/projects/*/publishers/anthropic/*", 429, body=google_error)
    with pytest.raises(anthropic.RateLimitError) as info:
        _messages(gateway, key, "claude-vertex", False)
    assert info.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": google_error["error"]["message"]}}
    # a Vertex client gets Vertex's answer as it came
    with pytest.raises(anthropic.RateLimitError) as info:
        _vertex(gateway, key, "claude-vertex", False)
    assert info.value.body == google_error


def test_a_gemini_error_reaches_a_bedrock_client_in_aws_shape(gateway, key, upstream):
    _fault(upstream, "/v1beta/models/gemini-2.5-flash*", 400)
    response = httpx.post(f"{gateway.url}/bedrock/model/gemini-studio/invoke", headers={"authorization": f"Bearer {key}"},
                          json={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 400 and response.headers["x-amzn-errortype"] == "ValidationException"
    assert response.json() == {"message": "Invalid request"}


def test_bad_input_on_the_bedrock_surface_is_a_400_in_aws_shape(gateway, key):
    response = httpx.post(f"{gateway.url}/bedrock/model/claude-bedrock/invoke", headers={"authorization": f"Bearer {key}"},
                          json={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 8, "anthropic_beta": "not-a-list", "messages": []})
    assert response.status_code == 400 and response.headers["x-amzn-errortype"] == "ValidationException"
    assert "anthropic_beta" in response.json()["message"]
    response = httpx.post(f"{gateway.url}/bedrock/model/claude-bedrock/invoke", headers={"authorization": "Bearer sk-ks-not-a-key-0000000000"}, content=b"{}")
    assert response.status_code == 401 and response.headers["x-amzn-errortype"] == "UnrecognizedClientException"


# --- retries and fallback ---------------------------------------------------------------------------


def test_a_failing_bedrock_deployment_falls_back_to_vertex(gateway, key, upstream):
    _fault(upstream, "/model/anthropic.claude-opus-4-1*", 503)
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        raw = client.messages.with_raw_response.create(model="claude-failover", max_tokens=64, messages=[{"role": "user", "content": "hi there"}])
    assert raw.parse().content[0].text.startswith(HELLO)
    assert raw.headers["x-keystile-deployment"] == "claude-vertex#0"
    paths = [r["path"] for r in upstream.requests() if r["path"] != "/token"]
    assert [p.startswith("/model/") for p in paths] == [True, True, False]  # the attempt, its retry, then the fallback
    # the same from Claude Code's Bedrock surface, streaming
    with bedrock_client(gateway, key) as client:
        with client.messages.stream(model="claude-failover", max_tokens=64, messages=[{"role": "user", "content": "hi there"}]) as events:
            assert events.get_final_text().startswith(HELLO)


# --- the built-in mock provider (make run) -----------------------------------------------------------


def test_make_runs_default_config_answers_claude_codes_cloud_modes_and_gemini(tmp_path):
    from importlib import resources

    default = resources.files("keystile").joinpath("default_config.yaml").read_text()
    with cloud_gateway(default, workdir=tmp_path) as gw:
        key = gw.create_key()
        assert _bedrock(gw, key, "us.anthropic.claude-sonnet-4-5-20250929-v1:0", True).startswith(HELLO)
        assert _vertex(gw, key, "claude-sonnet-4-5@20250929", True).startswith(HELLO)
        assert SURFACES["gemini"](gw, key, "gemini-2.5-pro", True).startswith(HELLO)


@pytest.mark.parametrize("fmt", ["bedrock", "vertex", "gemini"])
def test_the_mock_provider_answers_as_each_cloud_would(tmp_path, fmt):
    config = f"models:\n  - name: m\n    provider: mock\n    model: mock-{fmt}\n    format: {fmt}\n"
    with cloud_gateway(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        for surface in ("messages", "chat", "responses", "bedrock", "vertex", "gemini"):
            for stream in (False, True):
                assert SURFACES[surface](gw, key, "m", stream).startswith(HELLO), (surface, stream)


def test_a_bedrock_frame_that_breaks_its_checksum_ends_the_stream_with_an_error(gateway, key, upstream):
    upstream.set_faults([{"match": {"path": "/model/us.anthropic.claude-sonnet-4-5*"}, "action": {"type": "malformed_after_events", "events": 4, "seconds": 0.2}}])
    body = {"model": "claude-bedrock", "max_tokens": 64, "stream": True, "messages": [{"role": "user", "content": "hi there"}]}
    raw = _raw_stream(f"{gateway.url}/v1/messages", {"x-api-key": key, "anthropic-version": "2023-06-01"}, body)
    last = raw.strip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error") and b"checksum" in last
    frames = _raw_stream(f"{gateway.url}/bedrock/model/claude-bedrock/invoke-with-response-stream", {"authorization": f"Bearer {key}"},
                         {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64, "messages": [{"role": "user", "content": "hi there"}]})
    messages = EventStreamParser().feed(frames)  # every frame the client got is whole and valid
    assert messages[-1].headers[":message-type"] == "exception" and messages[-1].headers[":exception-type"] == "modelStreamErrorException"
    assert sum(m.headers.get(":event-type") == "chunk" for m in messages) == 4


def test_token_counts_go_to_vertex_and_gemini_and_are_estimated_for_bedrock(gateway, key, upstream):
    body = {"messages": [{"role": "user", "content": "hi there"}]}
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as client:
        vertex = client.messages.with_raw_response.count_tokens(model="claude-vertex", **body)
        assert vertex.parse().input_tokens > 0 and "x-keystile-estimate" not in vertex.headers
        [sent] = [r for r in upstream.requests() if r["path"].endswith("/models/count-tokens:rawPredict")]
        sent_body = json.loads(sent["body"])
        assert sent_body["model"] == "claude-sonnet-4-5@20250929" and sent_body["anthropic_version"] == "vertex-2023-10-16"
        gemini = client.messages.with_raw_response.count_tokens(model="gemini-vertex", **body)
        assert gemini.parse().input_tokens > 0 and any(r["path"].endswith("gemini-2.5-pro:countTokens") for r in upstream.requests())
        bedrock = client.messages.with_raw_response.count_tokens(model="claude-bedrock", **body)
        assert bedrock.parse().input_tokens > 0 and bedrock.headers["x-keystile-estimate"] == "true"
    assert not any("/model/" in r["path"] for r in upstream.requests())


@pytest.mark.parametrize("beta", ["interleaved-thinking\r\nx-injected: 1", "a,b", "", "é"])
def test_a_bedrock_body_beta_that_is_not_a_flag_name_is_refused_before_it_can_become_a_header(gateway, key, upstream, beta):
    body = {"anthropic_version": "bedrock-2023-05-31", "anthropic_beta": [beta], "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
    response = httpx.post(f"{gateway.url}/bedrock/model/claude-anthropic/invoke", headers={"authorization": f"Bearer {key}"}, json=body)
    assert response.status_code == 400 and "anthropic_beta" in response.json()["message"]
    assert upstream.requests() == []
