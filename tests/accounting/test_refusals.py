"""RefusalSampler: per key, 10 refusal rows at once, then one a minute, every refusal counted once."""

from __future__ import annotations

from keystile.accounting.refusals import RefusalSampler
from keystile.store.records import SpendLogRow


def refusal(n: int) -> SpendLogRow:
    return SpendLogRow(f"r{n}", float(n), "k", None, None, None, "m", None, None, None, 0, 0, 0, 0, 0.0, 429, 1.0, False, 0)


def test_a_burst_is_logged_row_by_row_then_sampled_with_counts():
    sampler = RefusalSampler(burst=10, refill_seconds=60.0)
    written = [sampler.admit("k", refusal(n), now=n * 0.01) for n in range(300)]  # 300 refusals in 3 seconds
    rows = [r for r in written if r is not None]
    assert [r.request_id for r in rows] == [f"r{n}" for n in range(10)] and all(r.requests == 1 for r in rows)
    assert sampler.due(now=30.0) == []  # held back for less than a minute
    [summary] = sampler.due(now=3.0 + 60.0)
    assert (summary.request_id, summary.requests) == ("r299", 290)  # the latest refusal reports the 290 held back
    assert sampler.due(now=200.0) == []


def test_while_refused_one_row_a_minute_carries_the_refusals_since_the_last():
    sampler = RefusalSampler(burst=2, refill_seconds=60.0)
    assert sampler.admit("k", refusal(0), 0.0) is not None and sampler.admit("k", refusal(1), 0.0) is not None
    assert all(sampler.admit("k", refusal(n), 1.0 + n) is None for n in range(2, 50))  # t = 3 … 50
    row = sampler.admit("k", refusal(50), 61.0)  # a minute later the bucket has one row again
    assert row is not None and (row.request_id, row.requests) == ("r50", 49)  # itself and the 48 before it
    assert sampler.admit("k", refusal(51), 62.0) is None


def test_keys_are_sampled_separately_and_everything_is_written_at_shutdown():
    sampler = RefusalSampler(burst=1, refill_seconds=60.0)
    assert sampler.admit("a", refusal(0), 0.0) is not None
    assert sampler.admit("b", refusal(1), 0.0) is not None  # another key has its own bucket
    assert sampler.admit("a", refusal(2), 1.0) is None and sampler.admit("a", refusal(3), 2.0) is None
    [held] = sampler.due(now=5.0, everything=True)
    assert (held.request_id, held.requests) == ("r3", 2)


def test_quiet_keys_are_forgotten():
    sampler = RefusalSampler(burst=3, refill_seconds=10.0)
    sampler.admit("k", refusal(0), 0.0)
    assert len(sampler) == 1
    sampler.due(now=5.0)
    assert len(sampler) == 1  # its bucket has not refilled yet
    sampler.due(now=10.0)
    assert len(sampler) == 0
