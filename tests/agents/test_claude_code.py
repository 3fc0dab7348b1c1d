"""Today's Claude Code (2.1.197) through keystile on an OpenAI-type deployment (issue 12.3).

It sends mid-conversation ``role: "system"`` messages, adaptive thinking, ``output_config.effort``
and a per-request billing block; keystile must translate all of it for a Chat Completions
upstream, and Claude Code must print the upstream's answer. In its gateway mode it also discovers
models with ``GET /v1/models?limit=1000`` (issue 12.6).
"""

from __future__ import annotations

import json
import textwrap
from typing import Iterator

import pytest

from tests.agents.runners import MOCK_ANSWER, run_claude, upstream_calls
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY, GatewayProcess


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


def test_claude_code_runs_on_an_openai_model(gateway, upstream, tmp_path):
    key = gateway.create_key(key_alias="claude-code-user")
    result = run_claude(tmp_path, gateway.url, key, "say hi")
    assert result.returncode == 0, result.explain()
    assert result.stdout.startswith(MOCK_ANSWER), result.explain()  # the upstream's answer, printed
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
    result = run_claude(tmp_path, gateway.url, "sk-ks-not-a-valid-key-000000000000", "say hi")
    assert result.returncode != 0
    assert "Invalid" in (result.stdout + result.stderr) or "401" in (result.stdout + result.stderr)


def test_claude_code_gateway_model_discovery(agents_gateway, upstream, tmp_path):
    """In its gateway mode Claude Code asks ``GET /v1/models?limit=1000`` (Bearer key,
    ``anthropic-version``) for the models to offer in its picker, keeps the ``claude…`` ones and
    caches them in ``~/.claude.json``: it must accept keystile's list, which shows only what the key may use."""
    # Discovery runs when no model is chosen (ANTHROPIC_MODEL or --model skip it); Claude Code's
    # default (claude-opus-…) is served by the claude-* pattern, which the list leaves out.
    key = agents_gateway.create_key(models=["claude-sonnet", "gpt-chat", "claude-opus-*"])
    env = {
        "CLAUDE_CODE_USE_GATEWAY": "1",
        "CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY": "1",
        "ANTHROPIC_API_KEY": None,
        "ANTHROPIC_AUTH_TOKEN": key,
    }
    # Claude Code fetches the list beside its first request and may exit before it has stored
    # it; an answer that takes 1.5 s leaves the fetch time to finish.
    upstream.set_faults([{"match": {"path": "/v1/messages"}, "action": {"type": "delay", "seconds": 1.5}}])
    run = run_claude(tmp_path, agents_gateway.url, key, "say hi to the picker", env=env)
    assert run.returncode == 0, run.explain()
    assert run.stdout.strip() == f"{MOCK_ANSWER} say hi to the picker", run.explain()
    state = json.loads((tmp_path / ".claude.json").read_text())
    offered = [option["value"] for option in state["additionalModelOptionsCache"]]
    assert offered == ["claude-sonnet"]  # gpt-chat is not a claude model; claude-tools is not this key's
    [call] = upstream_calls(upstream, "/v1/messages", UPSTREAM_ANTHROPIC_KEY, key)
    assert json.loads(call["body"])["model"].startswith("claude-opus-")
    assert key not in agents_gateway.log()
