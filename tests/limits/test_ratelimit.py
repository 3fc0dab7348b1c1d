"""LocalCounters: sliding minutes (exact in count) for rpm and tpm, parallel slots, all-or-nothing admission, on injected time."""

from __future__ import annotations

import pytest

from keystile.limits.ratelimit import COALESCE, WINDOW, LocalCounters, RateCheck

T0 = 1_800_000_000.0


def rpm(n: int, scope: str = "key:a") -> RateCheck:
    return RateCheck(scope, "key", rpm=n)


def test_rpm_admits_exactly_n_per_sliding_minute():
    counters = LocalCounters()
    for i in range(3):
        admission = counters.admit_now([rpm(3)], T0 + i)
        assert admission.refusal is None and admission.quota.rpm_remaining == 2 - i
    refused = counters.admit_now([rpm(3)], T0 + 10)
    assert refused.refusal is not None and refused.refusal.limit == "rpm"
    assert refused.refusal.retry_after == pytest.approx(T0 + WINDOW - (T0 + 10))  # when the oldest request leaves
    assert "requests per minute limit (3)" in refused.refusal.message() and "retry after 50s" in refused.refusal.message()
    assert counters.admit_now([rpm(3)], T0 + WINDOW - 0.001).refusal is not None
    assert counters.admit_now([rpm(3)], T0 + WINDOW).refusal is None  # the first request slid out
    assert counters.admit_now([rpm(3)], T0 + WINDOW + 0.5).refusal is not None  # the second leaves at T0+61


def test_a_refused_request_consumes_nothing():
    counters = LocalCounters()
    assert counters.admit_now([rpm(5, "key:a"), rpm(1, "team:t")], T0).refusal is None
    refused = counters.admit_now([rpm(5, "key:a"), rpm(1, "team:t")], T0 + 1)
    assert refused.refusal is not None and refused.refusal.check.scope == "team:t"
    # key:a counted one request, not two: four more fit once the team allows it
    for i in range(4):
        assert counters.admit_now([rpm(5, "key:a")], T0 + 2 + i).refusal is None
    assert counters.admit_now([rpm(5, "key:a")], T0 + 10).refusal is not None


def test_the_tightest_limit_is_reported():
    counters = LocalCounters()
    counters.admit_now([rpm(10, "key:a")], T0)
    quota = counters.admit_now([rpm(10, "key:a"), rpm(3, "team:t"), RateCheck("user:u", "user", tpm=500)], T0 + 1).quota
    assert (quota.rpm_limit, quota.rpm_remaining) == (3, 2)  # team: 3 - 0 - 1, tighter than key's 10 - 1 - 1
    assert (quota.tpm_limit, quota.tpm_remaining) == (500, 500)
    assert quota.rpm_reset == pytest.approx(WINDOW)


def test_tpm_counts_reported_tokens_and_they_expire():
    counters = LocalCounters()
    check = RateCheck("key:a", "key", tpm=1000)
    assert counters.admit_now([check], T0).refusal is None
    counters.add_tokens_now(["key:a"], 600, T0 + 1)
    assert counters.admit_now([check], T0 + 2).quota.tpm_remaining == 400
    counters.add_tokens_now(["key:a"], 400, T0 + 3)
    refused = counters.admit_now([check], T0 + 4)
    assert refused.refusal is not None and refused.refusal.limit == "tpm"
    assert refused.refusal.retry_after == pytest.approx(WINDOW - 3)  # the first 600 tokens leave at T0+61
    assert counters.admit_now([check], T0 + 1 + WINDOW).quota.tpm_remaining == 600
    counters.add_tokens_now(["key:a"], 0, T0 + 70)  # nothing to count
    assert counters.admit_now([check], T0 + 3 + WINDOW).quota.tpm_remaining == 1000


def test_tpm_retry_after_waits_for_enough_tokens_to_leave():
    counters = LocalCounters()
    check = RateCheck("key:a", "key", tpm=1000)
    for i, tokens in enumerate((100, 100, 900)):  # 1,100 counted; 101 must leave: the first two entries
        counters.add_tokens_now(["key:a"], tokens, T0 + i)
    refused = counters.admit_now([check], T0 + 10)
    assert refused.refusal.retry_after == pytest.approx(T0 + 1 + WINDOW - (T0 + 10))
    assert counters.admit_now([check], T0 + WINDOW).refusal is not None  # one entry gone is not enough
    assert counters.admit_now([check], T0 + 1 + WINDOW).refusal is None


def test_parallel_slots_are_taken_and_handed_back():
    counters = LocalCounters()
    check = RateCheck("key:a", "key", parallel=2)
    first = counters.admit_now([check], T0)
    second = counters.admit_now([check], T0)
    assert first.slots == second.slots == ("key:a",)
    refused = counters.admit_now([check], T0)
    assert refused.refusal is not None and refused.refusal.limit == "parallel" and refused.slots == ()
    counters.release_now(first.slots)
    assert counters.admit_now([check], T0).refusal is None
    for _ in range(5):  # releasing more than was taken never goes below zero
        counters.release_now(("key:a",))
    assert counters.admit_now([check], T0).refusal is None and counters.admit_now([check], T0).refusal is None
    assert counters.admit_now([check], T0).refusal is not None


def test_idle_windows_are_swept():
    counters = LocalCounters()
    for i in range(100):
        counters.admit_now([rpm(5, f"key:{i}")], T0)
    busy = counters.admit_now([RateCheck("key:busy", "key", parallel=1)], T0)
    counters._sweep(T0 + WINDOW + 1)
    assert list(counters._windows) == ["key:busy"]  # an open parallel slot keeps its window
    counters.release_now(busy.slots)
    counters._sweep(T0 + WINDOW + 2)
    assert counters._windows == {}


def test_async_interface_matches():
    import asyncio

    async def run() -> None:
        counters = LocalCounters()
        check = RateCheck("key:a", "key", rpm=1, tpm=10, parallel=1)
        admission = await counters.admit([check], T0)
        assert admission.refusal is None
        await counters.add_tokens(["key:a"], 10, T0)
        await counters.release(admission.slots)
        assert (await counters.admit([check], T0 + 1)).refusal.limit == "rpm"

    asyncio.run(run())


def test_a_busy_scope_keeps_bounded_memory_and_never_over_admits():
    """1,000 requests a second share entries per COALESCE interval: the count stays exact, the
    window stays small, and a request leaves at most COALESCE after its minute, never before."""
    counters = LocalCounters()
    check = rpm(30_000)
    for i in range(30_000):  # 30 s at 1,000 requests per second: exactly the limit
        assert counters.admit_now([check], T0 + i / 1000).refusal is None
    window = counters._windows["key:a"]
    assert window.requests.total == 30_000
    assert len(window.requests.entries) <= 30 / COALESCE + 1
    assert counters.admit_now([check], T0 + 30.0).refusal is not None
    # The first request (T0) would leave an exact log at T0 + 60; its entry leaves with its newest
    # member, under COALESCE later — so at T0 + 60 nothing has left yet ...
    refused = counters.admit_now([check], T0 + WINDOW)
    assert refused.refusal is not None and 0 < refused.refusal.retry_after < COALESCE
    # ... and once the first entry is out, exactly its members' worth of room opens.
    after = T0 + WINDOW + COALESCE
    room = 0
    while counters.admit_now([check], after).refusal is None:
        room += 1
    assert 0 < room <= COALESCE * 1000 + 1
    assert window.requests.total == 30_000


def test_tokens_coalesce_too():
    counters = LocalCounters()
    for i in range(1_000):
        counters.add_tokens_now(["key:a"], 10, T0 + i / 100)  # 100 additions per second for 10 s
    window = counters._windows["key:a"]
    assert window.tokens.total == 10_000 and len(window.tokens.entries) <= 10 / COALESCE + 1
    check = RateCheck("key:a", "key", tpm=10_000)
    assert counters.admit_now([check], T0 + 20).refusal.limit == "tpm"
    assert counters.admit_now([check], T0 + 10 + WINDOW).quota.tpm_remaining == 10_000


def test_held_tokens_count_until_the_real_ones_replace_them():
    counters = LocalCounters()
    check = RateCheck("key:t", "key", tpm=100)
    first = counters.admit_now([check], T0, hold=50)
    assert first.refusal is None and first.hold is not None and first.quota.tpm_remaining == 50
    assert counters.admit_now([check], T0, hold=50).refusal is None  # 50 held: still under 100
    refused = counters.admit_now([check], T0, hold=1)
    assert refused.refusal is not None and refused.refusal.limit == "tpm" and refused.refusal.retry_after == 1.0
    counters.add_tokens_now(["key:t"], 30, T0 + 1, held=50)  # one ended having used 30
    admitted = counters.admit_now([check], T0 + 2, hold=10)
    assert admitted.refusal is None and admitted.quota.tpm_remaining == 100 - 30 - 50 - 10
    assert counters.admit_now([RateCheck("key:r", "key", rpm=5)], T0, hold=50).hold is None  # no tpm: nothing held


def test_a_window_holding_tokens_is_not_swept():
    counters = LocalCounters()
    counters.admit_now([RateCheck("key:t", "key", tpm=100)], T0, hold=20)
    counters._sweep(T0 + WINDOW + 1)
    assert counters._windows["key:t"].held == 20
    counters.add_tokens_now(["key:t"], 0, T0 + WINDOW + 1, held=20)
    counters._sweep(T0 + WINDOW + 2)
    assert counters._windows == {}
