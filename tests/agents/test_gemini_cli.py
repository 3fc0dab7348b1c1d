"""Gemini CLI 0.61 through keystile (issue 12): it speaks only the Gemini API.

Without ``-m`` it first asks a small model, in JSON mode (``responseMimeType: application/json``
with a ``responseJsonSchema``), how hard the prompt is (a ``:generateContent`` call), then
streams the answer from the model it picked (``:streamGenerateContent?alt=sse``). Both are
translated here: the routing call to an OpenAI-type deployment (Chat Completions with a
``json_schema`` response format), the answer to an Anthropic-type one; with ``-m`` no routing
call, and a tool call round trip (``functionCall`` ⇄ ``tool_calls``, ``functionResponse`` ⇄ a
``tool`` message).
"""

from __future__ import annotations

import json

from tests.agents.runners import MOCK_ANSWER, access_log, run_gemini, upstream_calls
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
    # Gemini CLI asks for thinking with every request; OpenAI answers reasoning_effort on a model
    # that does not reason (gpt-4.1-mini) with 400, so it is not sent (the mock refuses it too).
    assert "reasoning_effort" not in sent
    schema = sent["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"complexity_reasoning", "complexity_score"}
    # The answer: streamed from the Anthropic-type deployment that serves gemini-*.
    [answer] = upstream_calls(upstream, "/v1/messages", UPSTREAM_ANTHROPIC_KEY, agent_key)
    body = json.loads(answer["body"])
    assert body["stream"] is True and body["model"] == "claude-sonnet-4-5-20250929"
    assert "say hi to gemini" in json.dumps(body["messages"][-1])
    routes = {"/v1beta/models/gemini-3.5-flash-lite:generateContent", "/v1beta/models/gemini-3.8-flash:streamGenerateContent"}
    assert {line["route"] for line in access_log(agents_gateway, agent_key, routes)} == routes
    assert agent_key not in agents_gateway.log()


def test_gemini_cli_with_a_model_and_a_tool_call_on_an_openai_deployment(agents_gateway, agent_key, upstream, tmp_path):
    # The mock calls the first tool Gemini CLI offers, update_topic (it only sets a title), with
    # placeholder arguments; Gemini CLI runs it and sends its result back in the next request.
    run = run_gemini(tmp_path, agents_gateway.url, agent_key, "say hi to gpt", model="tools-chat")
    assert run.returncode == 0, run.explain()
    assert run.stdout.strip().endswith("Tool result received: Strategic Intent: mock"), run.explain()
    first, second = upstream_calls(upstream, "/v1/chat/completions", UPSTREAM_OPENAI_KEY, agent_key)  # -m: no routing call
    sent = json.loads(first["body"])
    assert sent["model"] == "gpt-4.1" and sent["stream"] is True and "reasoning_effort" not in sent
    assert "say hi to gpt" in json.dumps(sent["messages"])
    assert sent["tools"][0]["function"]["name"] == "update_topic"
    history = json.loads(second["body"])["messages"]
    [call] = [c for m in history if m["role"] == "assistant" for c in m.get("tool_calls") or []]
    [result] = [m for m in history if m["role"] == "tool"]
    assert call["function"]["name"] == "update_topic" and result["tool_call_id"] == call["id"]
    assert "mock" in json.dumps(result["content"])
    assert agent_key not in agents_gateway.log()
