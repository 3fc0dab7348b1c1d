"""opencode 1.18 through keystile (issue 12), with each of its four provider packages.

Each package speaks its own API to keystile; each is pointed at a deployment of another kind,
so every run crosses a translation: Chat → Messages, Responses → Messages → Chat,
Messages → Responses, Gemini → Messages. opencode makes two calls per run (a title, then the
answer) and re-sends in a tight loop when a stream ends without its finish signal, so a
passing run also shows every stream ended properly.
"""

from __future__ import annotations

import json

import pytest

from tests.agents.runners import MOCK_ANSWER, run_opencode, upstream_calls
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY


@pytest.mark.parametrize(
    "package,base,model,path,upstream_key,upstream_model",
    [
        ("openai-compatible", "/v1", "claude-sonnet", "/v1/messages", UPSTREAM_ANTHROPIC_KEY, "claude-sonnet-4-5-20250929"),
        ("openai", "/v1", "gpt-chat", "/v1/chat/completions", UPSTREAM_OPENAI_KEY, "gpt-4.1"),
        ("anthropic", "/v1", "gpt-responses", "/v1/responses", UPSTREAM_OPENAI_KEY, "gpt-5"),
        ("google", "/v1beta", "claude-sonnet", "/v1/messages", UPSTREAM_ANTHROPIC_KEY, "claude-sonnet-4-5-20250929"),
    ],
)
def test_opencode_provider_package(agents_gateway, agent_key, upstream, tmp_path, package, base, model, path, upstream_key, upstream_model):
    run = run_opencode(tmp_path, package, agents_gateway.url + base, agent_key, model, "say hi to opencode")
    assert run.returncode == 0, run.explain()
    assert run.stdout.strip() == f'{MOCK_ANSWER} "say hi to opencode"', run.explain()
    calls = upstream_calls(upstream, path, upstream_key, agent_key)
    assert len(calls) == 2, [c["path"] for c in upstream.requests()]  # the title, then the answer: no re-sends
    for call in calls:
        assert json.loads(call["body"])["model"] == upstream_model
    assert "say hi to opencode" in calls[-1]["body"]
    assert agent_key not in agents_gateway.log()
