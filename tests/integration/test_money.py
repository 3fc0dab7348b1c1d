"""Money and fairness through the real server: rate limits, budgets, spend, users and teams.

Most tests share one gateway process, started with ``KEYSTILE_TEST_CLOCK=1`` so budget
periods and rate-limit windows move with ``POST /keystile/test/clock`` instead of sleeps;
tests that need their own config or a restart start their own. Every expected cost is
computed from the shipped price table and the usage the mock upstream reported for the
exact request it received.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import threading
import time
from typing import Any, Iterator

import httpx
import orjson
import pytest

from keystile.accounting.pricing import cost_of, price_for
from keystile.accounting.usage import Usage, usage_from_anthropic, usage_from_openai
from keystile.providers import mock_replies
from keystile.server.app import REVISION_POLL_SECONDS
from keystile.testing.upstream import MockUpstreamThread
from tests.integration.harness import KEYSTILE, GatewayProcess, anthropic_body, openai_body, standard_config

ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}
# The upstream model ids behind the standard config's public names: what the price table is asked for.
UPSTREAM_MODEL = {"claude-test": "claude-sonnet-4-5-20250929", "gpt-test": "gpt-4o-2024-08-06"}
# A prompt long enough that its cost is far from float noise: ~2,500 input tokens.
LONG_TEXT = "The quick brown fox jumps over the lazy dog. " * 220

SPEND_SETTINGS = "spend:\n  flush_interval: 0.2\n"


@pytest.fixture(scope="module")
def gateway(upstream: MockUpstreamThread) -> Iterator[GatewayProcess]:
    gw = GatewayProcess(standard_config(upstream.url, extra=SPEND_SETTINGS), env={"KEYSTILE_TEST_CLOCK": "1"})
    with gw:
        yield gw


# --- helpers ------------------------------------------------------------------------------------


def messages(gw: GatewayProcess, key: str, body: dict | None = None, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/v1/messages",
        json=body or anthropic_body(),
        headers={"x-api-key": key, **ANTHROPIC_VERSION, **headers},
        timeout=30,
    )


def chat(gw: GatewayProcess, key: str, body: dict | None = None) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat/completions", json=body or openai_body(), headers={"authorization": f"Bearer {key}"}, timeout=30)


def key_info(gw: GatewayProcess, key: str) -> dict:
    response = gw.admin("GET", "/key/info", params={"key": key})
    assert response.status_code == 200, response.text
    return response.json()["info"]


def advance_clock(gw: GatewayProcess, seconds: float) -> None:
    response = gw.admin("POST", "/keystile/test/clock", json={"advance": seconds})
    assert response.status_code == 200, response.text


def spend_logs(gw: GatewayProcess, **params: Any) -> list[dict]:
    response = gw.admin("GET", "/spend/logs", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def upstream_usage(record: dict) -> Usage:
    """The usage the mock upstream reported for one recorded request (its replies are a pure function of the body)."""
    body = orjson.loads(record["body"])
    mode = dict(record["headers"]).get("x-mock-cache", "read")
    anthropic = record["path"] == "/v1/messages"
    if not body.get("stream"):
        if anthropic:
            return usage_from_anthropic(mock_replies.anthropic_message(body, cache_mode=mode)["usage"])
        return usage_from_openai(mock_replies.openai_completion(body, cache_mode=mode)["usage"])
    events = mock_replies.anthropic_stream(body, cache_mode=mode) if anthropic else mock_replies.openai_stream(body, cache_mode=mode)
    usage = Usage()
    for event in events:
        for line in event.split(b"\n"):
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            payload = orjson.loads(line[6:])
            if anthropic:
                reported = (payload.get("message") or payload).get("usage")
                if reported:  # message_start, then cumulative message_delta counts: the largest of each
                    new = usage_from_anthropic(reported)
                    usage = Usage(
                        input_tokens=max(usage.input_tokens, new.input_tokens),
                        output_tokens=max(usage.output_tokens, new.output_tokens),
                        cache_read_tokens=max(usage.cache_read_tokens, new.cache_read_tokens),
                        cache_write_tokens=max(usage.cache_write_tokens, new.cache_write_tokens),
                    )
            elif payload.get("usage"):
                usage = usage_from_openai(payload["usage"])
    return usage


def expected_cost(public_model: str, usage: Usage) -> float:
    price = price_for(UPSTREAM_MODEL[public_model])
    assert price is not None
    return cost_of(usage, price)


def read_stream(response: httpx.Response) -> str:
    return "".join(response.iter_text())


# --- rate limits --------------------------------------------------------------------------------


def test_rpm_limit_allows_exactly_n_then_429_with_retry_after_and_headers(gateway, upstream):
    key = gateway.create_key(rpm_limit=3)
    remaining = []
    for _ in range(3):
        response = messages(gateway, key)
        assert response.status_code == 200, response.text
        assert response.headers["anthropic-ratelimit-requests-limit"] == "3"
        assert "x-ratelimit-limit-requests" not in response.headers  # each client gets its own style
        remaining.append(int(response.headers["anthropic-ratelimit-requests-remaining"]))
    assert remaining == [2, 1, 0]

    refused = messages(gateway, key)
    assert refused.status_code == 429
    assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "rate_limit_error"
    assert "requests per minute limit (3)" in refused.json()["error"]["message"]
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert refused.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert refused.headers["x-ratelimit-limit-requests"] == "3"
    assert refused.headers["x-ratelimit-reset-requests"] == f"{retry_after}s"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", refused.headers["anthropic-ratelimit-requests-reset"])
    assert len(upstream.requests()) == 3  # the refusal never reached the upstream

    # OpenAI clients get the same refusal in their own shape.
    refused_openai = chat(gateway, key)
    assert refused_openai.status_code == 429
    assert refused_openai.json()["error"]["type"] == "rate_limit_error"
    assert refused_openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert "retry-after" in refused_openai.headers and refused_openai.headers["x-ratelimit-remaining-requests"] == "0"

    # The window slides with the gateway's clock: a minute later the key may call again.
    advance_clock(gateway, 61)
    assert messages(gateway, key).status_code == 200


def test_request_ids_name_log_rows_and_refusals_after_auth_are_logged(gateway, upstream):
    key = gateway.create_key(rpm_limit=1, key_alias="refusals")
    served = messages(gateway, key)
    refused = chat(gateway, key)
    unknown_model = messages(gateway, gateway.create_key(key_alias="lost"), anthropic_body(model="no-such-model"))
    anonymous = messages(gateway, "sk-not-a-key")
    assert (served.status_code, refused.status_code, unknown_model.status_code, anonymous.status_code) == (200, 429, 404, 401)
    ids = [r.headers["x-keystile-request-id"] for r in (served, refused, unknown_model)]
    assert len(set(ids)) == 3 and "x-keystile-request-id" not in anonymous.headers

    [row] = spend_logs(gateway, request_id=ids[0])
    assert (row["key_alias"], row["status"], row["deployment"]) == ("refusals", 200, "claude-test#0")
    assert row["spend"] > 0 and row["attempts"] == 1
    [row] = spend_logs(gateway, request_id=ids[1])
    assert (row["key_alias"], row["status"], row["model"], row["model_group"]) == ("refusals", 429, "gpt-test", "gpt-test")
    assert (row["spend"], row["deployment"], row["attempts"], row["input_tokens"]) == (0, None, 0, 0)
    [row] = spend_logs(gateway, request_id=ids[2])
    assert (row["key_alias"], row["status"], row["model"], row["model_group"]) == ("lost", 404, "no-such-model", None)
    assert spend_logs(gateway, request_id="no-such-id") == []
    assert key_info(gateway, key)["spend"] == pytest.approx(spend_logs(gateway, request_id=ids[0])[0]["spend"])


def store_calls(gw: GatewayProcess) -> dict[str, float]:
    text = httpx.get(f"{gw.url}/metrics", timeout=10).text
    found = re.findall(r'^keystile_store_calls_total\{kind="(\w+)"\} (\S+)$', text, flags=re.M)
    return {kind: float(value) for kind, value in found}


def test_limits_and_budgets_are_checked_without_a_database_round_trip(gateway, upstream):
    """A key with every limit and a budget: after its first request (which fills the key
    cache) a burst of requests reads nothing from the database; spend goes out in batches."""
    key = gateway.create_key(rpm_limit=1000, tpm_limit=10_000_000, max_parallel_requests=50, max_budget=100.0)
    assert messages(gateway, key).status_code == 200
    before = store_calls(gateway)
    started = time.monotonic()
    for i in range(40):
        response = messages(gateway, key) if i % 2 else chat(gateway, key)
        assert response.status_code == 200
    elapsed = time.monotonic() - started
    after = store_calls(gateway)
    reads = after.get("read", 0) - before.get("read", 0)
    writes = after.get("write", 0) - before.get("write", 0)
    # The only reads are the key-revision poll (one per REVISION_POLL_SECONDS), the only
    # writes the spend flushes (one per flush_interval, 0.2 s here): none per request.
    assert reads <= elapsed / REVISION_POLL_SECONDS + 2, (reads, elapsed)
    assert writes <= elapsed / 0.2 + 2, (writes, elapsed)
    assert reads + writes < 40


def test_tpm_limit_counts_tokens_the_upstream_reported(gateway, upstream):
    key = gateway.create_key(tpm_limit=50)
    first = messages(gateway, key, anthropic_body(text=LONG_TEXT))  # ~2,500 tokens: over the limit once counted
    assert first.status_code == 200
    assert first.headers["anthropic-ratelimit-tokens-limit"] == "50"
    # nothing was counted before this request, but its own worst case (~2,500 input tokens +
    # max_tokens) is held against the limit while it runs: no tokens remain for another one
    assert first.headers["anthropic-ratelimit-tokens-remaining"] == "0"
    refused = chat(gateway, key)
    assert refused.status_code == 429
    assert "tokens per minute limit (50)" in refused.json()["error"]["message"]
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert refused.headers["anthropic-ratelimit-tokens-remaining"] == "0"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(upstream.requests()) == 1


def test_per_model_limits_on_a_key(gateway):
    key = gateway.create_key(model_rpm_limit={"claude-test": 1}, model_tpm_limit={"gpt-test": 5})
    assert messages(gateway, key).status_code == 200
    refused = messages(gateway, key)
    assert refused.status_code == 429 and "'claude-test'" in refused.json()["error"]["message"]
    # Other models are not affected by claude-test's limit.
    assert chat(gateway, key, openai_body(text=LONG_TEXT)).status_code == 200
    refused = chat(gateway, key)
    assert refused.status_code == 429 and "'gpt-test'" in refused.json()["error"]["message"]
    assert messages(gateway, key, anthropic_body(model="gpt-test")).status_code == 429  # same model, other format
    assert chat(gateway, key, openai_body(model="azure-test")).status_code == 200


def test_max_parallel_requests_refuses_a_second_concurrent_stream(gateway, upstream):
    key = gateway.create_key(max_parallel_requests=1)
    upstream.set_faults([{"match": {"path": "/v1/messages"}, "action": {"type": "event_delay", "seconds": 0.2}}])
    first_open = threading.Event()
    result: dict[str, Any] = {}

    def first_stream() -> None:
        with httpx.stream(
            "POST", f"{gateway.url}/v1/messages", json=anthropic_body(stream=True),
            headers={"x-api-key": key, **ANTHROPIC_VERSION}, timeout=30,
        ) as response:
            result["status"] = response.status_code
            lines = response.iter_lines()
            for line in lines:
                if line.startswith("event: message_start"):
                    first_open.set()
                    break
            result["rest"] = "\n".join(lines)

    thread = threading.Thread(target=first_stream)
    thread.start()
    try:
        assert first_open.wait(10)
        second = messages(gateway, key, anthropic_body(stream=True))
        assert second.status_code == 429
        assert second.json()["error"]["type"] == "rate_limit_error"
        assert "parallel requests limit (1)" in second.json()["error"]["message"]
        assert second.headers["retry-after"] == "1"
        assert chat(gateway, key).status_code == 429  # the slot is the key's, whatever the format
    finally:
        thread.join(30)
    assert result["status"] == 200 and "message_stop" in result["rest"]
    upstream.clear_faults()
    assert messages(gateway, key).status_code == 200  # the slot came back when the stream ended


def test_team_and_user_rate_limits_are_shared_by_their_keys(gateway):
    team = gateway.admin("POST", "/team/new", json={"team_alias": "rl-team", "rpm_limit": 2}).json()
    a = gateway.create_key(team_id=team["team_id"])
    b = gateway.create_key(team_id=team["team_id"])
    assert messages(gateway, a).status_code == 200
    assert chat(gateway, b).status_code == 200
    refused = messages(gateway, b)
    assert refused.status_code == 429 and f"team '{team['team_id']}'" in refused.json()["error"]["message"]

    user = gateway.admin("POST", "/user/new", json={"user_id": "rl-user", "rpm_limit": 1}).json()
    other = gateway.create_key(user_id="rl-user")
    assert messages(gateway, user["key"]).status_code == 200
    refused = messages(gateway, other)
    assert refused.status_code == 429 and "user 'rl-user'" in refused.json()["error"]["message"]


# --- budgets ------------------------------------------------------------------------------------


def assert_budget_refusal(response: httpx.Response, anthropic: bool = True) -> str:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    if anthropic:
        assert response.json()["type"] == "error" and error["type"] == "invalid_request_error"
    else:
        assert error["type"] == "budget_exceeded" and error["code"] == "budget_exceeded"
    assert error["message"].startswith("Budget exceeded")
    assert "retry-after" not in response.headers  # retrying cannot help
    return error["message"]


def test_key_over_budget_is_refused_before_the_upstream(gateway, upstream):
    key = gateway.create_key(max_budget=0.001)
    assert messages(gateway, key, anthropic_body(text=LONG_TEXT)).status_code == 200  # ~$0.0075: passes the budget
    info = key_info(gateway, key)
    assert info["spend"] > 0.001 and info["remaining_budget"] == 0.0
    upstream.clear_requests()
    message = assert_budget_refusal(messages(gateway, key))
    assert "the key has spent $0.00" in message and "$0.0010 budget" in message
    assert_budget_refusal(chat(gateway, key), anthropic=False)
    assert_budget_refusal(messages(gateway, key, anthropic_body(stream=True)))
    assert upstream.requests() == []


def test_team_budget_stops_all_its_keys(gateway, upstream):
    team = gateway.admin("POST", "/team/new", json={"team_id": "budget-team", "max_budget": 0.001}).json()
    spender = gateway.create_key(team_id=team["team_id"])
    bystander = gateway.create_key(team_id=team["team_id"])
    outsider = gateway.create_key()
    assert messages(gateway, spender, anthropic_body(text=LONG_TEXT)).status_code == 200
    upstream.clear_requests()
    assert "team 'budget-team'" in assert_budget_refusal(messages(gateway, bystander))
    assert_budget_refusal(chat(gateway, spender), anthropic=False)
    assert upstream.requests() == []
    assert messages(gateway, outsider).status_code == 200
    info = gateway.admin("GET", "/team/info", params={"team_id": "budget-team"}).json()
    assert info["team_info"]["spend"] > 0.001 and info["team_info"]["remaining_budget"] == 0.0


def test_user_budget_stops_all_its_keys(gateway, upstream):
    user = gateway.admin("POST", "/user/new", json={"user_id": "budget-user", "max_budget": 0.001}).json()
    second = gateway.create_key(user_id="budget-user")
    assert chat(gateway, user["key"], openai_body(text=LONG_TEXT)).status_code == 200
    upstream.clear_requests()
    assert "user 'budget-user'" in assert_budget_refusal(messages(gateway, second))
    assert_budget_refusal(chat(gateway, user["key"]), anthropic=False)
    assert upstream.requests() == []
    info = gateway.admin("GET", "/user/info", params={"user_id": "budget-user"}).json()
    assert info["user_info"]["spend"] > 0.001 and info["user_info"]["remaining_budget"] == 0.0


def test_budget_resets_after_its_duration(gateway, upstream):
    team = gateway.admin("POST", "/team/new", json={"team_id": "daily-team", "max_budget": 0.001, "budget_duration": "1d"}).json()
    key = gateway.create_key(max_budget=0.001, budget_duration="1h", team_id=team["team_id"])
    first_reset = key_info(gateway, key)["budget_reset_at"]
    assert messages(gateway, key, anthropic_body(text=LONG_TEXT)).status_code == 200
    assert "the key has spent" in assert_budget_refusal(messages(gateway, key))

    advance_clock(gateway, 3601)  # the key's hour is over; the team's day is not
    assert "team 'daily-team'" in assert_budget_refusal(messages(gateway, key))
    info = key_info(gateway, key)
    assert info["spend"] == 0.0 and info["budget_reset_at"] > first_reset

    advance_clock(gateway, 86400)
    response = messages(gateway, key)
    assert response.status_code == 200
    cost = expected_cost("claude-test", upstream_usage(upstream.requests()[-1]))
    assert key_info(gateway, key)["spend"] == pytest.approx(cost, rel=1e-9, abs=1e-12)
    team_info = gateway.admin("GET", "/team/info", params={"team_id": "daily-team"}).json()["team_info"]
    assert team_info["spend"] == pytest.approx(cost, rel=1e-9, abs=1e-12)


def test_soft_budget_warns_in_a_header_and_the_log(gateway):
    key = gateway.create_key(soft_budget=0.001, key_alias="soft-budget-key")
    first = messages(gateway, key, anthropic_body(text=LONG_TEXT))
    assert first.status_code == 200 and "x-keystile-budget-warning" not in first.headers
    second = messages(gateway, key)
    assert second.status_code == 200
    assert "soft budget $0.0010 reached" in second.headers["x-keystile-budget-warning"]
    assert chat(gateway, key).headers["x-keystile-budget-warning"].startswith("key soft budget")
    assert wait_for(lambda: "passed its soft budget" in gateway.log())
    assert gateway.log().count("passed its soft budget") == 1  # logged once per period, not per request


# --- spend --------------------------------------------------------------------------------------

CACHED_SYSTEM = [{"type": "text", "text": LONG_TEXT, "cache_control": {"type": "ephemeral"}}]

SPEND_CASES = [
    # (client path, public model, stream): same format, both directions of translation
    ("/v1/messages", "claude-test", False),
    ("/v1/messages", "claude-test", True),
    ("/v1/chat/completions", "gpt-test", False),
    ("/v1/chat/completions", "gpt-test", True),
    ("/v1/chat/completions", "claude-test", False),
    ("/v1/chat/completions", "claude-test", True),
    ("/v1/messages", "gpt-test", False),
    ("/v1/messages", "gpt-test", True),
]


@pytest.mark.parametrize("path,model,stream", SPEND_CASES)
def test_spend_is_the_price_table_times_the_upstream_usage(gateway, upstream, path, model, stream):
    key = gateway.create_key(key_alias=f"spend-{path.rsplit('/', 1)[-1]}-{model}-{stream}")
    if path == "/v1/messages":
        body = anthropic_body(model=model, text="Count the cost", system=CACHED_SYSTEM, stream=stream)
        response = messages(gateway, key, body)
    else:
        body = openai_body(model=model, text=LONG_TEXT, stream=stream)
        response = chat(gateway, key, body)
    assert response.status_code == 200, response.text
    if stream:
        assert "error" not in response.text
    [sent] = upstream.requests()
    usage = upstream_usage(sent)
    assert usage.input_tokens + usage.cache_read_tokens > 100 and usage.output_tokens > 0
    if path == "/v1/messages" and model == "claude-test":
        assert usage.cache_read_tokens > 0  # the cached system prompt is priced at the cache-read rate
    cost = expected_cost(model, usage)

    info = key_info(gateway, key)
    assert info["spend"] == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert round(info["spend"], 2) == round(cost, 2)
    [row] = wait_for(lambda: spend_logs(gateway, api_key=key))
    assert row["spend"] == pytest.approx(cost, rel=1e-9, abs=1e-12)
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        usage.input_tokens, usage.output_tokens, usage.cache_read_tokens, usage.cache_write_tokens,
    )
    assert row["model"] == model and row["stream"] is stream and row["status"] == 200
    assert row["deployment"] == f"{model}#0" and row["key_alias"] == info["key_alias"]
    assert row["request"] is None and row["response"] is None  # no content unless spend.log_content


def test_embeddings_are_charged_at_the_input_price(gateway, upstream):
    key = gateway.create_key()
    response = httpx.post(
        f"{gateway.url}/v1/embeddings", json={"model": "embed-test", "input": LONG_TEXT}, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200
    tokens = mock_replies.openai_embeddings(orjson.loads(upstream.requests()[-1]["body"]))["usage"]["prompt_tokens"]
    assert tokens > 100
    expected = cost_of(Usage(input_tokens=tokens), price_for("text-embedding-3-small"))
    assert key_info(gateway, key)["spend"] == pytest.approx(expected, rel=1e-9)


def test_price_overrides_base_model_and_content_logging(upstream, tmp_path):
    config = standard_config(
        upstream.url,
        extra_models=f"""\
        - name: priced
          provider: anthropic
          model: claude-sonnet-4-5-20250929
          api_base: {upstream.url}
          api_key: x
          input_cost_per_token: 0.001
          output_cost_per_token: 0.002
        - name: azure-priced
          provider: azure
          model: my-gpt4o-deployment
          api_base: {upstream.url}
          api_key: x
          base_model: azure/gpt-4o
        """,
        extra="spend:\n  log_content: true\n",
    )
    with GatewayProcess(config, workdir=tmp_path) as gw:
        # A per-deployment price (LiteLLM's *_cost_per_token) wins over the table; what it leaves out comes from the table.
        overridden = gw.create_key()
        assert messages(gw, overridden, anthropic_body(model="priced", text="price me", system=CACHED_SYSTEM)).status_code == 200
        usage = upstream_usage(upstream.requests()[-1])
        assert usage.cache_read_tokens > 0
        table = price_for("claude-sonnet-4-5-20250929")
        expected = usage.input_tokens * 0.001 + usage.output_tokens * 0.002 + usage.cache_read_tokens * table.cache_read
        assert key_info(gw, overridden)["spend"] == pytest.approx(expected, rel=1e-9)

        # An Azure deployment is named freely; base_model says whose price applies.
        key = gw.create_key()
        response = chat(gw, key, openai_body(model="azure-priced", text="remember this sentence"))
        assert response.status_code == 200
        expected = cost_of(upstream_usage(upstream.requests()[-1]), price_for("gpt-4o"))
        assert expected > 0 and key_info(gw, key)["spend"] == pytest.approx(expected, rel=1e-9)
        # spend.log_content keeps the prompt and the completion in the spend log (off by default).
        [row] = spend_logs(gw, api_key=key)
        assert "remember this sentence" in row["request"]
        assert row["response"] == response.text
        assert chat(gw, key, openai_body(model="azure-test")).status_code == 200  # no base_model: unpriced, and said so
        assert wait_for(lambda: "no price known for model 'my-gpt4o-deployment'" in gw.log())


def test_a_prices_file_replaces_the_shipped_table(upstream, tmp_path):
    prices = tmp_path / "prices.json"
    # USD per million tokens, as in the shipped prices.json; deliberately unlike any real price.
    prices.write_text('{"models": {"claude-sonnet-4-5-20250929": {"input": 1000, "output": 3000, "cache_write": 0, "cache_read": 0}}}')
    config = standard_config(upstream.url, extra=f"spend:\n  prices_file: {prices}\n")
    with GatewayProcess(config, workdir=tmp_path) as gw:
        key = gw.create_key()
        assert messages(gw, key, anthropic_body(text="price me from the file")).status_code == 200
        usage = upstream_usage(upstream.requests()[-1])
        expected = usage.input_tokens * 0.001 + usage.output_tokens * 0.003
        assert expected > 0 and key_info(gw, key)["spend"] == pytest.approx(expected, rel=1e-9)
    # A table keystile cannot read is a config problem with file:line, before anything starts.
    prices.write_text('{"models": {"claude-sonnet-4-5-20250929": {"input": "a lot"}}}')
    checked = subprocess.run([KEYSTILE, "config", "check", str(gw.config_path)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 1
    assert re.search(r"keystile\.yaml:\d+: spend\.prices_file: cannot read this price table: .*claude-sonnet-4-5-20250929", checked.stdout), checked.stdout


# --- streams cut short --------------------------------------------------------------------------

CUT_CASES = [
    ("/v1/messages", "claude-test"),  # Anthropic upstream: input known from message_start
    ("/v1/chat/completions", "gpt-test"),  # OpenAI upstream: usage only at the end, so input is estimated
    ("/v1/chat/completions", "claude-test"),
    ("/v1/messages", "gpt-test"),
]


def stream_request(gw: GatewayProcess, key: str, path: str, model: str) -> tuple[str, dict, dict]:
    if path == "/v1/messages":
        return f"{gw.url}{path}", anthropic_body(model=model, text=LONG_TEXT, stream=True), {"x-api-key": key, **ANTHROPIC_VERSION}
    return f"{gw.url}{path}", openai_body(model=model, text=LONG_TEXT, stream=True), {"authorization": f"Bearer {key}"}


def is_content_line(line: str) -> bool:
    return line == "event: content_block_delta" or ('"content":"' in line and '"content":""' not in line)


def assert_charged_for_what_was_used(gateway, upstream, key: str, model: str, status: int, min_output: int) -> None:
    [row] = wait_for(lambda: spend_logs(gateway, api_key=key), timeout=10)
    assert row["status"] == status
    full = upstream_usage(upstream.requests()[-1])  # what the upstream would have reported at the end
    if upstream.requests()[-1]["path"] == "/v1/messages":  # Anthropic reported its input up front: exact
        assert (row["input_tokens"], row["cache_read_tokens"]) == (full.input_tokens, full.cache_read_tokens)
    else:  # estimated from the request body (±25%)
        assert 0.75 * full.prompt_tokens <= row["input_tokens"] <= 1.25 * full.prompt_tokens
    assert min_output <= row["output_tokens"] <= full.output_tokens
    charged = Usage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"])
    assert row["spend"] > 0 and row["spend"] == pytest.approx(expected_cost(model, charged), rel=1e-9)
    assert key_info(gateway, key)["spend"] == pytest.approx(row["spend"], rel=1e-9)


@pytest.mark.parametrize("path,model", CUT_CASES)
def test_stream_cut_off_by_the_client_is_charged_for_what_was_used(gateway, upstream, path, model):
    key = gateway.create_key()
    upstream.set_faults([{"match": {"stream": True}, "action": {"type": "event_delay", "seconds": 0.25}}])
    url, body, headers = stream_request(gateway, key, path, model)
    seen = 0
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", url, json=body, headers=headers) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                if is_content_line(line):
                    seen += 1
                    break  # hang up mid-stream
    assert seen == 1
    assert_charged_for_what_was_used(gateway, upstream, key, model, 499, min_output=1)


@pytest.mark.parametrize("path,model", CUT_CASES)
def test_stream_cut_off_by_the_upstream_is_charged_for_what_was_used(gateway, upstream, path, model):
    key = gateway.create_key()
    upstream.set_faults([{"match": {"stream": True}, "action": {"type": "reset_after_events", "events": 5}}])
    url, body, headers = stream_request(gateway, key, path, model)
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        text = read_stream(response)
    assert response.status_code == 200 and "error" in text  # the client is told in-band
    delivered = sum(is_content_line(line) for line in text.splitlines())
    assert delivered >= 1
    assert_charged_for_what_was_used(gateway, upstream, key, model, 502, min_output=delivered)


# --- spend is never lost ------------------------------------------------------------------------


def test_sigterm_right_after_a_burst_loses_no_spend(upstream, tmp_path):
    # A flush interval far longer than the test: only the shutdown flush can write anything.
    config = standard_config(upstream.url, extra="spend:\n  flush_interval: 3600\n")
    first = GatewayProcess(config, workdir=tmp_path).start()
    try:
        first.admin("POST", "/team/new", json={"team_id": "burst-team"})
        user = first.admin("POST", "/user/new", json={"user_id": "burst-user", "auto_create_key": False}).json()
        assert "key" not in user
        key = first.create_key(user_id="burst-user", team_id="burst-team")
        bodies = []
        for i in range(30):
            stream = i % 3 == 0
            if i % 2:
                bodies.append(("/v1/messages", anthropic_body(text=f"burst {i} " + LONG_TEXT[: 40 * i], stream=stream)))
            else:
                bodies.append(("/v1/chat/completions", openai_body(model="claude-test" if i % 4 else "gpt-test", text=f"burst {i}", stream=stream)))

        def send(item: tuple[str, dict]) -> int:
            path, body = item
            headers = {"x-api-key": key, **ANTHROPIC_VERSION} if path == "/v1/messages" else {"authorization": f"Bearer {key}"}
            return httpx.post(f"{first.url}{path}", json=body, headers=headers, timeout=30).status_code

        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(send, bodies)) == [200] * len(bodies)
        sent = upstream.requests()
        assert len(sent) == len(bodies)
        expected = sum(
            expected_cost("claude-test" if r["path"] == "/v1/messages" else "gpt-test", upstream_usage(r)) for r in sent
        )
        assert key_info(first, key)["spend"] == pytest.approx(expected, rel=1e-9)  # known in memory, not yet written
    finally:
        assert first.stop(signal.SIGTERM) == 0
    assert "could not write" not in first.log()

    with GatewayProcess(config, workdir=tmp_path) as second:  # same database, fresh process: only what was written
        assert key_info(second, key)["spend"] == pytest.approx(expected, rel=1e-9)
        user_info = second.admin("GET", "/user/info", params={"user_id": "burst-user"}).json()["user_info"]
        team_info = second.admin("GET", "/team/info", params={"team_id": "burst-team"}).json()["team_info"]
        assert user_info["spend"] == pytest.approx(expected, rel=1e-9)
        assert team_info["spend"] == pytest.approx(expected, rel=1e-9)
        rows = spend_logs(second, api_key=key)
        assert len(rows) == len(bodies)
        assert sum(row["spend"] for row in rows) == pytest.approx(expected, rel=1e-9)


def test_admin_changes_keep_spend_not_yet_written(upstream, tmp_path):
    """Budget edits and key rotation between two flushes must neither lose nor resurrect spend."""
    config = standard_config(upstream.url, extra="spend:\n  flush_interval: 3600\n")
    with GatewayProcess(config, workdir=tmp_path) as gw:
        period_key = gw.create_key(max_budget=10)
        rotated = gw.create_key(max_budget=10, key_alias="rotated")
        zeroed = gw.create_key(max_budget=10)
        costs = {}
        for name, key in (("period", period_key), ("rotated", rotated), ("zeroed", zeroed)):
            assert messages(gw, key, anthropic_body(text=f"{name} " + LONG_TEXT)).status_code == 200
            costs[name] = expected_cost("claude-test", upstream_usage(upstream.requests()[-1]))
        changed = gw.admin("POST", "/key/update", json={"key": period_key, "budget_duration": "1d"}).json()
        assert changed["spend"] == pytest.approx(costs["period"], rel=1e-9) and changed["budget_reset_at"] is not None
        new_key = gw.admin("POST", "/key/regenerate", json={"key": rotated}).json()["key"]
        assert key_info(gw, new_key)["spend"] == pytest.approx(costs["rotated"], rel=1e-9)
        assert gw.admin("POST", "/key/update", json={"key": zeroed, "spend": 0}).json()["spend"] == 0
    with GatewayProcess(config, workdir=tmp_path) as gw:  # what reached the store
        assert key_info(gw, period_key)["spend"] == pytest.approx(costs["period"], rel=1e-9)
        assert key_info(gw, new_key)["spend"] == pytest.approx(costs["rotated"], rel=1e-9)
        # the log follows the key (its stable id), named by its current secret or the one it had
        assert len(spend_logs(gw, api_key=new_key)) == 1 and spend_logs(gw, api_key=rotated) == spend_logs(gw, api_key=new_key)
        assert key_info(gw, zeroed)["spend"] == 0
        assert len(spend_logs(gw, api_key=zeroed)) == 1  # the log keeps the request; only the total was reset


# --- reading spend back: /spend/logs and `keystile spend report` --------------------------------


def parse_table(output: str) -> tuple[dict[str, list[str]], str]:
    """The CLI's table as {first column: other columns}, and its total line."""
    lines = output.strip().splitlines()
    assert set(lines[1].replace(" ", "")) == {"-"}
    rows = {}
    for line in lines[2:]:
        if not line.strip():
            break
        cells = re.split(r"\s{2,}", line.strip())
        rows[cells[0]] = cells[1:]
    return rows, lines[-1]


def test_sigterm_cuts_off_a_stream_past_the_grace_period_and_still_charges_it(upstream, tmp_path):
    config = standard_config(upstream.url, extra="server:\n  graceful_shutdown: 1s\nspend:\n  flush_interval: 3600\n")
    gw = GatewayProcess(config, workdir=tmp_path).start()
    key = gw.create_key()
    upstream.set_faults([{"match": {"stream": True}, "action": {"type": "event_delay", "seconds": 0.5}}])  # ~5 s per stream
    lines: list[str] = []

    def read() -> None:
        body = anthropic_body(text="cut me off at shutdown", stream=True)
        with httpx.stream("POST", f"{gw.url}/v1/messages", json=body, headers={"x-api-key": key, **ANTHROPIC_VERSION}, timeout=30) as response:
            lines.extend(response.iter_lines())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        assert wait_for(lambda: any(line == "event: content_block_delta" for line in lines), timeout=10)
    finally:
        started = time.monotonic()
        code = gw.stop(signal.SIGTERM)
        stopped_in = time.monotonic() - started
        reader.join(15)
    assert code == 0 and stopped_in < 8, (code, stopped_in)  # the 1 s grace, not the stream's 5 s
    text = "\n".join(lines)
    assert "event: error" in text and "shutting down" in text, text[-600:]  # told in-band, not silently truncated
    with GatewayProcess(config, workdir=tmp_path) as again:
        [row] = spend_logs(again, api_key=key)
    assert row["status"] == 503 and row["input_tokens"] > 0 and row["output_tokens"] >= 1 and row["spend"] > 0


def test_spend_logs_filters_and_the_cli_report(upstream, tmp_path):
    with GatewayProcess(standard_config(upstream.url), workdir=tmp_path) as gw:
        for team in ("alpha", "beta"):
            gw.admin("POST", "/team/new", json={"team_id": team})
        for user in ("ann", "bob"):
            gw.admin("POST", "/user/new", json={"user_id": user, "auto_create_key": False})
        keys = {
            "ann-alpha": (gw.create_key(key_alias="ann-alpha", user_id="ann", team_id="alpha"), "ann", "alpha"),
            "bob-alpha": (gw.create_key(key_alias="bob-alpha", user_id="bob", team_id="alpha"), "bob", "alpha"),
            "bob-beta": (gw.create_key(key_alias="bob-beta", user_id="bob", team_id="beta"), "bob", "beta"),
            "loner": (gw.create_key(key_alias="loner"), None, None),
        }
        early = [("ann-alpha", "claude-test"), ("ann-alpha", "gpt-test"), ("bob-alpha", "claude-test")]
        late = [("bob-beta", "gpt-test"), ("bob-beta", "gpt-test"), ("loner", "claude-test")]
        sent = []
        for batch in (early, late):
            for alias, model in batch:
                key = keys[alias][0]
                response = chat(gw, key, openai_body(model=model, text=f"{alias} asks {model}")) if model == "gpt-test" else messages(gw, key, anthropic_body(model=model, text=alias))
                assert response.status_code == 200
                sent.append((alias, model, expected_cost(model, upstream_usage(upstream.requests()[-1]))))
            if batch is early:
                time.sleep(0.05)
                middle = time.time()
                time.sleep(0.05)

        everything = spend_logs(gw)
        assert len(everything) == 6 and all(row["request"] is None and row["response"] is None for row in everything)
        assert [row["ts"] for row in everything] == sorted((row["ts"] for row in everything), reverse=True)  # newest first

        def count(**params: Any) -> int:
            return len(spend_logs(gw, **params))

        ann_key = keys["ann-alpha"][0]
        assert count(api_key=ann_key) == 2
        assert count(api_key=hashlib.sha256(keys["bob-beta"][0].encode()).hexdigest()) == 2  # the hash works too
        assert count(user_id="bob") == 3 and count(user_id="ann") == 2
        assert count(team_id="alpha") == 3 and count(team_id="beta") == 2
        assert count(model="gpt-test") == 3 and count(model="claude-test") == 3
        assert count(user_id="bob", model="gpt-test") == 2
        assert count(start_date=middle) == 3 and count(end_date=middle) == 3
        assert count(start_date=middle, team_id="alpha") == 0
        assert count(start_date="2000-01-01") == 6 and count(end_date="2000-01-01T00:00:00Z") == 0
        assert count(limit=2) == 2
        bad = gw.admin("GET", "/spend/logs", params={"start_date": "last tuesday"})
        assert bad.status_code == 400 and "start_date" in bad.json()["error"]["message"]
        [row] = spend_logs(gw, api_key=keys["loner"][0])
        assert (row["key_alias"], row["user"], row["team_id"], row["model"]) == ("loner", None, None, "claude-test")
        assert row["api_key"] == hashlib.sha256(keys["loner"][0].encode()).hexdigest()
        # A refusal after authentication is logged (cost 0) but left out of the report below.
        assert messages(gw, keys["loner"][0], anthropic_body(model="unserved")).status_code == 404
        assert [row["status"] for row in spend_logs(gw, api_key=keys["loner"][0])] == [404, 200]

        # `keystile spend report` reads the same database; the reports run side by side.
        env = {**os.environ, "KEYSTILE_DATABASE_URL": gw.env["KEYSTILE_DATABASE_URL"]}

        def report(*args: str) -> subprocess.Popen:
            return subprocess.Popen(
                [KEYSTILE, "spend", "report", "--config", str(gw.config_path), *args],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            )

        def table(process: subprocess.Popen) -> tuple[dict[str, list[str]], str]:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            return parse_table(out)

        def hashed(alias: str) -> str:
            return hashlib.sha256(keys[alias][0].encode()).hexdigest()

        groupings = {
            "user": lambda alias, model: keys[alias][1],
            "team": lambda alias, model: keys[alias][2],
            "model": lambda alias, model: model,
            "key": lambda alias, model: f"{alias} ({hashed(alias)[:12]})",
        }
        running = {by: report("--by", by) for by in groupings}
        since = report("--by", "team", "--since", "1h")
        bad_since = report("--since", "soon")

        grand_total = sum(cost for _, _, cost in sent)
        for by, group_of in groupings.items():
            rows, total_line = table(running[by])
            expected: dict[str, tuple[int, float]] = {}
            for alias, model, cost in sent:
                group = group_of(alias, model) or "-"
                n, total = expected.get(group, (0, 0.0))
                expected[group] = (n + 1, total + cost)
            assert set(rows) == set(expected), (by, rows)
            for group, (n, cost) in expected.items():
                requests, tokens_in, tokens_out, printed_cost = rows[group]
                assert int(requests) == n and int(tokens_in) > 0 and int(tokens_out) > 0
                assert printed_cost == f"{cost:.6f}"
            assert total_line == f"total: ${grand_total:.6f}"
            costs = [float(cells[3]) for cells in rows.values()]
            assert costs == sorted(costs, reverse=True)  # most expensive first

        assert table(since)[1] == f"total: ${grand_total:.6f} since 1h ago"
        _, err = bad_since.communicate(timeout=60)
        assert bad_since.returncode == 2 and "--since" in err


def test_spend_report_since_leaves_out_older_requests(upstream, tmp_path):
    with GatewayProcess(standard_config(upstream.url), workdir=tmp_path) as gw:
        key = gw.create_key(key_alias="then-and-now")
        for _ in range(3):
            assert messages(gw, key).status_code == 200
        rows = spend_logs(gw, api_key=key)  # (flushes first)
    assert len(rows) == 3
    # Two of the three requests are moved two hours back: the report reads only the database.
    with sqlite3.connect(tmp_path / "keystile.db") as db:
        db.executemany("UPDATE spend_logs SET ts = ts - 7200 WHERE request_id = ?", [(row["request_id"],) for row in rows[:2]])
    env = {**os.environ, "KEYSTILE_DATABASE_URL": gw.env["KEYSTILE_DATABASE_URL"]}
    for since, requests in (("1h", 1), ("3h", 3)):
        out = subprocess.run([KEYSTILE, "spend", "report", "--by", "key", "--since", since], capture_output=True, text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        table, total = parse_table(out.stdout)
        [(name, cells)] = table.items()
        assert name.startswith("then-and-now") and int(cells[0]) == requests
        assert total.endswith(f"since {since} ago")


# --- users and teams, LiteLLM-shaped --------------------------------------------------------------


def test_user_crud_like_litellm(gateway):
    created = gateway.admin(
        "POST",
        "/user/new",
        json={
            "user_id": "crud-user", "user_email": "crud@example.com", "user_alias": "Crud", "models": ["claude-test"],
            "max_budget": 5, "budget_duration": "30d", "rpm_limit": 100,
        },
    ).json()
    assert created["user_id"] == "crud-user" and created["user_email"] == "crud@example.com"
    assert created["max_budget"] == 5 and created["budget_reset_at"] is not None and created["teams"] == []
    key = created["key"]  # LiteLLM creates a key for a new user unless told not to
    assert key.startswith("sk-") and created["token"] == hashlib.sha256(key.encode()).hexdigest()
    assert messages(gateway, key).status_code == 200
    assert chat(gateway, key).status_code == 403  # the user's model list applies to the user's keys
    assert gateway.admin("POST", "/user/new", json={"user_id": "crud-user"}).status_code == 400
    generated = gateway.admin("POST", "/user/new", json={"auto_create_key": False}).json()
    assert re.fullmatch(r"[0-9a-f-]{36}", generated["user_id"]) and "key" not in generated
    assert gateway.admin("POST", "/user/new", json={"teams": ["no-such-team"]}).status_code == 400

    info = gateway.admin("GET", "/user/info", params={"user_id": "crud-user"}).json()
    assert info["user_id"] == "crud-user"
    assert info["user_info"]["spend"] > 0 and info["user_info"]["remaining_budget"] == pytest.approx(5 - info["user_info"]["spend"])
    assert [k["token"] for k in info["keys"]] == [created["token"]] and info["teams"] == []
    assert key not in str(info)

    updated = gateway.admin("POST", "/user/update", json={"user_id": "crud-user", "max_budget": 0.000001}).json()
    assert updated["max_budget"] == 0.000001
    assert_budget_refusal(messages(gateway, key))  # effective on the next request
    gateway.admin("POST", "/user/update", json={"user_id": "crud-user", "max_budget": None, "spend": 0})
    refreshed = gateway.admin("GET", "/user/info", params={"user_id": "crud-user"}).json()["user_info"]
    assert refreshed["spend"] == 0 and refreshed["max_budget"] is None
    assert messages(gateway, key).status_code == 200

    listed = gateway.admin("GET", "/user/list", params={"page_size": 1000}).json()
    assert "crud-user" in [u["user_id"] for u in listed["users"]]
    assert len(gateway.admin("GET", "/user/list", params={"page_size": 1}).json()["users"]) == 1

    assert gateway.admin("POST", "/user/delete", json={"user_ids": ["crud-user"]}).json() == {"deleted_users": ["crud-user"]}
    assert messages(gateway, key).status_code == 401  # a deleted user's keys go with it
    assert gateway.admin("GET", "/user/info", params={"user_id": "crud-user"}).status_code == 404
    assert gateway.admin("POST", "/user/delete", json={"user_ids": ["crud-user"]}).status_code == 404
    assert gateway.admin("POST", "/user/update", json={"user_id": "crud-user", "max_budget": 1}).status_code == 404


def test_team_crud_and_membership_like_litellm(gateway):
    team = gateway.admin(
        "POST",
        "/team/new",
        json={"team_alias": "Research", "models": ["gpt-test"], "max_budget": 10, "members_with_roles": [{"user_id": "t-ann", "role": "admin"}]},
    ).json()
    team_id = team["team_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", team_id) and team["members"] == ["t-ann"] and team["team_alias"] == "Research"
    ann = gateway.admin("GET", "/user/info", params={"user_id": "t-ann"}).json()  # a new member becomes a user
    assert ann["user_info"]["teams"] == [team_id] and [t["team_id"] for t in ann["teams"]] == [team_id]

    key = gateway.create_key(team_id=team_id)
    assert chat(gateway, key).status_code == 200
    assert messages(gateway, key).status_code == 403  # the team's model list applies to its keys

    added = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": {"user_id": "t-bob", "role": "user"}}).json()
    assert added["members"] == ["t-ann", "t-bob"]
    added = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": [{"user_id": "t-cy"}, {"user_id": "t-dee"}]}).json()
    assert added["members"] == ["t-ann", "t-bob", "t-cy", "t-dee"]
    bad_member = gateway.admin("POST", "/team/member_add", json={"team_id": team_id, "member": {"role": "user"}})
    assert bad_member.status_code == 400
    removed = gateway.admin("POST", "/team/member_delete", json={"team_id": team_id, "user_id": "t-bob"}).json()
    assert removed["members"] == ["t-ann", "t-cy", "t-dee"]
    assert gateway.admin("POST", "/team/member_delete", json={"team_id": team_id, "user_id": "t-bob"}).status_code == 404

    gateway.admin("POST", "/team/update", json={"team_id": team_id, "models": [], "team_alias": "Research 2"})
    assert messages(gateway, key).status_code == 200  # effective on the next request

    info = gateway.admin("GET", "/team/info", params={"team_id": team_id}).json()
    assert info["team_info"]["team_alias"] == "Research 2" and info["team_info"]["spend"] > 0
    assert info["team_info"]["remaining_budget"] == pytest.approx(10 - info["team_info"]["spend"])
    assert [k["token"] for k in info["keys"]] == [hashlib.sha256(key.encode()).hexdigest()]
    assert team_id in [t["team_id"] for t in gateway.admin("GET", "/team/list").json()]

    gateway.admin("POST", "/team/block", json={"team_id": team_id})
    assert messages(gateway, key).status_code == 401
    gateway.admin("POST", "/team/unblock", json={"team_id": team_id})
    assert messages(gateway, key).status_code == 200

    assert gateway.admin("POST", "/team/delete", json={"team_ids": [team_id]}).json() == {"deleted_teams": [team_id]}
    assert messages(gateway, key).status_code == 401  # LiteLLM deletes a team's keys with it
    assert gateway.admin("GET", "/team/info", params={"team_id": team_id}).status_code == 404
    assert gateway.admin("GET", "/user/info", params={"user_id": "t-ann"}).json()["teams"] == []
    assert gateway.admin("POST", "/team/delete", json={"team_ids": [team_id]}).status_code == 404


def test_keys_inherit_the_limits_of_their_user_and_team(gateway):
    gateway.admin("POST", "/team/new", json={"team_id": "inherit-team", "max_parallel_requests": 5, "tpm_limit": 1_000_000})
    gateway.admin("POST", "/user/new", json={"user_id": "inherit-user", "rpm_limit": 2, "auto_create_key": False})
    key = gateway.create_key(user_id="inherit-user", team_id="inherit-team", rpm_limit=100)
    first = messages(gateway, key)
    # The tightest request limit is the one reported.
    assert first.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert first.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert first.headers["anthropic-ratelimit-tokens-limit"] == "1000000"
    assert messages(gateway, key).status_code == 200
    refused = messages(gateway, key)
    assert refused.status_code == 429 and "user 'inherit-user'" in refused.json()["error"]["message"]
