"""Shared budgets: one spend figure for every instance, reservations for requests in flight."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Awaitable, Callable

import pytest

from keystile.limits.budgets import Ledger
from keystile.limits.redis_budgets import RESERVATION_LEASE, RedisBudgets, SharedHold, SharedRefusal
from keystile.metrics import Metrics
from keystile.store.records import KeyRecord, UserRecord
from keystile.store.redis_link import RedisLink

pytestmark = pytest.mark.services

T0 = 1_000_000.0
KEY = ("key", "k1")
USER = ("user", "u1")


def with_budgets(redis_url: str, body: Callable[..., Awaitable[Any]], instances: int = 2) -> Any:
    async def main() -> Any:
        prefix = f"test:{uuid.uuid4().hex}:"
        links = [RedisLink(redis_url, Metrics(), prefix) for _ in range(instances)]
        for link in links:
            await link.start()
        try:
            return await body(*[(RedisBudgets(link), Ledger(), link) for link in links])
        finally:
            for link in links:
                await link.close()

    return asyncio.run(main())


def track(ledger: Ledger, max_budget: float = 1.0, spend: float = 0.0, **extra: Any) -> None:
    ledger.track(KEY, KeyRecord(token_hash="k1", max_budget=max_budget, spend=spend, **extra), T0)


def test_spend_is_shared_and_refused_once_used_up(services):
    async def body(a, b) -> None:
        (budgets_a, ledger_a, _), (budgets_b, ledger_b, _) = a, b
        track(ledger_a)
        track(ledger_b)
        for i in range(4):  # requests one after another, alternating instances, $0.3 each
            budgets, ledger = (budgets_a, ledger_a) if i % 2 == 0 else (budgets_b, ledger_b)
            reservation = await budgets.reserve(ledger, [KEY], T0 + i)
            assert isinstance(reservation, SharedHold)
            await budgets.settle(reservation, 0.3)
        refusal = await budgets_b.reserve(ledger_b, [KEY], T0 + 10)
        assert isinstance(refusal, SharedRefusal) and not refusal.held
        assert refusal.spend == pytest.approx(1.2) and refusal.limit == 1.0  # overspent by the last request only

    with_budgets(services.redis, body)


def test_requests_in_flight_hold_the_rest_of_the_budget(services):
    async def body(a, b) -> None:
        (budgets_a, ledger_a, _), (budgets_b, ledger_b, _) = a, b
        track(ledger_a)
        track(ledger_b)
        first = await budgets_a.reserve(ledger_a, [KEY], T0, 0.5)
        await budgets_a.settle(first, 0.4)  # it cost less than its worst case
        running = await budgets_a.reserve(ledger_a, [KEY], T0 + 1, 0.3)
        assert isinstance(running, SharedHold)
        # 0.4 spent + 0.3 held: still room (the new one's own worst case may go past the budget)
        also_running = await budgets_b.reserve(ledger_b, [KEY], T0 + 1, 0.5)
        assert isinstance(also_running, SharedHold)
        # 0.4 spent + 0.8 held: a third request at the same time is turned away, on either instance
        for budgets, ledger in ((budgets_a, ledger_a), (budgets_b, ledger_b)):
            held = await budgets.reserve(ledger, [KEY], T0 + 1, 0.01)
            assert isinstance(held, SharedRefusal) and held.held and held.reserved == pytest.approx(0.8)
        await budgets_a.settle(running, 0.1)
        await budgets_b.settle(also_running, 0.2)
        # 0.7 spent, nothing held: room again
        assert isinstance(await budgets_b.reserve(ledger_b, [KEY], T0 + 2, 0.5), SharedHold)

    with_budgets(services.redis, body)


def test_unsettled_reservations_expire(services):
    async def body(a) -> None:
        budgets, ledger, _ = a
        track(ledger, max_budget=0.5)
        await budgets.settle(await budgets.reserve(ledger, [KEY], T0, 0.3), 0.3)
        assert isinstance(await budgets.reserve(ledger, [KEY], T0 + 1, 0.3), SharedHold)  # its instance dies
        assert isinstance(await budgets.reserve(ledger, [KEY], T0 + 2, 0.1), SharedRefusal)
        assert isinstance(await budgets.reserve(ledger, [KEY], T0 + RESERVATION_LEASE + 2, 0.1), SharedHold)

    with_budgets(services.redis, body, instances=1)


def test_first_sight_seeds_from_the_ledger_and_a_new_period_starts_at_zero(services):
    async def body(a, b) -> None:
        (budgets_a, ledger_a, _), (budgets_b, ledger_b, _) = a, b
        for ledger in (ledger_a, ledger_b):
            track(ledger, spend=0.9, budget_duration="1d", budget_reset_at=T0 + 100)
        reservation = await budgets_a.reserve(ledger_a, [KEY], T0)
        await budgets_a.settle(reservation, 0.2)
        assert isinstance(await budgets_b.reserve(ledger_b, [KEY], T0 + 1), SharedRefusal)  # 0.9 seeded + 0.2
        # the period ends: both instances' ledgers roll over; Redis restarts the spend with them
        ledger_b.check([KEY], T0 + 101)
        assert isinstance(await budgets_b.reserve(ledger_b, [KEY], T0 + 101), SharedHold)

    with_budgets(services.redis, body)


def test_key_and_user_are_reserved_together(services):
    async def body(a) -> None:
        budgets, ledger, _ = a
        track(ledger, max_budget=10.0)
        ledger.track(USER, UserRecord(user_id="u1", max_budget=0.5), T0)
        await budgets.settle(await budgets.reserve(ledger, [KEY, USER], T0), 0.6)
        refusal = await budgets.reserve(ledger, [KEY, USER], T0 + 1)
        assert isinstance(refusal, SharedRefusal) and refusal.entity == USER

    with_budgets(services.redis, body, instances=1)


def test_admin_change_and_costs_missed_during_an_outage(services):
    async def body(a, b) -> None:
        (budgets_a, ledger_a, link_a), (budgets_b, ledger_b, _) = a, b
        track(ledger_a)
        track(ledger_b)
        await budgets_a.settle(await budgets_a.reserve(ledger_a, [KEY], T0), 0.7)
        reservation = await budgets_a.reserve(ledger_a, [KEY], T0 + 1)
        link_a.up = False  # instance a loses Redis while its request runs
        await budgets_a.settle(reservation, 0.3)
        assert await budgets_a.reserve(ledger_a, [KEY], T0 + 2) is None  # down: the ledger decides alone
        await link_a._recovered()  # the probe sees Redis again: the missed $0.3 is added ($1.0 of $1.0)
        assert isinstance(await budgets_b.reserve(ledger_b, [KEY], T0 + 3), SharedRefusal)
        await budgets_b.admin_change(KEY, {"spend": 0.0})  # an admin resets the spend
        assert isinstance(await budgets_a.reserve(ledger_a, [KEY], T0 + 4), SharedHold)

    with_budgets(services.redis, body)
