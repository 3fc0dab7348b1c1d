"""Redis counters keep LocalCounters' exact semantics, shared; the failover keeps serving without Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable

import pytest

from keystile.limits.ratelimit import WINDOW, LocalCounters, RateCheck
from keystile.limits.redis_counters import LEASE, FailoverCounters, RedisCounters
from keystile.metrics import Metrics
from keystile.store.redis_link import RedisLink
from tests.services import free_port

pytestmark = pytest.mark.services

T0 = 1_000_000.0


def with_counters(redis_url: str, body: Callable[..., Awaitable[Any]], instances: int = 1) -> Any:
    """Run ``body`` with ``instances`` RedisCounters sharing one fresh namespace (as several gateways would)."""

    async def main() -> Any:
        prefix = f"test:{uuid.uuid4().hex}:"
        links = [RedisLink(redis_url, Metrics(), prefix) for _ in range(instances)]
        for link in links:
            await link.start()
            assert link.up
        counters = [RedisCounters(link, lambda: T0) for link in links]
        try:
            return await body(*counters)
        finally:
            for c, link in zip(counters, links):
                await c.close()
                await link.close()

    return asyncio.run(main())


def test_rpm_is_exact_across_instances_and_slides(services):
    check = RateCheck("key:a", "key", rpm=10)

    async def body(a: RedisCounters, b: RedisCounters) -> None:
        results = []
        for i in range(16):
            admission = await (a if i % 2 == 0 else b).admit([check], T0 + i)
            results.append(admission.refusal is None)
        assert results == [True] * 10 + [False] * 6
        refusal = (await a.admit([check], T0 + 20)).refusal
        assert refusal is not None and refusal.limit == "rpm"
        assert refusal.retry_after == pytest.approx(T0 + WINDOW - (T0 + 20))  # the oldest request leaves the window
        assert (await b.admit([check], T0 + WINDOW)).refusal is None  # exactly at the edge: the first one is out
        assert (await b.admit([check], T0 + WINDOW + 0.5)).refusal is not None

    with_counters(services.redis, body, instances=2)


def test_quota_matches_local_counters(services):
    checks = [RateCheck("key:q", "key", rpm=5, tpm=1000), RateCheck("team:t", "team 't'", rpm=3)]

    async def body(shared: RedisCounters) -> None:
        local = LocalCounters()
        for i in range(4):
            now = T0 + i * 2
            mine, theirs = local.admit_now(checks, now), await shared.admit(checks, now)
            assert (mine.refusal is None) == (theirs.refusal is None)
            if mine.refusal is None:
                assert theirs.quota.rpm_limit == mine.quota.rpm_limit
                assert theirs.quota.rpm_remaining == mine.quota.rpm_remaining
                assert theirs.quota.rpm_reset == pytest.approx(mine.quota.rpm_reset)
                assert theirs.quota.tpm_remaining == mine.quota.tpm_remaining
                assert theirs.quota.tpm_reset == pytest.approx(mine.quota.tpm_reset)
            else:
                assert theirs.refusal.check == mine.refusal.check and theirs.refusal.limit == mine.refusal.limit
            local.add_tokens_now(["key:q"], 300, now)
            await shared.add_tokens(["key:q"], 300, now)

    with_counters(services.redis, body)


def test_tpm_counts_tokens_in_a_sliding_minute(services):
    check = RateCheck("key:t", "key", tpm=1000)

    async def body(a: RedisCounters, b: RedisCounters) -> None:
        assert (await a.admit([check], T0)).refusal is None
        await a.add_tokens(["key:t"], 600, T0)
        assert (await b.admit([check], T0 + 1)).quota.tpm_remaining == 400
        await b.add_tokens(["key:t"], 500, T0 + 1)
        refusal = (await a.admit([check], T0 + 2)).refusal
        assert refusal is not None and refusal.limit == "tpm" and refusal.retry_after == pytest.approx(WINDOW - 2)
        await a.add_tokens(["key:t"], 100, T0 + 3)  # 1200 counted: under 1000 once the first 600 leave
        refusal = (await b.admit([check], T0 + 4)).refusal
        local = LocalCounters()
        for tokens, at in ((600, T0), (500, T0 + 1), (100, T0 + 3)):
            local.add_tokens_now(["key:t"], tokens, at)
        assert refusal.retry_after == pytest.approx(local.admit_now([check], T0 + 4).refusal.retry_after)
        assert refusal.retry_after == pytest.approx(WINDOW - 4)
        admitted = await b.admit([check], T0 + WINDOW + 0.5)  # the 600 left the window; 500 + 100 remain
        assert admitted.refusal is None and admitted.quota.tpm_remaining == 400

    with_counters(services.redis, body, instances=2)


def test_admission_is_all_or_nothing(services):
    key = RateCheck("key:k", "key", rpm=5)
    team = RateCheck("team:x", "team 'x'", rpm=1)

    async def body(c: RedisCounters) -> None:
        assert (await c.admit([key, team], T0)).refusal is None
        refused = await c.admit([key, team], T0 + 1)
        assert refused.refusal is not None and refused.refusal.check == team
        # the refused request took nothing from the key's limit: 4 more fit
        assert [(await c.admit([key], T0 + 2 + i)).refusal is None for i in range(5)] == [True] * 4 + [False]

    with_counters(services.redis, body)


def test_parallel_slots_are_shared_released_and_leased(services):
    check = RateCheck("key:p", "key", parallel=2)

    async def body(a: RedisCounters, b: RedisCounters) -> None:
        first = await a.admit([check], T0)
        second = await b.admit([check], T0)
        assert first.refusal is None and second.refusal is None
        refused = await a.admit([check], T0 + 1)
        assert refused.refusal is not None and refused.refusal.limit == "parallel"
        await b.release(second.slots)
        third = await a.admit([check], T0 + 2)
        assert third.refusal is None
        # instance a "crashes": nobody renews its two slots, which free themselves after the lease
        assert (await b.admit([check], T0 + LEASE - 1)).refusal is not None
        assert (await b.admit([check], T0 + LEASE + 3)).refusal is None

    with_counters(services.redis, body, instances=2)


def test_failover_uses_local_counters_while_redis_is_down_and_returns():
    async def main() -> None:
        metrics = Metrics()
        link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", metrics, "test:")
        await link.start()  # nothing listens there: starts degraded, does not fail
        assert not link.up
        counters = FailoverCounters(RedisCounters(link, lambda: T0), LocalCounters(), link)
        check = RateCheck("key:f", "key", rpm=2, parallel=1)
        first = await counters.admit([check], T0)
        assert first.refusal is None
        assert (await counters.admit([check], T0)).refusal.limit == "parallel"
        await counters.release(first.slots)
        second = await counters.admit([check], T0 + 1)
        assert second.refusal is None
        await counters.release(second.slots)
        assert (await counters.admit([check], T0 + 2)).refusal.limit == "rpm"  # 2 per minute, counted locally
        assert b'keystile_degraded{service="redis"} 1.0' in metrics.render()
        await counters.close()
        await link.close()

    asyncio.run(main())


def test_held_tokens_are_shared_settled_and_leased(services):
    check = RateCheck("key:h", "key", tpm=100)

    async def body(a: RedisCounters, b: RedisCounters) -> None:
        first = await a.admit([check], T0, hold=2_000)
        assert first.refusal is None and first.hold is not None
        refused = await b.admit([check], T0 + 1, hold=2_000)  # the other instance sees the hold
        assert refused.refusal is not None and refused.refusal.limit == "tpm" and refused.refusal.retry_after == 1.0
        await a.add_tokens(["key:h"], 40, T0 + 2, first.hold)  # the request used 40: the hold goes
        second = await b.admit([check], T0 + 3, hold=60)
        assert second.refusal is None and second.quota.tpm_remaining == 0  # 100 - 40 used - 60 held
        # instance b "crashes" with 60 held: nobody renews the hold, which lapses after the lease
        assert (await a.admit([check], T0 + LEASE - 1, hold=50)).refusal is not None
        assert (await a.admit([check], T0 + LEASE + 4, hold=50)).refusal is None

    with_counters(services.redis, body, instances=2)


def test_failover_drops_a_hold_where_it_was_made():
    async def main() -> None:
        link = RedisLink(f"redis://127.0.0.1:{free_port()}/0", Metrics(), "test:")
        await link.start()  # down: admissions are local
        counters = FailoverCounters(RedisCounters(link, lambda: T0), LocalCounters(), link)
        check = RateCheck("key:f", "key", tpm=100)
        first = await counters.admit([check], T0, hold=100)
        assert (await counters.admit([check], T0, hold=80)).refusal is not None
        await counters.add_tokens(["key:f"], 10, T0 + 1, first.hold, 100)
        assert (await counters.admit([check], T0 + 2, hold=80)).quota.tpm_remaining == 100 - 10 - 80
        await counters.close()
        await link.close()

    asyncio.run(main())
