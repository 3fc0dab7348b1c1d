"""The Ledger: budgets known in memory, periods rolled over on an injected clock, batches drained and settled."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from keystile.limits.budgets import Ledger, next_reset, period_seconds

HOUR, DAY = 3600.0, 86400.0
T0 = 1_800_000_000.0
KEY = ("key", "h1")
TEAM = ("team", "t1")


def record(**fields):  # type: ignore[no-untyped-def]
    base = dict(max_budget=None, soft_budget=None, budget_duration=None, budget_reset_at=None, spend=0.0)
    return SimpleNamespace(**{**base, **fields})


@pytest.mark.parametrize(
    "duration,seconds",
    [("1h", HOUR), ("1d", DAY), ("7d", 7 * DAY), ("30d", 30 * DAY), ("30s", 30.0), ("1mo", 30 * DAY), (None, None), ("", None), ("soon", None), ("0s", None)],
)
def test_period_seconds(duration, seconds):
    assert period_seconds(duration) == seconds


@pytest.mark.parametrize(
    "reset_at,now,expected",
    [
        (T0, T0 - 1, T0),  # not due yet
        (T0, T0, T0 + HOUR),  # due exactly: the next boundary
        (T0, T0 + 1, T0 + HOUR),
        (T0, T0 + 5 * HOUR + 10, T0 + 6 * HOUR),  # several periods idle: same phase, first boundary after now
    ],
)
def test_next_reset_keeps_the_phase(reset_at, now, expected):
    assert next_reset(reset_at, HOUR, now) == expected


def test_hard_budget_refuses_once_spend_reaches_it():
    ledger = Ledger()
    ledger.track(KEY, record(max_budget=1.0, spend=0.4), T0)
    assert ledger.check([KEY], T0) == (None, [])
    ledger.add([KEY], 0.6, T0)
    refusal, warnings = ledger.check([KEY], T0)
    assert refusal is not None and refusal.entity == KEY and refusal.spend == pytest.approx(1.0) and refusal.limit == 1.0
    assert ledger.remaining(KEY) == 0.0


def test_first_refusal_in_order_key_user_team():
    ledger = Ledger()
    ledger.track(KEY, record(max_budget=10.0), T0)
    ledger.track(TEAM, record(max_budget=0.5, spend=0.5), T0)
    refusal, _ = ledger.check([KEY, TEAM], T0)
    assert refusal is not None and refusal.entity == TEAM
    assert ledger.check([KEY], T0)[0] is None  # a key outside that team is unaffected


def test_soft_budget_warns_every_time_and_logs_once_per_period(caplog):
    ledger = Ledger()
    ledger.track(KEY, record(soft_budget=1.0, budget_duration="1h"), T0)
    ledger.add([KEY], 1.5, T0)
    with caplog.at_level(logging.WARNING, logger="keystile.budgets"):
        for _ in range(3):
            refusal, warnings = ledger.check([KEY], T0 + 1)
            assert refusal is None and [w.soft for w in warnings] == [True]
        assert len(caplog.records) == 1 and "passed its soft budget" in caplog.text
        ledger.check([KEY], T0 + HOUR)  # new period: spend is back to 0, no warning
        ledger.add([KEY], 2.0, T0 + HOUR)
        ledger.check([KEY], T0 + HOUR + 1)
    assert len(caplog.records) == 2


def test_period_rolls_over_at_check_time_and_the_reset_is_written_once():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=1.0, budget_duration="1h"), T0)
    assert state.reset_at == T0 + HOUR
    ledger.add([KEY], 1.0, T0 + 10)
    assert ledger.check([KEY], T0 + 10)[0] is not None
    increments, resets = ledger.take()
    assert increments == {KEY: 1.0} and resets == {}

    assert ledger.check([KEY], T0 + HOUR)[0] is None  # the hour is over
    assert state.spend == 0.0 and state.reset_at == T0 + 2 * HOUR
    increments, resets = ledger.take()
    assert increments == {} and resets == {KEY: (T0 + HOUR, T0 + 2 * HOUR)}
    assert ledger.take() == ({}, {})


def test_spend_pending_at_rollover_belongs_to_the_closed_period():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=1.0, budget_duration="1h"), T0)
    ledger.add([KEY], 0.7, T0 + 10)
    ledger.add([KEY], 0.2, T0 + HOUR + 5)  # charged after the boundary: the new period's
    assert state.spend == pytest.approx(0.2) and state.pending == pytest.approx(0.2)
    assert ledger.take() == ({KEY: pytest.approx(0.2)}, {KEY: (T0 + HOUR, T0 + 2 * HOUR)})


def test_a_lifetime_budget_never_resets():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=1.0, spend=0.9), T0)
    assert state.reset_at is None
    ledger.add([KEY], 0.1, T0 + 365 * DAY)
    assert ledger.check([KEY], T0 + 365 * DAY)[0] is not None


def test_a_reset_that_fell_due_while_stopped_is_applied_on_first_check():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=1.0, budget_duration="1d", budget_reset_at=T0, spend=5.0), T0 + 3 * DAY + 1)
    assert ledger.check([KEY], T0 + 3 * DAY + 1)[0] is None
    assert state.spend == 0.0 and state.reset_at == T0 + 4 * DAY


def test_take_restore_settle():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=10.0, spend=1.0), T0)
    ledger.add([KEY, TEAM], 0.5, T0)  # the team is not tracked: ignored
    increments, resets = ledger.take()
    assert increments == {KEY: 0.5} and state.pending == 0.0 and state.spend == 1.5
    ledger.restore(increments, resets)  # the write failed
    assert state.pending == 0.5
    increments, resets = ledger.take()
    ledger.add([KEY], 0.25, T0)  # arrives while the write is in flight
    ledger.settle({KEY: (4.0, None)})  # the store's total includes another process's 2.5
    assert state.spend == pytest.approx(4.25) and state.pending == pytest.approx(0.25)


def test_settle_waits_while_a_rollover_is_unwritten():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=10.0, budget_duration="1h", spend=3.0, budget_reset_at=T0 + HOUR), T0)
    ledger.check([KEY], T0 + HOUR)
    ledger.settle({KEY: (3.0, T0 + HOUR)})  # a stale total from before the rollover
    assert state.spend == 0.0


def test_track_refreshes_limits_but_never_spend():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=1.0, spend=0.5), T0)
    ledger.add([KEY], 0.25, T0)
    ledger.track(KEY, record(max_budget=2.0, soft_budget=1.5, spend=0.0, budget_duration="1d"), T0 + 10)
    assert (state.max_budget, state.soft_budget, state.spend) == (2.0, 1.5, 0.75)
    assert state.period == DAY and state.reset_at == T0 + 10 + DAY


def test_admin_changes():
    ledger = Ledger()
    state = ledger.track(KEY, record(max_budget=1.0, spend=0.5), T0)
    ledger.add([KEY], 0.25, T0)
    ledger.set_period(KEY, DAY, T0 + DAY)  # new duration: spend and pending kept
    assert (state.spend, state.pending, state.reset_at) == (0.75, 0.25, T0 + DAY)
    ledger.set_spend(KEY, 0.0)
    assert (state.spend, state.pending) == (0.0, 0.0)
    ledger.forget(KEY)
    assert ledger.states == {}


def test_standing_is_what_the_next_check_would_see():
    ledger = Ledger()
    untracked = record(max_budget=1.0, budget_duration="1h", budget_reset_at=T0, spend=0.8)
    assert ledger.standing(KEY, untracked, T0 - 1) == (0.8, T0)
    assert ledger.standing(KEY, untracked, T0 + 1) == (0.0, T0 + HOUR)  # the period ended; nothing tracked it yet
    ledger.track(KEY, untracked, T0 - 1)
    ledger.add([KEY], 0.1, T0 - 1)
    assert ledger.standing(KEY, untracked, T0 - 1) == (pytest.approx(0.9), T0)
    assert ledger.standing(KEY, untracked, T0 + 1) == (0.0, T0 + HOUR)


def test_budgeted_lists_entities_worth_refreshing():
    ledger = Ledger()
    ledger.track(KEY, record(max_budget=1.0), T0)
    ledger.track(TEAM, record(), T0)
    ledger.track(("user", "u"), record(soft_budget=1.0), T0)
    assert sorted(ledger.budgeted()) == [KEY, ("user", "u")]
