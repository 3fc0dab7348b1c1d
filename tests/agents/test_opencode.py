"""opencode 1.18 through keystile (issue 12), with each of its four provider packages.

Each package speaks its own API to keystile and is pointed at a deployment of another kind, so
every run crosses a translation: Chat → Messages, Responses → Messages → Chat, Messages →
Responses, Gemini → Messages. The mock model calls the first tool opencode offers, ``bash``,
with the command ``mock``: a script of the test's own, first on PATH, that only prints a
marker; opencode runs it and sends its output back, and the mock answers that. So each run
makes three calls (a title, the tool call, the answer). opencode re-sends in a tight loop when
a stream ends without its finish signal, so exactly three calls also shows every stream ended.
"""

from __future__ import annotations

import json

import pytest

from tests.agents.runners import run_opencode, upstream_calls
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY

MARKER = "keystile-tool-marker-9c41"


@pytest.mark.parametrize(
    "package,base,model,path,upstream_key,upstream_model",
    [
        ("openai-compatible", "/v1", "claude-tools", "/v1/messages", UPSTREAM_ANTHROPIC_KEY, "claude-sonnet-4-5-20250929"),
        ("openai", "/v1", "tools-chat", "/v1/chat/completions", UPSTREAM_OPENAI_KEY, "gpt-4.1"),
        ("anthropic", "/v1", "tools-responses", "/v1/responses", UPSTREAM_OPENAI_KEY, "gpt-5"),
        ("google", "/v1beta", "claude-tools", "/v1/messages", UPSTREAM_ANTHROPIC_KEY, "claude-sonnet-4-5-20250929"),
    ],
)
def test_opencode_provider_package(agents_gateway, agent_key, upstream, tmp_path, package, base, model, path, upstream_key, upstream_model):
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "mock").write_text(f"#!/bin/sh\necho {MARKER}\n")
    (tools / "mock").chmod(0o755)
    run = run_opencode(
        tmp_path, package, agents_gateway.url + base, agent_key, model, "say hi to opencode", env={"PATH": f"{tools}:/usr/bin:/bin"}
    )
    assert run.returncode == 0, run.explain()
    assert "Tool result received:" in run.stdout and MARKER in run.stdout, run.explain()
    calls = upstream_calls(upstream, path, upstream_key, agent_key)
    assert len(calls) == 3, [c["path"] for c in upstream.requests()]  # title, tool call, answer: no re-sends
    for call in calls:
        assert json.loads(call["body"])["model"] == upstream_model
    assert "say hi to opencode" in calls[1]["body"] and MARKER not in calls[1]["body"]
    assert MARKER in calls[2]["body"]  # the tool's output went back upstream
    assert agent_key not in agents_gateway.log()
