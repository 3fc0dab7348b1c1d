"""Same-format proxying through the real server: the official SDKs, faithful pass-through, streaming."""

from __future__ import annotations

import json

import time

import anthropic
import httpx
import openai
import orjson
import pytest

from tests.integration.harness import (
    UPSTREAM_ANTHROPIC_KEY,
    UPSTREAM_AZURE_KEY,
    UPSTREAM_OPENAI_KEY,
    GatewayProcess,
    anthropic_body,
)


def test_anthropic_sdk_create_and_stream(claude, upstream):
    message = claude.messages.create(**anthropic_body(text="ping"))
    assert message.content[0].text == "Hello from keystile mock. You said: ping"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1/messages"
    assert orjson.loads(sent["body"])["model"] == "claude-sonnet-4-5-20250929"
    assert dict(sent["headers"])["x-api-key"] == UPSTREAM_ANTHROPIC_KEY

    with claude.messages.stream(**anthropic_body(text="stream me")) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from keystile mock. You said: stream me"
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


def test_openai_sdk_create_and_stream(gpt, upstream):
    completion = gpt.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "ping"}])
    assert completion.choices[0].message.content == "Hello from keystile mock. You said: ping"
    assert completion.usage.prompt_tokens > 0
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert dict(sent["headers"])["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"

    chunks = list(gpt.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "s"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello from keystile mock. You said: s"
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage: keystile's own usage chunk is stripped
    upstream_body = orjson.loads(upstream.requests()[-1]["body"])
    assert upstream_body["stream_options"] == {"include_usage": True}

    with_usage = list(
        gpt.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "s"}], stream=True, stream_options={"include_usage": True}
        )
    )
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0


def test_body_reaches_the_upstream_unchanged_but_for_the_model(gateway, key, upstream):
    """Every field, value and number survives (keystile re-serialises what it parsed: the JSON
    text may differ in spacing and escapes, never in meaning)."""
    raw = (
        b'{"model": "claude-test", "max_tokens": 64,\n "messages": [{"role": "user", "content": "caf\\u00e9 \\"model\\": x"}],'
        b' "metadata": {"user_id": "u-1"}, "temperature": 0.30000000000000004, "unknown_field": [1, 2.50, {"deep": null}]}'
    )
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        content=raw,
        headers={"x-api-key": key, "content-type": "application/json", "anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 200
    received = json.loads(upstream.requests()[-1]["body"])
    expected = json.loads(raw)  # the standard library's parser, not keystile's
    expected["model"] = "claude-sonnet-4-5-20250929"
    assert received == expected
    assert received["messages"][0]["content"] == 'café "model": x'
    assert repr(received["temperature"]) == "0.30000000000000004"


def test_anthropic_headers_forwarded_and_request_id_returned(gateway, key, upstream):
    response = httpx.post(
        f"{gateway.url}/v1/messages?beta=true",
        json=anthropic_body(),
        headers={
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14",
            "connection": "keep-alive",
            "x-custom-client-header": "should-not-travel",
        },
    )
    assert response.status_code == 200
    sent = upstream.requests()[-1]
    headers = dict(sent["headers"])
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"
    assert "x-custom-client-header" not in headers
    assert sent["query"] == "beta=true"
    assert response.headers["request-id"].startswith("req_mock_")
    assert response.headers["x-keystile-deployment"] == "claude-test#0"
    assert float(response.headers["x-keystile-overhead-ms"]) >= 0


def test_stream_events_are_not_buffered(gateway, key, upstream):
    """Each upstream event reaches the client before the upstream sends the next one."""
    upstream.set_faults([{"match": {"path": "/v1/messages"}, "action": {"type": "event_delay", "seconds": 0.3}}])
    arrivals = []
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json=anthropic_body(stream=True),
        headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        start = time.monotonic()
        for line in response.iter_lines():
            if line.startswith("event:"):
                arrivals.append((time.monotonic() - start, line))
    events = [name for _, name in arrivals]
    assert events[0] == "event: message_start" and events[-1] == "event: message_stop"
    gaps = [b - a for (a, _), (b, _) in zip(arrivals, arrivals[1:])]
    assert min(gaps) > 0.2, gaps  # one at a time, as the upstream sent them


def test_azure_deployment(gateway, key, upstream):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    completion = client.chat.completions.create(model="azure-test", messages=[{"role": "user", "content": "az"}])
    assert completion.choices[0].message.content.endswith("az")
    sent = upstream.requests()[-1]
    assert sent["path"] == "/openai/deployments/my-gpt4o-deployment/chat/completions"
    assert sent["query"] == "api-version=2024-10-21"
    headers = dict(sent["headers"])
    assert headers["api-key"] == UPSTREAM_AZURE_KEY and "authorization" not in headers


def test_embeddings(gpt, upstream):
    result = gpt.embeddings.create(model="embed-test", input=["a", "b"])
    assert len(result.data) == 2 and len(result.data[0].embedding) > 0
    assert upstream.requests()[-1]["path"] == "/v1/embeddings"


def test_builtin_mock_provider_answers_both_formats(claude, gpt):
    assert claude.messages.create(**anthropic_body(model="mock-builtin")).content[0].text.startswith("Hello from keystile mock")
    chunks = list(gpt.chat.completions.create(model="mock-builtin", messages=[{"role": "user", "content": "x"}], stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).endswith("x")


def test_count_tokens_passthrough(claude, upstream):
    result = claude.messages.count_tokens(model="claude-test", messages=[{"role": "user", "content": "count me please"}])
    assert result.input_tokens > 0
    assert upstream.requests()[-1]["path"] == "/v1/messages/count_tokens"


def test_models_list_both_shapes(gateway, key):
    listing = anthropic.Anthropic(base_url=gateway.url, api_key=key).models.list()
    ids = [m.id for m in listing.data]
    assert "claude-test" in ids and "gpt-test" in ids
    openai_ids = [m.id for m in openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key).models.list()]
    assert openai_ids == ids
    one = httpx.get(f"{gateway.url}/v1/models/claude-test", headers={"x-api-key": key})
    assert one.status_code == 200 and one.json()["id"] == "claude-test"
    missing = httpx.get(f"{gateway.url}/v1/models/nope", headers={"x-api-key": key, "anthropic-version": "2023-06-01"})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


def test_models_list_respects_key_models(gateway):
    restricted = gateway.create_key(models=["gpt-test"])
    ids = [m.id for m in openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=restricted).models.list()]
    assert ids == ["gpt-test"]
    refused = httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(), headers={"x-api-key": restricted, "anthropic-version": "2023-06-01"}
    )
    assert refused.status_code == 403 and refused.json()["error"]["type"] == "permission_error"


def test_upstream_error_of_same_format_passes_through_unmodified(gateway, key, upstream):
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long: 250000 tokens > 200000 maximum"}}
    upstream.set_faults([{"match": {"path": "/v1/messages"}, "action": {"type": "status", "status": 400, "body": body}}])
    response = httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(), headers={"x-api-key": key, "anthropic-version": "2023-06-01"}
    )
    assert response.status_code == 400
    assert response.json() == body


def test_unreachable_upstream_is_a_502_in_client_format(upstream, tmp_path):
    from tests.integration.harness import GatewayProcess, free_port

    dead = f"http://127.0.0.1:{free_port()}"
    config = f"models:\n  - name: dead\n    provider: anthropic\n    api_base: {dead}\n    api_key: x\n"
    config += f"  - name: dead-gpt\n    provider: openai\n    api_base: {dead}/v1\n    api_key: x\nrouter:\n  num_retries: 0\n"
    with GatewayProcess(config, workdir=tmp_path) as gw:
        response = httpx.post(
            f"{gw.url}/v1/messages", json=anthropic_body(model="dead"), headers={"x-api-key": gw.master_key}
        )
        assert response.status_code == 502
        assert response.json()["error"]["type"] == "api_error"
        chat = httpx.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "dead-gpt", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {gw.master_key}"},
        )
        assert chat.status_code == 502 and chat.json()["error"]["type"] == "server_error"


def test_hung_upstream_times_out_with_504(upstream, tmp_path):
    from tests.integration.harness import GatewayProcess

    config = (
        f"models:\n  - name: slow\n    provider: anthropic\n    api_base: {upstream.url}\n    api_key: x\n    timeout: 0.5\n"
        "router:\n  num_retries: 0\n"
    )
    upstream.set_faults([{"match": {"path": "/v1/messages"}, "action": {"type": "hang"}}])
    with GatewayProcess(config, workdir=tmp_path) as gw:
        start = time.monotonic()
        response = httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="slow"), headers={"x-api-key": gw.master_key}, timeout=10)
        assert response.status_code == 504
        assert response.json()["error"]["type"] == "timeout_error"
        assert time.monotonic() - start < 3


def test_pattern_groups_serve_any_matching_model(upstream, tmp_path):
    """Claude Code asks for whatever model its version defaults to; a "claude-*" group serves it."""
    from tests.integration.harness import GatewayProcess

    config = (
        f"models:\n  - name: claude-pinned\n    provider: anthropic\n    model: claude-pinned-upstream\n"
        f"    api_base: {upstream.url}\n    api_key: x\n"
        f"  - name: \"claude-*\"\n    provider: anthropic\n    api_base: {upstream.url}\n    api_key: x\n"
        f"  - name: gpt-4o\n    provider: mock\n"
    )
    with GatewayProcess(config, workdir=tmp_path) as gw:
        restricted = gw.create_key(models=["claude-*"])
        with anthropic.Anthropic(base_url=gw.url, api_key=restricted, max_retries=0) as client:
            client.messages.create(**anthropic_body(model="claude-opus-4-8"))
            assert orjson.loads(upstream.requests()[-1]["body"])["model"] == "claude-opus-4-8"
            client.messages.create(**anthropic_body(model="claude-pinned"))
            assert orjson.loads(upstream.requests()[-1]["body"])["model"] == "claude-pinned-upstream"
            assert [m.id for m in client.models.list().data] == ["claude-pinned"]
            assert client.models.retrieve("claude-opus-4-8").id == "claude-opus-4-8"
            with pytest.raises(anthropic.PermissionDeniedError):
                client.messages.create(**anthropic_body(model="gpt-4o"))
        unknown = httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(model="llama-3"), headers={"x-api-key": gw.master_key})
        assert unknown.status_code == 404


@pytest.mark.parametrize("fmt", ["native", "litellm"])
def test_configured_headers_go_upstream_with_every_request(upstream, tmp_path, fmt):
    if fmt == "native":
        config = (
            f"models:\n  - name: claude-h\n    provider: anthropic\n    model: claude-sonnet-4-5-20250929\n"
            f"    api_base: {upstream.url}\n    api_key: {UPSTREAM_ANTHROPIC_KEY}\n    headers: {{x-org-route: blue, x-tenant: t1}}\n"
        )
    else:  # LiteLLM spells it extra_headers
        config = (
            f"model_list:\n  - model_name: claude-h\n    litellm_params:\n      model: anthropic/claude-sonnet-4-5-20250929\n"
            f"      api_base: {upstream.url}\n      api_key: {UPSTREAM_ANTHROPIC_KEY}\n      extra_headers: {{x-org-route: blue, x-tenant: t1}}\n"
        )
    with GatewayProcess(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        for stream in (False, True):
            response = httpx.post(
                f"{gw.url}/v1/messages",
                json=anthropic_body(model="claude-h", stream=stream),
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            sent = dict(upstream.requests()[-1]["headers"])
            assert (sent.get("x-org-route"), sent.get("x-tenant"), sent.get("x-api-key")) == ("blue", "t1", UPSTREAM_ANTHROPIC_KEY)
            assert key not in str(upstream.requests()[-1]["headers"])


def test_head_root_answers_200_for_claude_code(gateway):
    """Claude Code sends ``HEAD /`` before its first request."""
    assert httpx.head(f"{gateway.url}/").status_code == 200
    assert httpx.get(f"{gateway.url}/").json()["name"] == "keystile"


@pytest.mark.parametrize(
    "headers,status",
    [
        ({"x-api-key": "sk-ks-not-a-real-key-000000"}, 401),
        ({}, 401),
    ],
)
def test_gateway_refusals_say_not_to_retry(gateway, headers, status):
    """A wrong key made Claude Code retry for minutes; x-should-retry: false stops it at once."""
    response = httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(), headers={"anthropic-version": "2023-06-01", **headers}
    )
    assert response.status_code == status
    assert response.headers["x-should-retry"] == "false"


def test_rate_limit_refusals_may_be_retried(gateway):
    key = gateway.create_key(rpm_limit=1)
    headers = {"x-api-key": key, "anthropic-version": "2023-06-01"}
    assert httpx.post(f"{gateway.url}/v1/messages", json=anthropic_body(), headers=headers).status_code == 200
    refused = httpx.post(f"{gateway.url}/v1/messages", json=anthropic_body(), headers=headers)
    assert refused.status_code == 429
    assert "x-should-retry" not in refused.headers
    assert int(refused.headers["retry-after"]) >= 1


def test_azure_openai_clients_call_the_gateway_by_deployment(gateway, key, upstream):
    """openai.AzureOpenAI(azure_endpoint=<gateway>) names the model in the path and sends its key as api-key."""
    client = openai.AzureOpenAI(azure_endpoint=gateway.url, api_key=key, api_version="2024-10-21", max_retries=0)
    completion = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Hello"}])
    assert completion.choices[0].message.content
    sent = upstream.requests()[-1]
    assert sent["path"] == "/v1/chat/completions"  # the gpt-test deployment is an OpenAI one
    assert json.loads(sent["body"])["model"] == "gpt-4o-2024-08-06"
    assert key not in json.dumps(sent)

    streamed = "".join(
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="claude-test", stream=True, messages=[{"role": "user", "content": "Hello"}]
        )
        if chunk.choices
    )
    assert streamed
    assert upstream.requests()[-1]["path"] == "/v1/messages"  # translated for the Anthropic deployment

    embedding = client.embeddings.create(model="embed-test", input="hello")
    assert len(embedding.data[0].embedding) > 0


def test_azure_route_with_an_unknown_deployment_is_a_404_in_openai_shape(gateway, key):
    response = httpx.post(
        f"{gateway.url}/openai/deployments/nope/chat/completions?api-version=2024-10-21",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={"api-key": key},
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_codex_websocket_attempt_is_refused_at_once(gateway, key):
    response = httpx.get(
        f"{gateway.url}/v1/responses",
        headers={
            "authorization": f"Bearer {key}",
            "connection": "Upgrade",
            "upgrade": "websocket",
            "sec-websocket-version": "13",
            "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            "openai-beta": "responses_websockets=2026-02-06",
        },
    )
    assert response.status_code == 426
    assert response.headers["x-should-retry"] == "false"
