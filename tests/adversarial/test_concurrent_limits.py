"""Issue 11.7: budgets and tokens-per-minute hold when requests run at once, and per-model
limits follow the model group that serves a request, not the client's spelling.

Reproduces the issue's figures against the real server, on one instance (SQLite) and on two
instances sharing PostgreSQL and Redis: a key with ``max_budget`` $0.0001 had 50 concurrent
streams admitted (and spent $0.90); ``tpm_limit=100`` admitted 20 concurrent 2,000-token
streams. One stream is started and kept running by a slow mock upstream (one event every
``EVENT_DELAY`` seconds); the others are sent while it runs. Prices are Anthropic's public
ones for Claude Sonnet 4.5: $3 per million input tokens, $15 per million output tokens.
"""

from __future__ import annotations

import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import httpx
import pytest

from keystile.testing.upstream import MockUpstreamThread
from tests.integration.harness import GatewayProcess
from tests.integration.test_scale_out import start_pair
from tests.services import create_database, drop_database

ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}
SONNET_INPUT, SONNET_OUTPUT = 3 / 1_000_000, 15 / 1_000_000  # USD per token, anthropic.com/pricing
TEXT_2000_TOKENS = "The quick brown fox jumps over the lazy dog. " * 178  # 8,010 characters: ~2,000 tokens
EVENT_DELAY = 0.6
"""Seconds between two events of the running stream: it lasts several seconds (8 gaps)."""


def config(upstream_url: str) -> str:
    return textwrap.dedent(
        f"""\
        models:
          - name: claude-sonnet-4-5
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {upstream_url}
            api_key: sk-upstream-test
          - name: "claude-*"
            provider: anthropic
            api_base: {upstream_url}
            api_key: sk-upstream-test
        spend:
          flush_interval: 0.2
        """
    )


@pytest.fixture(scope="module", params=["one instance, SQLite", "two instances, PostgreSQL + Redis"])
def gateways(request: pytest.FixtureRequest, upstream: MockUpstreamThread) -> Iterator[tuple[GatewayProcess, ...]]:
    """One gateway, or two sharing a database and Redis; requests alternate between them."""
    if request.param.startswith("one"):
        with GatewayProcess(config(upstream.url)) as gw:
            yield (gw,)
        return
    services = request.getfixturevalue("services")
    database = create_database(services.postgres, "ks_limits")
    pair = start_pair(config(upstream.url), database, services.redis)
    try:
        yield pair
    finally:
        for gw in pair:
            gw.stop()
        drop_database(services.postgres, database)


def messages(gw: GatewayProcess, key: str, model: str = "claude-sonnet-4-5", *, stream: bool = True, text: str = TEXT_2000_TOKENS) -> httpx.Response:
    body = {"model": model, "max_tokens": 1000, "stream": stream, "messages": [{"role": "user", "content": text}]}
    return httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": key, **ANTHROPIC_VERSION}, timeout=60)


def slow_streams(upstream: MockUpstreamThread) -> None:
    upstream.set_faults([{"match": {"path": "/v1/messages", "stream": True}, "action": {"type": "event_delay", "seconds": EVENT_DELAY}}])


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)


def burst(gws: tuple[GatewayProcess, ...], key: str, upstream: MockUpstreamThread, n: int) -> tuple[httpx.Response, list[httpx.Response]]:
    """Start one slow stream, then send ``n - 1`` more at once while it runs; (its answer, theirs).

    Fails unless the first was still streaming when the last of the others was answered.
    """
    slow_streams(upstream)
    first: list[httpx.Response] = []
    running = threading.Thread(target=lambda: first.append(messages(gws[0], key)))
    running.start()
    wait_for(lambda: len(upstream.requests()) >= 1)  # the upstream is streaming it
    with ThreadPoolExecutor(max_workers=n - 1) as pool:
        others = list(pool.map(lambda i: messages(gws[(i + 1) % len(gws)], key), range(n - 1)))
    overlapped = running.is_alive()
    running.join()
    admitted = [r.status_code for r in others].count(200)
    assert admitted == 0, f"{admitted + 1} of {n} concurrent streams were admitted"
    assert overlapped, "the first stream ended before the others were answered: they did not run at once"
    return first[0], others


def flushed_rows(gws: tuple[GatewayProcess, ...], key: str) -> list[dict]:
    """The key's spend-log rows once every instance has written what it holds."""
    rows: list[dict] = []
    for gw in gws:  # /spend/logs flushes the answering instance first
        rows = gw.admin("GET", "/spend/logs", params={"api_key": key}).json()
    return rows


def test_fifty_concurrent_streams_cannot_spend_a_tiny_budget_fifty_times(gateways, upstream):
    key = gateways[0].create_key(max_budget=0.0001)
    first, others = burst(gateways, key, upstream, 50)
    assert first.status_code == 200 and "message_stop" in first.text
    assert [r.status_code for r in others] == [429] * 49
    for refused in others:
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and refused.headers["retry-after"] == "1"
        assert error["message"].startswith("Budget fully reserved: the key has spent $0.0000 of its $0.0001 budget")
    assert len(upstream.requests()) == 1  # only the admitted stream reached the upstream

    served = [row for row in flushed_rows(gateways, key) if row["status"] == 200]
    assert len(served) == 1
    row = served[0]
    cost = row["input_tokens"] * SONNET_INPUT + row["output_tokens"] * SONNET_OUTPUT
    assert row["input_tokens"] > 1900 and row["spend"] == pytest.approx(cost)
    info = gateways[-1].admin("GET", "/key/info", params={"key": key}).json()["info"]
    assert info["spend"] == pytest.approx(cost)  # one request past the budget — the issue spent $0.90
    assert cost < 0.01
    # with the budget spent, the next request is refused as over budget (400), not held (429)
    after = messages(gateways[-1], key, stream=False)
    assert after.status_code == 400 and "Budget exceeded" in after.json()["error"]["message"]


def test_twenty_concurrent_2000_token_streams_cannot_share_a_100_tpm_limit(gateways, upstream):
    key = gateways[0].create_key(tpm_limit=100)
    first, others = burst(gateways, key, upstream, 20)
    assert first.status_code == 200 and "message_stop" in first.text
    assert [r.status_code for r in others] == [429] * 19
    for refused in others:
        assert "key tokens per minute limit (100)" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "1"  # held by a running request: it will end soon
        assert refused.headers["anthropic-ratelimit-tokens-remaining"] == "0"
    assert len(upstream.requests()) == 1
    # the stream has ended and reported its ~2,000 tokens: now the window itself is full for a minute
    refused = messages(gateways[-1], key, stream=False)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 30


def test_a_per_model_limit_follows_the_model_whatever_group_serves_it(gateways, upstream):
    key = gateways[0].create_key(model_rpm_limit={"claude-sonnet-4-5": 1})
    served = messages(gateways[0], key, stream=False, text="hi")
    assert served.status_code == 200 and served.headers["x-keystile-model-group"] == "claude-sonnet-4-5"
    # the issue: a dated snapshot, served by the claude-* pattern group, escaped the limit
    for spelling in ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-latest"):
        refused = messages(gateways[-1], key, spelling, stream=False, text="hi")
        assert refused.status_code == 429, spelling
        assert "key's 'claude-sonnet-4-5' requests per minute limit (1)" in refused.json()["error"]["message"]
    other = messages(gateways[-1], key, "claude-haiku-4-5", stream=False, text="hi")
    assert other.status_code == 200 and other.headers["x-keystile-model-group"] == "claude-*"
    assert len(upstream.requests()) == 2


def test_a_per_model_limit_on_a_pattern_group_counts_everything_it_serves(gateways, upstream):
    key = gateways[0].create_key(model_rpm_limit={"claude-*": 2})
    assert messages(gateways[0], key, "claude-haiku-4-5", stream=False, text="hi").status_code == 200
    assert messages(gateways[-1], key, "claude-opus-4-1", stream=False, text="hi").status_code == 200
    refused = messages(gateways[0], key, "claude-3-5-haiku-20241022", stream=False, text="hi")
    assert refused.status_code == 429 and "key's 'claude-*'" in refused.json()["error"]["message"]
    assert messages(gateways[-1], key, "claude-sonnet-4-5", stream=False, text="hi").status_code == 200  # another group
