"""Issue 11.8: one key's own overrides cannot degrade a deployment for everyone, nor make the
upstream work for free.

The issue: two requests with ``x-keystile-timeout: 0.001`` and ``x-keystile-max-retries: 5`` put
both deployments of a group into cooldown and caused 6 upstream calls each, charged $0. Here
the upstream answers that group only after 2 s, so every attempt at 1 ms times out after the
upstream has the request. Prices are Anthropic's public ones: Claude Sonnet 4.5 $3 per million
input tokens. The charge for an attempt that timed out is the request's estimated input: by
``count_tokens``' documented rule, 400 characters of text in one message are 400 / 4 + 4 = 104
tokens.
"""

from __future__ import annotations

import textwrap
import time
from typing import Any, Callable, Iterator

import httpx
import pytest

from keystile.testing.upstream import MockUpstreamThread
from tests.integration.harness import GatewayProcess

ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}
SONNET_INPUT = 3 / 1_000_000  # USD per input token, anthropic.com/pricing
TEXT = "x" * 400
ESTIMATED_INPUT = 104
"""Tokens ``TEXT`` is estimated at (see the module docstring)."""


def config(up: str) -> str:
    return textwrap.dedent(
        f"""\
        models:
          - name: pair
            id: pair-1
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {up}
            api_key: k
            timeout: 30s
          - name: pair
            id: pair-2
            provider: anthropic
            model: claude-sonnet-4-5-20250929
            api_base: {up}
            api_key: k
            timeout: 30s
          - name: flaky
            id: flaky-1
            provider: anthropic
            model: claude-haiku-4-5
            api_base: {up}
            api_key: k
          - name: slow
            id: slow-1
            provider: anthropic
            model: claude-opus-4-1
            api_base: {up}
            api_key: k
            timeout: 0.3s
        router:
          num_retries: 2
          retry_backoff: 0.01
          cooldown_failures: 3
          cooldown_window: 60s
          cooldown_seconds: 60s
        spend:
          flush_interval: 0.2
        """
    )


@pytest.fixture(scope="module")
def gw(upstream: MockUpstreamThread) -> Iterator[GatewayProcess]:
    with GatewayProcess(config(upstream.url)) as gateway:
        yield gateway


def messages(gw: GatewayProcess, key: str, model: str, headers: dict | None = None) -> httpx.Response:
    body = {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": TEXT}]}
    return httpx.post(f"{gw.url}/v1/messages", json=body, headers={"x-api-key": key, **ANTHROPIC_VERSION, **(headers or {})}, timeout=30)


def health(gw: GatewayProcess) -> dict[str, dict]:
    return {row["id"]: row for row in gw.admin("GET", "/health").json()["deployments"]}


def wait_for(condition: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)


def rows(gw: GatewayProcess, key: str) -> list[dict]:
    return gw.admin("GET", "/spend/logs", params={"api_key": key}).json()  # flushes first


def test_a_timeout_the_client_shortened_neither_cools_down_nor_is_free(gw, upstream):
    key = gw.create_key()
    upstream.set_faults([{"match": {"model": "claude-sonnet-4-5-20250929"}, "action": {"type": "delay", "seconds": 2}}])
    overrides = {"x-keystile-timeout": "0.001", "x-keystile-max-retries": "5"}
    for _ in range(2):
        response = messages(gw, key, "pair", overrides)
        assert response.status_code == 504 and response.json()["error"]["type"] == "timeout_error"
        assert response.headers["x-keystile-attempts"] == "3"  # the group's 2 retries, not the 5 asked for
    wait_for(lambda: len(upstream.requests()) == 6)  # 3 calls each (the issue: 6 each)

    states = health(gw)
    for deployment in ("pair-1", "pair-2"):
        assert states[deployment]["state"] == "healthy", states[deployment]
        assert states[deployment]["failures"] == 0 and states[deployment]["recent_failures"] == 0
    upstream.clear_faults()
    served = messages(gw, key, "pair")  # everyone else is still served, at the first attempt
    assert served.status_code == 200 and served.headers["x-keystile-attempts"] == "1"

    timed_out = [row for row in rows(gw, key) if row["status"] == 504]
    assert len(timed_out) == 2
    for row in timed_out:
        assert row["attempts"] == 3 and row["input_tokens"] == 3 * ESTIMATED_INPUT
        assert row["spend"] == pytest.approx(3 * ESTIMATED_INPUT * SONNET_INPUT)  # the issue: $0


def test_the_retry_header_cannot_raise_the_configured_retries(gw, upstream):
    key = gw.create_key()
    upstream.set_faults([{"match": {"model": "claude-haiku-4-5"}, "action": {"type": "status", "status": 500}}])
    response = messages(gw, key, "flaky", {"x-keystile-max-retries": "5"})
    assert response.status_code == 500 and response.headers["x-keystile-attempts"] == "3"
    assert len(upstream.requests()) == 3
    lowered = messages(gw, key, "flaky", {"x-keystile-max-retries": "0"})  # lowering is the client's to choose
    assert lowered.status_code == 500 and lowered.headers["x-keystile-attempts"] == "1"
    # an upstream error status is not billed by the provider: nothing to charge
    assert [row["spend"] for row in rows(gw, key) if row["status"] == 500] == [0.0, 0.0]


def test_a_timeout_the_configuration_set_still_counts_against_the_deployment(gw, upstream):
    key = gw.create_key()
    upstream.set_faults([{"match": {"model": "claude-opus-4-1"}, "action": {"type": "delay", "seconds": 2}}])
    response = messages(gw, key, "slow")  # its own 0.3 s timeout, three times
    assert response.status_code == 504 and response.headers["x-keystile-attempts"] == "3"
    assert health(gw)["slow-1"]["state"] == "cooling_down"
