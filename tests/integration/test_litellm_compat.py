"""A LiteLLM user switching over: their config.yaml as-is, and the key header LiteLLM's docs teach.

The real server runs on the LiteLLM config and is called with the official SDKs; what reached
the mock upstream shows which URL keystile chose.
"""

from __future__ import annotations

import json
import textwrap

import anthropic
import httpx
import openai
import pytest

from tests.integration.harness import OAUTH_TOKEN, GatewayProcess, anthropic_body


def test_an_ollama_deployment_written_the_litellm_way_reaches_ollamas_openai_api(tmp_path, upstream):
    # The usual LiteLLM form: api_base is Ollama's root. LiteLLM itself posts to <root>/api/chat;
    # keystile speaks Ollama's OpenAI-compatible API, which lives under <root>/v1.
    config = textwrap.dedent(
        f"""\
        model_list:
          - model_name: llama3
            litellm_params:
              model: ollama/llama3
              api_base: {upstream.url}
          - model_name: llama3
            litellm_params:
              model: bedrock/meta.llama3-8b-instruct-v1:0
        litellm_settings:
          drop_params: true
          success_callback: ["langfuse"]
        general_settings:
          alerting: ["slack"]
        """
    )
    with GatewayProcess(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        with openai.OpenAI(base_url=f"{gw.url}/v1", api_key=key, max_retries=0) as client:
            reply = client.chat.completions.create(model="llama3", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content
        [sent] = [r for r in upstream.requests() if "completions" in r["path"]]
        assert sent["path"] == "/v1/chat/completions"
        assert json.loads(sent["body"])["model"] == "llama3"
        log = gw.log()
    # Every setting keystile does not implement, and the skipped deployment, said so at start.
    warnings = [line for line in log.splitlines() if line.startswith("keystile: warning:")]
    for name in ("litellm_settings.drop_params", "litellm_settings.success_callback", "general_settings.alerting"):
        assert sum(name in line for line in warnings) == 1, (name, warnings)
    assert sum("Anthropic models on Bedrock" in line and "'llama3' deployment is skipped" in line for line in warnings) == 1


@pytest.mark.parametrize("value,alias", [("Bearer {key}", "ch-bearer"), ("{key}", "ch-bare"), ("bearer {key}", "ch-lowercase")])
def test_x_litellm_api_key_from_anthropic_custom_headers_authenticates(gateway, upstream, value, alias):
    """LiteLLM's Claude Code docs: ANTHROPIC_CUSTOM_HEADERS="x-litellm-api-key: Bearer sk-…"."""
    key = gateway.create_key(key_alias=alias)
    header = {"x-litellm-api-key": value.format(key=key)}
    # Claude Code logged in with its own account sends its OAuth token too; it is kept aside.
    with anthropic.Anthropic(base_url=gateway.url, auth_token=OAUTH_TOKEN, default_headers=header, max_retries=0) as client:
        message = client.messages.create(**anthropic_body(model="claude-test"))
    assert message.content[0].text
    logs = gateway.admin("GET", "/spend/logs", params={"limit": 1}).json()
    assert logs[0]["key_alias"] == alias
    # The gateway key never goes upstream.
    [sent] = [r for r in upstream.requests() if r["path"] == "/v1/messages"]
    assert key not in json.dumps(sent)


def test_an_invalid_key_in_x_litellm_api_key_is_a_401_that_names_the_header(gateway):
    with anthropic.Anthropic(
        base_url=gateway.url, api_key="placeholder", default_headers={"x-litellm-api-key": "Bearer sk-not-a-real-key-000000"}, max_retries=0
    ) as client:
        with pytest.raises(anthropic.AuthenticationError) as raised:
            client.messages.create(**anthropic_body(model="claude-test"))
    assert "x-litellm-api-key" in raised.value.message and "sk-not-a-real-key-000000" not in raised.value.message
    response = httpx.post(
        f"{gateway.url}/v1/messages", json=anthropic_body(model="claude-test"),
        headers={"anthropic-version": "2023-06-01", "x-litellm-api-key": "Bearer"}, timeout=10,
    )
    assert response.status_code == 401 and "No gateway key found" in response.json()["error"]["message"]
