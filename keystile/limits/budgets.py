"""Budgets: what each key, user and team has spent this period, known in memory.

``Ledger`` holds one ``BudgetState`` per entity: the spend the store last reported plus
what this process added since, and what requests running here hold (their
``limits.reservation``), so checking a budget costs no I/O. ``accounting.spend``
drains ``pending`` into the store about once a second and ``settle``s with the totals the
store returns, which also carries in what other processes spent. Periods
(``budget_duration``) roll over here, at check time, using the injectable clock.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable

from keystile.durations import parse_duration

log = logging.getLogger("keystile.budgets")

Entity = tuple[str, str]
"""(``key`` | ``user`` | ``team``, id)."""


@dataclass(slots=True)
class BudgetState:
    max_budget: float | None
    soft_budget: float | None
    period: float | None
    """Seconds in one budget period (``budget_duration``), or None for a lifetime budget."""
    reset_at: float | None
    spend: float
    """Spend in the current period, including ``pending``."""
    pending: float = 0.0
    """Added here and not yet written to the store."""
    closing: float | None = None
    """Set when a period rolled over here and the store has not been told yet: the old ``reset_at``."""
    soft_warned_at: float | None = None
    held: float = 0.0
    """USD reserved by requests running in this process, until they are charged."""


@dataclass(frozen=True, slots=True)
class BudgetVerdict:
    entity: Entity
    spend: float
    limit: float
    soft: bool
    held: float = 0.0
    """Set on a refusal made because requests in flight hold the rest of the budget."""


def period_seconds(budget_duration: str | None) -> float | None:
    if not budget_duration:
        return None
    try:
        return parse_duration(budget_duration) or None
    except ValueError:
        return None


def next_reset(reset_at: float, period: float, now: float) -> float:
    """The first period boundary after ``now``, keeping the original phase (a daily budget resets at the same hour)."""
    if now < reset_at:
        return reset_at
    return reset_at + (math.floor((now - reset_at) / period) + 1) * period


class Ledger:
    def __init__(self) -> None:
        self.states: dict[Entity, BudgetState] = {}

    def track(self, entity: Entity, record: object, now: float) -> BudgetState:
        """Start tracking an entity from its store record, or refresh its limits (never its spend)."""
        max_budget = getattr(record, "max_budget", None)
        soft_budget = getattr(record, "soft_budget", None)
        period = period_seconds(getattr(record, "budget_duration", None))
        state = self.states.get(entity)
        if state is None:
            reset_at = getattr(record, "budget_reset_at", None)
            if period and reset_at is None:
                reset_at = now + period
            state = BudgetState(max_budget, soft_budget, period, reset_at, float(getattr(record, "spend", 0.0) or 0.0))
            self.states[entity] = state
        else:
            state.max_budget, state.soft_budget = max_budget, soft_budget
            if period != state.period:
                state.period = period
                state.reset_at = (now + period) if period else None
        return state

    def set_spend(self, entity: Entity, spend: float, reset_at: float | None = None) -> None:
        """An admin changed the spend directly (``/key/update``): the store holds it, nothing is pending."""
        state = self.states.get(entity)
        if state is not None:
            state.spend, state.pending, state.closing = spend, 0.0, None
            if reset_at is not None:
                state.reset_at = reset_at

    def set_period(self, entity: Entity, period: float | None, reset_at: float | None) -> None:
        """An admin changed ``budget_duration``: the new period starts now; spend, pending included, stays."""
        state = self.states.get(entity)
        if state is not None:
            state.period, state.reset_at, state.closing = period, reset_at, None

    def forget(self, entity: Entity) -> None:
        self.states.pop(entity, None)

    def standing(self, entity: Entity, record: object, now: float) -> tuple[float, float | None]:
        """(spend this period, when the period resets) as of ``now``, for display (``/key/info``).

        The ledger's figure when the entity is tracked (it includes what is not written yet),
        else the store record's; either way a period that has ended shows as reset.
        """
        state = self.states.get(entity)
        if state is not None:
            self._roll(state, now)
            spend = state.spend
            if getattr(record, "budget_reset_at", None) == state.reset_at:
                # Same period, and the record was just read: the store may hold what other
                # processes wrote since this one last settled (unbudgeted entities are not refreshed).
                spend = max(spend, float(getattr(record, "spend", 0.0) or 0.0) + state.pending)
            return spend, state.reset_at
        spend = float(getattr(record, "spend", 0.0) or 0.0)
        reset_at = getattr(record, "budget_reset_at", None)
        period = period_seconds(getattr(record, "budget_duration", None))
        if period and reset_at is not None and now >= reset_at:
            return 0.0, next_reset(reset_at, period, now)
        return spend, reset_at

    def _roll(self, state: BudgetState, now: float) -> None:
        if state.period and state.reset_at is not None and now >= state.reset_at:
            if state.closing is None:
                state.closing = state.reset_at
            state.reset_at = next_reset(state.reset_at, state.period, now)
            state.spend = 0.0
            state.pending = 0.0  # belonged to the closed period; its spend-log rows still record it
            state.soft_warned_at = None

    def check(self, entities: Iterable[Entity], now: float) -> tuple[BudgetVerdict | None, list[BudgetVerdict]]:
        """(the first hard refusal or None, soft-budget warnings)."""
        refusal, warnings, _ = self.screen(entities, now)
        return refusal, warnings

    def screen(
        self, entities: Iterable[Entity], now: float
    ) -> tuple[BudgetVerdict | None, list[BudgetVerdict], list[BudgetState] | None]:
        """(the first hard refusal or None, soft-budget warnings, the states with a hard budget or None).

        A budget refuses when its spend has reached it, and also when the spend plus what
        requests in flight hold has (``held`` is set on that verdict: retry once they end).
        """
        warnings: list[BudgetVerdict] = []
        budgeted: list[BudgetState] | None = None
        states = self.states
        for entity in entities:
            state = states.get(entity)
            if state is None:
                continue
            if state.reset_at is not None and now >= state.reset_at:  # (_roll's own test, saving the call)
                self._roll(state, now)
            limit = state.max_budget
            if limit is not None:
                if state.spend >= limit:
                    return BudgetVerdict(entity, state.spend, limit, soft=False), warnings, budgeted
                if state.held and state.spend + state.held >= limit:
                    return BudgetVerdict(entity, state.spend, limit, soft=False, held=state.held), warnings, budgeted
                if budgeted is None:
                    budgeted = [state]
                else:
                    budgeted.append(state)
            if state.soft_budget is not None and state.spend >= state.soft_budget:
                warnings.append(BudgetVerdict(entity, state.spend, state.soft_budget, soft=True))
                if state.soft_warned_at is None:
                    state.soft_warned_at = now
                    log.warning(
                        "%s %s passed its soft budget: spent $%.4f of $%.4f", entity[0], entity[1], state.spend, state.soft_budget
                    )
        return None, warnings, budgeted

    @staticmethod
    def hold(states: Iterable[BudgetState], amount: float) -> None:
        """Reserve ``amount`` USD in each budget (from ``screen``) until ``unhold``."""
        for state in states:
            state.held += amount

    @staticmethod
    def unhold(states: Iterable[BudgetState], amount: float) -> None:
        for state in states:
            held = state.held - amount
            state.held = held if held > 1e-12 else 0.0  # no float residue left holding a budget

    def add(self, entities: Iterable[Entity], cost: float, now: float) -> None:
        if cost <= 0:
            return
        states = self.states
        for entity in entities:
            state = states.get(entity)
            if state is None:
                continue
            if state.reset_at is not None and now >= state.reset_at:  # (_roll's own test, saving the call)
                self._roll(state, now)
            state.spend += cost
            state.pending += cost

    def remaining(self, entity: Entity) -> float | None:
        state = self.states.get(entity)
        if state is None or state.max_budget is None:
            return None
        return max(state.max_budget - state.spend, 0.0)

    def take(self) -> tuple[dict[Entity, float], dict[Entity, tuple[float | None, float]]]:
        """Drain what must be written: (increments, period resets)."""
        increments: dict[Entity, float] = {}
        resets: dict[Entity, tuple[float | None, float]] = {}
        for entity, state in self.states.items():
            if state.pending:
                increments[entity] = state.pending
                state.pending = 0.0
            if state.closing is not None and state.reset_at is not None:
                resets[entity] = (state.closing, state.reset_at)
                state.closing = None
        return increments, resets

    def restore(self, increments: dict[Entity, float], resets: dict[Entity, tuple[float | None, float]]) -> None:
        """A write failed: put the drained amounts back so the next flush retries them."""
        for entity, amount in increments.items():
            state = self.states.get(entity)
            if state is not None:
                state.pending += amount
        for entity, (closing, _) in resets.items():
            state = self.states.get(entity)
            if state is not None and state.closing is None:
                state.closing = closing

    def settle(self, totals: dict[Entity, tuple[float, float | None]]) -> None:
        """The store's totals after a write: they include every process's spend, plus our new pending."""
        for entity, (spend, reset_at) in totals.items():
            state = self.states.get(entity)
            if state is None:
                continue
            if state.closing is not None:
                continue  # we rolled over since this write was taken; the next write settles it
            state.spend = spend + state.pending
            if reset_at is not None:
                state.reset_at = reset_at

    def budgeted(self) -> list[Entity]:
        """Entities with a budget, whose shared spend is worth refreshing from the store."""
        return [e for e, s in self.states.items() if s.max_budget is not None or s.soft_budget is not None]
