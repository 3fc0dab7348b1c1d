"""Two keystile instances on one PostgreSQL and one Redis behave like one instance.

Each module-scoped cluster is two real ``keystile serve`` processes started at the same
moment (so they also race to migrate a fresh database) on a database of its own. The
outage tests run on a PostgreSQL and a Redis of their own (``PrivateServices``), which they
stop and start through tests/services.sh without disturbing the shared servers.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Iterator

import httpx
import pytest

from keystile.accounting.pricing import cost_of, load_price_table, price_for
from keystile.accounting.usage import Usage
from keystile.testing.upstream import MockUpstreamThread
from tests.integration.harness import GatewayProcess, anthropic_body, openai_body, standard_config
from tests.services import PrivateServices, create_database, drop_database

pytestmark = pytest.mark.services

ANTHROPIC = {"anthropic-version": "2023-06-01"}
UPSTREAM_MODEL = {"claude-test": "claude-sonnet-4-5-20250929", "gpt-test": "gpt-4o-2024-08-06"}
CONFIG_EXTRA = "spend:\n  flush_interval: 0.2\n"


def start_pair(config: str, database_url: str, redis_url: str) -> tuple[GatewayProcess, GatewayProcess]:
    env = {"KEYSTILE_DATABASE_URL": database_url, "KEYSTILE_REDIS_URL": redis_url}
    pair = (GatewayProcess(config, env=env), GatewayProcess(config, env=env))
    errors: list[BaseException] = []

    def start(gw: GatewayProcess) -> None:
        try:
            gw.start(timeout=30)
        except BaseException as exc:  # noqa: BLE001 — reported below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(gw,)) for gw in pair]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for gw in pair:
            gw.stop()
        raise errors[0]
    return pair


@pytest.fixture(scope="module")
def cluster(services, upstream: MockUpstreamThread) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    database = create_database(services.postgres, "ks_scale")
    a, b = start_pair(standard_config(upstream.url, extra=CONFIG_EXTRA), database, services.redis)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()
        drop_database(services.postgres, database)


def messages(gw: GatewayProcess, key: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/messages", json=anthropic_body(**extra), headers={"x-api-key": key, **ANTHROPIC}, timeout=30)


def chat(gw: GatewayProcess, key: str, **extra: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat/completions", json=openai_body(**extra), headers={"authorization": f"Bearer {key}"}, timeout=30)


def metric(gw: GatewayProcess, name: str, labels: str = "") -> float:
    text = httpx.get(f"{gw.url}/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def wait_for(condition, timeout: float, interval: float = 0.05) -> float:
    """Seconds until ``condition()`` held; fails after ``timeout``."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(interval)


def flushed_spend_logs(gws: tuple[GatewayProcess, ...], key: str) -> list[dict]:
    """Every instance writes what it holds (``/spend/logs`` flushes first); then the rows of ``key``."""
    rows: list[dict] = []
    for gw in gws:
        rows = gw.admin("GET", "/spend/logs", params={"api_key": key}).json()
    return rows


# --- one database, one Redis, two instances -----------------------------------------------------


def test_a_key_created_on_one_instance_works_on_the_other(cluster):
    a, b = cluster
    key = a.create_key(key_alias="shared-key")
    assert messages(b, key).status_code == 200
    assert chat(a, key).status_code == 200
    info = b.admin("GET", "/key/info", params={"key": key}).json()
    assert info["info"]["key_alias"] == "shared-key"
    assert b.admin("POST", "/key/generate", json={"key_alias": "shared-key"}).status_code == 400  # alias taken, on either


def test_rpm_limit_is_exact_across_instances(cluster):
    a, b = cluster
    key = a.create_key(rpm_limit=10)
    statuses = [messages(a if i % 2 == 0 else b, key).status_code for i in range(16)]
    assert statuses.count(200) == 10 and statuses.count(429) == 6
    assert statuses[:10] == [200] * 10
    refused = messages(b, key)
    assert refused.status_code == 429 and refused.json()["error"]["type"] == "rate_limit_error"
    assert int(refused.headers["retry-after"]) >= 1


def test_parallel_limit_is_shared(cluster, upstream: MockUpstreamThread):
    a, b = cluster
    key = a.create_key(max_parallel_requests=1)
    upstream.set_faults([{"match": {"path": "/v1/messages"}, "times": 1, "action": {"type": "delay", "seconds": 1.0}}])
    slow = threading.Thread(target=messages, args=(a, key))
    slow.start()
    try:
        wait_for(lambda: len(upstream.requests()) >= 1, 5)
        assert messages(b, key).status_code == 429
    finally:
        slow.join()
    assert messages(b, key).status_code == 200  # the slot was handed back


def test_block_delete_and_regenerate_reach_the_other_instance_within_a_second(cluster):
    a, b = cluster
    key = a.create_key()
    assert messages(b, key).status_code == 200  # b has it cached now
    pushed = metric(b, "keystile_key_cache_invalidations_total", '{source="redis"}')
    assert a.admin("POST", "/key/block", json={"key": key}).status_code == 200
    assert wait_for(lambda: messages(b, key).status_code == 401, timeout=1.0) < 1.0
    assert metric(b, "keystile_key_cache_invalidations_total", '{source="redis"}') > pushed  # pub/sub, not only the poll
    assert "blocked" in messages(b, key).json()["error"]["message"]
    a.admin("POST", "/key/unblock", json={"key": key})
    wait_for(lambda: messages(b, key).status_code == 200, timeout=1.0)

    new = a.admin("POST", "/key/regenerate", json={"key": key}).json()["key"]
    wait_for(lambda: messages(b, key).status_code == 401, timeout=1.0)
    assert messages(b, new).status_code == 200
    a.admin("POST", "/key/delete", json={"keys": [new]})
    wait_for(lambda: messages(b, new).status_code == 401, timeout=1.0)


def test_spend_across_instances_adds_up_exactly(cluster):
    a, b = cluster
    key = a.create_key(max_budget=100.0)
    calls = [
        (a, messages, {"text": "one " * 50}),
        (b, chat, {"text": "two " * 80}),
        (b, messages, {"text": "three", "stream": True}),
        (a, chat, {"text": "four " * 10, "stream": True, "stream_options": {"include_usage": True}}),
        (a, messages, {"text": "five " * 200}),
        (b, messages, {"text": "six"}),
    ]
    for gw, call, extra in calls:
        response = call(gw, key, **extra)
        assert response.status_code == 200, response.text
    rows = flushed_spend_logs((a, b), key)
    assert len(rows) == len(calls)
    table = load_price_table()
    expected = 0.0
    for row in rows:
        usage = Usage(row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"])
        assert usage.total_tokens > 0
        priced = cost_of(usage, price_for(UPSTREAM_MODEL[row["model"]], table))
        assert row["spend"] == pytest.approx(priced, rel=1e-12)
        expected += priced
    logged = sum(row["spend"] for row in rows)
    assert expected > 0 and logged == pytest.approx(expected, rel=1e-9)
    for gw in (a, b):  # whichever instance is asked
        info = gw.admin("GET", "/key/info", params={"key": key}).json()["info"]
        assert info["spend"] == pytest.approx(logged, rel=1e-9)


def test_a_budget_is_shared_like_on_one_instance(cluster):
    a, b = cluster
    probe = a.create_key()
    assert messages(a, probe).status_code == 200
    cost = flushed_spend_logs((a,), probe)[0]["spend"]
    assert cost > 0
    key = a.create_key(max_budget=cost * 2.5)  # one instance admits 3 such requests: spend < budget before each
    statuses = [messages(a if i % 2 == 0 else b, key).status_code for i in range(6)]
    assert statuses == [200, 200, 200, 400, 400, 400]
    refused = messages(b, key).json()
    assert refused["error"]["type"] == "invalid_request_error" and "Budget exceeded" in refused["error"]["message"]


def test_readiness_reports_both_services(cluster):
    a, _ = cluster
    ready = httpx.get(f"{a.url}/health/readiness").json()
    assert ready == {"status": "ready", "db": "connected", "redis": "connected"}
    assert metric(a, "keystile_degraded", '{service="redis"}') == 0.0


# --- outages: a PostgreSQL and a Redis of this module's own ----------------------------------------


@pytest.fixture(scope="module")
def private() -> Iterator[PrivateServices]:
    services = PrivateServices().start()
    try:
        yield services
    finally:
        services.close()


@pytest.fixture(scope="module")
def outage_cluster(private: PrivateServices, upstream: MockUpstreamThread) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    config = standard_config(upstream.url, extra=CONFIG_EXTRA + "key_cache_ttl: 1\nstore_outage_grace: 60\n")
    a, b = start_pair(config, create_database(private.postgres_url, "ks_outage"), private.redis_url)
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_redis_outage_degrades_to_per_instance_limits_and_recovers(outage_cluster, private: PrivateServices):
    a, b = outage_cluster
    key = a.create_key(rpm_limit=3)
    assert messages(b, key).status_code == 200
    private.stop_redis()
    try:
        # still served: each instance now counts the limit on its own (documented: N instances, N × the limit)
        statuses = [messages(gw, key).status_code for gw in (a, b, a, b, a, b, a, b)]
        assert statuses == [200] * 6 + [429] * 2
        for gw in (a, b):
            assert metric(gw, "keystile_degraded", '{service="redis"}') == 1.0
            ready = httpx.get(f"{gw.url}/health/readiness")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded" and "unreachable" in ready.json()["redis"]
        # key changes still reach the other instance, through the store's revision poll
        other = a.create_key()
        assert messages(b, other).status_code == 200
        a.admin("POST", "/key/block", json={"key": other})
        wait_for(lambda: messages(b, other).status_code == 401, timeout=1.5)
    finally:
        private.start_redis()
    for gw in (a, b):
        wait_for(lambda gw=gw: metric(gw, "keystile_degraded", '{service="redis"}') == 0.0, timeout=5)
    shared = a.create_key(rpm_limit=4)
    statuses = [messages(a if i % 2 == 0 else b, shared).status_code for i in range(8)]
    assert statuses == [200] * 4 + [429] * 4  # shared again
    # and the broadcast is back: b hears a's changes over pub/sub again
    pushed = metric(b, "keystile_key_cache_invalidations_total", '{source="redis"}')

    def heard() -> bool:
        a.admin("POST", "/key/update", json={"key": shared, "metadata": {"n": time.monotonic()}})
        return metric(b, "keystile_key_cache_invalidations_total", '{source="redis"}') > pushed

    wait_for(heard, timeout=5, interval=0.2)


def test_postgres_outage_serves_cached_keys_and_loses_no_spend(outage_cluster, private: PrivateServices):
    a, b = outage_cluster
    key = a.create_key()
    for gw in (a, b):
        assert messages(gw, key).status_code == 200  # cached on both
    before = len(flushed_spend_logs((a, b), key))
    unknown_key = "sk-ks-never-issued-0000000000000000"
    private.stop_postgres()
    served = 0
    try:
        time.sleep(1.2)  # longer than key_cache_ttl: the cached entries have expired; the grace period serves them
        for gw in (a, b, a, b):
            response = messages(gw, key, text="during the outage")
            assert response.status_code == 200, response.text
            served += 1
        refused = messages(a, unknown_key)
        assert refused.status_code == 503
        assert refused.json()["type"] == "error" and refused.json()["error"]["type"] == "api_error"  # Anthropic's shape
        refused_openai = chat(b, unknown_key)
        assert refused_openai.status_code == 503 and refused_openai.json()["error"]["code"] == "service_unavailable"
        ready = httpx.get(f"{a.url}/health/readiness")
        assert ready.status_code == 200 and ready.json()["status"] == "degraded" and "unreachable" in ready.json()["db"]
        assert metric(a, "keystile_degraded", '{service="database"}') == 1.0
        assert a.admin("GET", "/key/info", params={"key": key}).status_code == 503
    finally:
        private.start_postgres()
    for gw in (a, b):
        wait_for(lambda gw=gw: metric(gw, "keystile_degraded", '{service="database"}') == 0.0, timeout=10)
    rows = flushed_spend_logs((a, b), key)
    assert len(rows) == before + served
    assert sum(1 for row in rows if row["status"] == 200) == before + served
    info = a.admin("GET", "/key/info", params={"key": key}).json()["info"]
    assert info["spend"] == pytest.approx(sum(row["spend"] for row in rows), rel=1e-9)
    assert messages(a, unknown_key).status_code == 401  # unknown keys are plain invalid again
