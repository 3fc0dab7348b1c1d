"""Codex CLI 0.171 through keystile (issue 12): it speaks only the OpenAI Responses API.

To an OpenAI-type deployment with ``wire_api: responses`` the request is passed through; to an
Anthropic-type deployment it is translated Responses ⇄ Messages both ways, tool calls included.
Codex's WebSocket attempt (``GET /v1/responses`` with an upgrade) is refused at once with 426,
so Codex falls back to POST + SSE without waiting: its time to an answer through keystile is
measured against the same run straight to the mock upstream.
"""

from __future__ import annotations

import json
import statistics
import textwrap

from tests.agents.runners import MOCK_ANSWER, codex_config, run_codex, upstream_calls
from tests.integration.harness import UPSTREAM_ANTHROPIC_KEY, UPSTREAM_OPENAI_KEY


def test_codex_on_a_responses_deployment_is_passed_through(agents_gateway, agent_key, upstream, tmp_path):
    codex_config(tmp_path, f"{agents_gateway.url}/v1", "gpt-responses")
    run = run_codex(tmp_path, agent_key, "say hi to the responses upstream")
    assert run.returncode == 0, run.explain()
    assert run.stdout.strip() == f"{MOCK_ANSWER} say hi to the responses upstream", run.explain()
    [call] = upstream_calls(upstream, "/v1/responses", UPSTREAM_OPENAI_KEY, agent_key)
    sent = json.loads(call["body"])
    assert sent["model"] == "gpt-5" and sent["stream"] is True
    assert any(t.get("name") == "exec_command" for t in sent["tools"])  # Codex's own tools, untouched
    assert agent_key not in agents_gateway.log()


def test_codex_on_an_anthropic_deployment_is_translated(agents_gateway, agent_key, upstream, tmp_path):
    # With a reasoning effort Codex sends reasoning.effort but no max_output_tokens: thinking
    # must come on top of the answer's room (it once took all but one token of keystile's
    # default 4096, leaving Claude no room to answer).
    codex_config(tmp_path, f"{agents_gateway.url}/v1", "claude-sonnet", extra='model_reasoning_effort = "high"\n')
    run = run_codex(tmp_path, agent_key, "say hi to claude")
    assert run.returncode == 0, run.explain()
    assert run.stdout.startswith(MOCK_ANSWER), run.explain()
    [call] = upstream_calls(upstream, "/v1/messages", UPSTREAM_ANTHROPIC_KEY, agent_key)
    sent = json.loads(call["body"])
    assert sent["model"] == "claude-sonnet-4-5-20250929" and sent["stream"] is True
    assert "Codex" in json.dumps(sent["system"])  # Codex's instructions became the system prompt
    assert "say hi to claude" in json.dumps(sent["messages"][-1])
    assert "exec_command" in [t["name"] for t in sent["tools"]]
    assert sent["thinking"]["type"] == "enabled"
    assert sent["max_tokens"] - sent["thinking"]["budget_tokens"] >= 4096  # README: default_max_tokens 4096
    assert agent_key not in agents_gateway.log()


def test_a_codex_tool_call_round_trip_on_an_anthropic_deployment(agents_gateway, agent_key, upstream, tmp_path):
    # The mock calls the first tool offered, Codex's exec_command, with cmd "mock": a script of
    # the test's own, first on PATH, that only prints a marker. Codex runs it (read-only sandbox,
    # no login shell so PATH is kept) and sends its output back in the next request.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "mock").write_text("#!/bin/sh\necho keystile-tool-marker-51d2\n")
    (tools / "mock").chmod(0o755)
    codex_config(tmp_path, f"{agents_gateway.url}/v1", "claude-tools", extra="allow_login_shell = false\n")
    run = run_codex(tmp_path, agent_key, "run the tool", env={"PATH": f"{tools}:/usr/bin:/bin"})
    assert run.returncode == 0, run.explain()
    assert run.stdout.startswith("Tool result received:"), run.explain()  # the mock's answer to a tool result
    assert "keystile-tool-marker-51d2" in run.stderr  # Codex shows the command's output
    first, second = upstream_calls(upstream, "/v1/messages", UPSTREAM_ANTHROPIC_KEY, agent_key)
    assert "tool_result" not in first["body"]
    results = [b for b in json.loads(second["body"])["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert len(results) == 1 and "keystile-tool-marker-51d2" in json.dumps(results[0]["content"])
    calls = [
        b for m in json.loads(second["body"])["messages"] if m["role"] == "assistant" for b in m["content"] if b["type"] == "tool_use"
    ]
    assert [c["name"] for c in calls] == ["exec_command"] and calls[0]["id"] == results[0]["tool_use_id"]
    assert agent_key not in agents_gateway.log()


def test_the_websocket_attempt_costs_codex_no_time(agents_gateway, agent_key, upstream, tmp_path):
    """Codex with ``supports_websockets`` first asks ``GET /v1/responses`` for a WebSocket. keystile
    answers 426 at once (as the mock upstream does), so Codex's time to its answer through keystile
    stays close to its time straight to the mock, with the same provider config."""
    header = textwrap.dedent(
        """\
        [model_providers.gw.http_headers]
        x-mock-tools = "none"
        """
    )
    timings: dict[str, list[float]] = {"keystile": [], "direct": []}
    for attempt in range(3):
        for route, base_url, model, key in (
            ("keystile", f"{agents_gateway.url}/v1", "gpt-responses", agent_key),
            ("direct", f"{upstream.url}/v1", "gpt-5", "sk-straight-to-the-mock"),
        ):
            home = tmp_path / f"{route}-{attempt}"
            codex_config(home, base_url, model, websockets=True, provider=header)
            run = run_codex(home, key, "say hi")
            assert run.returncode == 0, f"{route}: {run.explain()}"
            assert run.stdout.strip() == f"{MOCK_ANSWER} say hi", f"{route}: {run.explain()}"
            assert "Responses WebSocket" in run.stderr, f"{route}: Codex did not try a WebSocket: {run.explain()}"
            timings[route].append(run.seconds)
    through, direct = statistics.median(timings["keystile"]), statistics.median(timings["direct"])
    print(
        f"\nCodex time to answer, median of 3 (WebSocket attempt, then POST + SSE): through keystile {through:.3f} s,"
        f" direct to the mock {direct:.3f} s, added {through - direct:+.3f} s;"
        f" runs: keystile {[round(t, 3) for t in timings['keystile']]}, direct {[round(t, 3) for t in timings['direct']]}"
    )
    assert through - direct < 2.0
    assert agent_key not in agents_gateway.log()
