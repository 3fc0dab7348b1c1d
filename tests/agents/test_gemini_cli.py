"""Gemini CLI 0.61 through keystile (issue 12): it speaks only the Gemini API.

Without ``-m`` it first asks a small model, in JSON mode (``responseMimeType: application/json``
with a ``responseJsonSchema``), how hard the prompt is (a ``:generateContent`` call), then
streams the answer from the model it picked (``:streamGenerateContent?alt=sse``). Both are
translated here: the routing call to an OpenAI-type deployment (Chat Completions with a
``json_schema`` response format), the answer to an Anthropic-type one; with ``-m`` one stream.
"""

from __future__ import annotations

import json

from tests.agents.runners import MOCK_ANSWER, run_gemini, upstream_calls
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY


def test_gemini_cli_routes_then_answers_through_translated_upstreams(agents_gateway, agent_key, upstream, tmp_path):
    run = run_gemini(tmp_path, agents_gateway.url, agent_key, "say hi to gemini")
    assert run.returncode == 0, run.explain()
    assert run.stdout.startswith(MOCK_ANSWER), run.explain()
    # The routing call: JSON mode reached the Chat upstream as a json_schema response format, and
    # the mock's JSON answer satisfied Gemini CLI (it asked once and went on; it retries a bad one).
    [routing] = upstream_calls(upstream, "/v1/chat/completions", UPSTREAM_OPENAI_KEY, agent_key)
    sent = json.loads(routing["body"])
    assert sent["model"] == "gpt-4.1-mini" and not sent.get("stream")
    schema = sent["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"complexity_reasoning", "complexity_score"}
    # The answer: streamed from the Anthropic-type deployment that serves gemini-*.
    [answer] = upstream_calls(upstream, "/v1/messages", UPSTREAM_ANTHROPIC_KEY, agent_key)
    body = json.loads(answer["body"])
    assert body["stream"] is True and body["model"] == "claude-sonnet-4-5-20250929"
    assert "say hi to gemini" in json.dumps(body["messages"][-1])
    routes = [json.loads(line)["route"] for line in agents_gateway.log().splitlines() if line.startswith('{"ts"')]
    assert any(r.endswith(":generateContent") for r in routes) and any(r.endswith(":streamGenerateContent") for r in routes)
    assert agent_key not in agents_gateway.log()


def test_gemini_cli_with_a_model_on_an_openai_deployment(agents_gateway, agent_key, upstream, tmp_path):
    run = run_gemini(tmp_path, agents_gateway.url, agent_key, "say hi to gpt", model="gpt-chat")
    assert run.returncode == 0, run.explain()
    assert run.stdout.startswith(MOCK_ANSWER), run.explain()
    [call] = upstream_calls(upstream, "/v1/chat/completions", UPSTREAM_OPENAI_KEY, agent_key)  # -m: no routing call
    sent = json.loads(call["body"])
    assert sent["model"] == "gpt-4.1" and sent["stream"] is True
    assert "say hi to gpt" in json.dumps(sent["messages"])
    assert agent_key not in agents_gateway.log()
