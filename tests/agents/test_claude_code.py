"""Today's Claude Code (2.1.197) through keystile on an OpenAI-type deployment (issue 12.3).

It sends mid-conversation ``role: "system"`` messages, adaptive thinking, ``output_config.effort``
and a per-request billing block; keystile must translate all of it for a Chat Completions
upstream, and Claude Code must print the upstream's answer.
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
from tests.integration.harness import UPSTREAM_OPENAI_KEY, GatewayProcess


@pytest.fixture(scope="module")
def gateway(upstream) -> Iterator[GatewayProcess]:  # type: ignore[no-untyped-def]
    config = textwrap.dedent(
        f"""\
        models:
          - name: "claude-*"
            provider: openai
            model: gpt-4.1
            api_base: {upstream.url}/v1
            api_key: {UPSTREAM_OPENAI_KEY}
            headers: {{x-mock-tools: none}}
        """
    )
    with GatewayProcess(config) as gw:
        yield gw


def _run_claude(gateway: GatewayProcess, key: str, home: Path, prompt: str) -> subprocess.CompletedProcess:
    cli = agent_cli("claude")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_API_KEY": key,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return subprocess.run([*cli.command, "-p", prompt], env=env, capture_output=True, text=True, timeout=120, cwd=home)


def test_claude_code_runs_on_an_openai_model(gateway, upstream, tmp_path):
    key = gateway.create_key(key_alias="claude-code-user")
    result = _run_claude(gateway, key, tmp_path, "say hi")
    assert result.returncode == 0, result.stderr
    assert "Hello from keystile mock. You said:" in result.stdout  # the upstream's answer, printed
    calls = [r for r in upstream.requests() if r["path"] == "/v1/chat/completions"]
    assert calls, upstream.requests()
    sent = json.loads(calls[-1]["body"])
    assert sent["model"] == "gpt-4.1"
    assert any(m["role"] == "user" and "say hi" in json.dumps(m) for m in sent["messages"])
    assert "reasoning_effort" not in sent  # gpt-4.1 would refuse it
    assert not any("x-anthropic-billing-header" in str(m.get("content")) for m in sent["messages"])
    assert sum(1 for m in sent["messages"] if m["role"] == "system") >= 2  # Claude Code's mid-conversation one too
    headers = dict(calls[-1]["headers"])
    assert headers["authorization"] == f"Bearer {UPSTREAM_OPENAI_KEY}"
    assert key not in json.dumps(upstream.requests())
    assert key not in gateway.log()


def test_a_wrong_key_stops_claude_code_at_once(gateway, tmp_path):
    result = _run_claude(gateway, "sk-ks-not-a-valid-key-000000000000", tmp_path, "say hi")
    assert result.returncode != 0
    assert "Invalid" in (result.stdout + result.stderr) or "401" in (result.stdout + result.stderr)
