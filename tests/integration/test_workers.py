"""``keystile serve --workers 2`` on the default SQLite store: one port, two processes.

Every worker has its own caches, counters and upstream pool; what a client observes must
not depend on which worker accepted its connection. Each request below goes out on a fresh
connection, and the mock upstream shows which worker served it: every worker keeps its own
keep-alive connection to the upstream, so the upstream connection id names the worker.
"""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import pytest

from keystile.testing.upstream import MockUpstreamThread
from tests.integration.harness import MASTER_KEY, GatewayProcess, anthropic_body, openai_body, standard_config

ANTHROPIC_VERSION = {"anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def workers(upstream: MockUpstreamThread) -> Iterator[GatewayProcess]:
    with GatewayProcess(standard_config(upstream.url), master_key=MASTER_KEY, workers=2) as gw:
        yield gw


def call(gw: GatewayProcess, key: str, i: int) -> httpx.Response:
    """A fresh connection each time, alternating Messages and Chat, streaming every third."""
    stream = i % 3 == 0
    if i % 2:
        return httpx.post(
            f"{gw.url}/v1/messages",
            json=anthropic_body(text=f"worker test {i} " * (i % 7 + 1), stream=stream),
            headers={"x-api-key": key, **ANTHROPIC_VERSION},
            timeout=10,
        )
    return httpx.post(
        f"{gw.url}/v1/chat/completions",
        json=openai_body(text=f"worker test {i}", stream=stream),
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )


def served_by_both(upstream: MockUpstreamThread) -> bool:
    return len({r["connection"] for r in upstream.requests()}) >= 2


def send_through_both(gw: GatewayProcess, upstream: MockUpstreamThread, key: str, at_least: int) -> int:
    """At least ``at_least`` successful requests, more until both workers have served some; how many."""
    sent = 0
    while sent < at_least or (not served_by_both(upstream) and sent < 200):
        response = call(gw, key, sent)
        assert response.status_code == 200, response.text
        sent += 1
    assert served_by_both(upstream), f"all {sent} requests reached one worker"
    return sent


def spend_logs(gw: GatewayProcess, key: str, expected: int) -> list[dict]:
    """The key's spend-log rows once both workers have flushed (about once a second)."""
    deadline = time.monotonic() + 10
    while True:
        rows = gw.admin("GET", "/spend/logs", params={"api_key": key}).json()
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_the_serve_command_warns_that_limits_are_per_worker_without_redis(workers: GatewayProcess) -> None:
    assert "2 workers and no redis_url" in workers.log()


def test_spend_from_both_workers_adds_up_exactly(workers: GatewayProcess, upstream: MockUpstreamThread) -> None:
    key = workers.create_key(max_budget=100.0)
    sent = send_through_both(workers, upstream, key, 12)
    rows = spend_logs(workers, key, sent)
    assert len(rows) == sent and all(row["spend"] > 0 for row in rows)
    logged = sum(row["spend"] for row in rows)

    def key_spend() -> float:  # a fresh connection: either worker answers
        return workers.admin("GET", "/key/info", params={"key": key}).json()["info"]["spend"]

    # Each worker writes its own increments and learns the other's on its next flush (~1 s).
    deadline = time.monotonic() + 5
    while key_spend() != pytest.approx(logged, rel=1e-9) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.2)  # every worker has flushed since
    assert [key_spend() for _ in range(8)] == [pytest.approx(logged, rel=1e-9)] * 8


def test_a_key_blocked_through_one_worker_is_refused_by_every_worker_within_a_second(
    workers: GatewayProcess, upstream: MockUpstreamThread
) -> None:
    key = workers.create_key()
    send_through_both(workers, upstream, key, 4)  # both workers have the key cached
    assert workers.admin("POST", "/key/block", json={"key": key}).status_code == 200
    blocked_at = time.monotonic()
    time.sleep(1.0)
    upstream.clear_requests()
    statuses = [call(workers, key, i).status_code for i in range(16)]
    assert statuses == [401] * 16, f"{statuses} ({time.monotonic() - blocked_at:.2f} s after the block)"
    assert upstream.requests() == []


def requests_counted(gw: GatewayProcess) -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("keystile_requests_total{"))


def test_metrics_merge_both_workers(workers: GatewayProcess, upstream: MockUpstreamThread) -> None:
    before = requests_counted(workers)
    key = workers.create_key()
    sent = send_through_both(workers, upstream, key, 10)
    time.sleep(1.2)  # every worker folds its tallies into the shared files once a second
    # Whichever worker answers the scrape, it reports both workers' requests.
    assert [requests_counted(workers) for _ in range(6)] == [before + sent] * 6


def test_sigterm_flushes_every_workers_spend(upstream: MockUpstreamThread, tmp_path) -> None:
    # A flush interval far longer than the test: only the shutdown flush of each worker writes.
    config = standard_config(upstream.url, extra="spend:\n  flush_interval: 3600\n")
    first = GatewayProcess(config, master_key=MASTER_KEY, workers=2, workdir=tmp_path).start()
    try:
        key = first.create_key()
        sent = send_through_both(first, upstream, key, 12)
    finally:
        assert first.stop() == 0
    with GatewayProcess(config, master_key=MASTER_KEY, workdir=tmp_path) as second:
        rows = second.admin("GET", "/spend/logs", params={"api_key": key}).json()
        assert len(rows) == sent
        spend = second.admin("GET", "/key/info", params={"key": key}).json()["info"]["spend"]
        assert spend == pytest.approx(sum(row["spend"] for row in rows), rel=1e-9) and spend > 0
