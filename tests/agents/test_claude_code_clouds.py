"""Claude Code 2.1.197 in its Bedrock and Vertex modes, pointed at keystile (issue 15.2).

A company moves Claude Code from direct Bedrock or Vertex to keystile by changing one URL:
``ANTHROPIC_BEDROCK_BASE_URL`` / ``ANTHROPIC_VERTEX_BASE_URL``. The key travels as the Bedrock API
key (``AWS_BEARER_TOKEN_BEDROCK``, sent as Bearer) or in ``ANTHROPIC_CUSTOM_HEADERS`` with the
cloud's own authentication skipped. The answers come from any deployment type: here a Bedrock
upstream (signed with SigV4), a Vertex one (a service account's OAuth token) and an OpenAI one.
Claude Code refuses model ids it does not know in these modes, so the config serves its ids.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Iterator

import pytest

from tests.agents.clis import agent_cli
from tests.integration.clouds import AWS_KEY_ID, AWS_SECRET, cloud_gateway, service_account
from tests.integration.harness import UPSTREAM_OPENAI_KEY, GatewayProcess

BEDROCK_MODEL = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"
ANSWER = "Hello from keystile mock. You said:"


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    sa = service_account(upstream, tmp_path_factory.mktemp("claude-clouds"))
    url = upstream.url
    config = textwrap.dedent(
        f"""\
        models:
          - name: {BEDROCK_MODEL}
            provider: bedrock
            region: us-east-1
            api_base: {url}
            aws_access_key_id: {AWS_KEY_ID}
            aws_secret_access_key: {AWS_SECRET}
            headers: {{x-mock-tools: none}}
          - name: "*anthropic.claude-*"          # the other Bedrock ids Claude Code asks for
            provider: openai
            model: gpt-4.1
            api_base: {url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
            headers: {{x-mock-tools: none}}
          - name: "claude-*"                     # Claude Code's Vertex ids
            provider: vertex_ai
            vertex_location: us-east5
            vertex_credentials: {sa}
            api_base: {url}
            headers: {{x-mock-tools: none}}
        """
    )
    with cloud_gateway(config) as gw:
        yield gw


def _run_claude(home: Path, env: dict[str, str], model: str) -> subprocess.CompletedProcess:
    cli = agent_cli("claude")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        **env,
    }
    return subprocess.run([*cli.command, "-p", "say hi", "--model", model], env=env, capture_output=True, text=True, timeout=180, cwd=home)


def _bedrock_env(gateway: GatewayProcess) -> dict[str, str]:
    return {"CLAUDE_CODE_USE_BEDROCK": "1", "ANTHROPIC_BEDROCK_BASE_URL": f"{gateway.url}/bedrock", "AWS_REGION": "us-east-1"}


@pytest.mark.parametrize("mode", ["bedrock-api-key", "custom-header"])
def test_claude_code_in_bedrock_mode(gateway, upstream, tmp_path, mode):
    key = gateway.create_key(key_alias=f"claude-bedrock-{mode}")
    env = _bedrock_env(gateway)
    if mode == "bedrock-api-key":
        env["AWS_BEARER_TOKEN_BEDROCK"] = key
    else:
        env |= {"CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1", "ANTHROPIC_CUSTOM_HEADERS": f"x-keystile-key: {key}"}
    result = _run_claude(tmp_path, env, BEDROCK_MODEL)
    assert result.returncode == 0, result.stderr + result.stdout
    assert ANSWER in result.stdout
    streamed = [r for r in upstream.requests() if r["path"].endswith("/invoke-with-response-stream")]
    assert streamed, [r["path"] for r in upstream.requests()]
    sent = json.loads(streamed[-1]["body"])
    # Claude Code's own Bedrock body went on as it was: its betas, its version, its billing block
    assert sent["anthropic_version"] == "bedrock-2023-05-31" and "interleaved-thinking-2025-05-14" in sent["anthropic_beta"]
    assert "x-anthropic-billing-header" in json.dumps(sent["system"])
    assert dict(streamed[-1]["headers"])["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS_KEY_ID}/")
    logs = gateway.admin("GET", "/spend/logs", params={"api_key": key}).json()
    assert logs and all(row["key_alias"] == f"claude-bedrock-{mode}" for row in logs) and sum(row["spend"] for row in logs) > 0
    assert key not in json.dumps(upstream.requests()) and key not in gateway.log()


def test_claude_code_in_bedrock_mode_on_an_openai_model(gateway, upstream, tmp_path):
    key = gateway.create_key()
    result = _run_claude(tmp_path, _bedrock_env(gateway) | {"AWS_BEARER_TOKEN_BEDROCK": key}, "us.anthropic.claude-haiku-4-5-20251001-v1:0")
    assert result.returncode == 0, result.stderr + result.stdout
    assert ANSWER in result.stdout
    chats = [json.loads(r["body"]) for r in upstream.requests() if r["path"] == "/v1/chat/completions"]
    assert any(c.get("stream") and c["model"] == "gpt-4.1" for c in chats)


def test_claude_code_in_vertex_mode(gateway, upstream, tmp_path):
    key = gateway.create_key(key_alias="claude-vertex")
    env = {
        "CLAUDE_CODE_USE_VERTEX": "1",
        "ANTHROPIC_VERTEX_BASE_URL": f"{gateway.url}/vertex/v1",
        "ANTHROPIC_VERTEX_PROJECT_ID": "my-project",
        "CLOUD_ML_REGION": "us-east5",
        "CLAUDE_CODE_SKIP_VERTEX_AUTH": "1",
        "ANTHROPIC_CUSTOM_HEADERS": f"x-keystile-key: {key}",
    }
    result = _run_claude(tmp_path, env, VERTEX_MODEL)
    assert result.returncode == 0, result.stderr + result.stdout
    assert ANSWER in result.stdout
    [call] = [r for r in upstream.requests() if r["path"].endswith(":streamRawPredict")]
    # keystile's Vertex project (not Claude Code's), its own token, Claude Code's betas
    assert call["path"] == f"/v1/projects/keystile-test/locations/us-east5/publishers/anthropic/models/{VERTEX_MODEL}:streamRawPredict"
    headers = dict(call["headers"])
    assert headers["authorization"].startswith("Bearer ya29.mock-")
    assert "interleaved-thinking-2025-05-14" in headers["anthropic-beta"]
    assert json.loads(call["body"])["anthropic_version"] == "vertex-2023-10-16"
    assert key not in json.dumps(upstream.requests())


def test_a_wrong_key_stops_claude_codes_bedrock_mode_at_once(gateway, upstream, tmp_path):
    result = _run_claude(tmp_path, _bedrock_env(gateway) | {"AWS_BEARER_TOKEN_BEDROCK": "sk-ks-not-a-valid-key-000000000000"}, BEDROCK_MODEL)
    assert result.returncode != 0
    assert "invalid" in (result.stdout + result.stderr).lower()
    assert not [r for r in upstream.requests() if "/model/" in r["path"]]
