"""Spend: cost each finished request, charge it in memory, write it to the store in batches.

``Accountant.record`` runs when a response has been sent: it prices the usage, adds the
cost to the budgets in the ``Ledger`` and tokens to the rate-limit windows, and queues a
spend-log row. ``SpendWriter`` drains both to the store about once a second and once more
on shutdown, so a clean stop loses nothing and a crash at most one interval. When the
store is unreachable the batch is kept (bounded) and retried.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import logging
import time
from dataclasses import dataclass
from typing import Callable

from keystile.accounting.pricing import Price, cost_of, load_price_table, price_for
from keystile.accounting.usage import Usage
from keystile.auth import Identity
from keystile.config.model import Deployment, SpendSettings
from keystile.limits.authorize import Authorizer, Grant
from keystile.limits.budgets import Entity, Ledger
from keystile.metrics import Metrics
from keystile.store.database import DatabaseUnavailable
from keystile.store.health import StoreHealth
from keystile.store.repository import SpendBatch, Store
from keystile.store.records import SpendLogRow

log = logging.getLogger("keystile.spend")

MAX_BUFFERED_ROWS = 200_000

# Spend-log ids: a random per-process prefix and a counter — unique across processes and
# restarts without a system call per request (uuid4 reads /dev/urandom every time).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


@dataclass(slots=True)
class Outcome:
    """Everything accounting needs to know about one finished request."""

    identity: Identity
    grant: Grant
    requested_model: str
    group: str | None
    deployment: Deployment | None
    usage: Usage
    status: int
    started: float
    """Wall-clock time the request arrived."""
    latency: float
    stream: bool
    attempts: int
    request_id: str = ""
    request_content: str | None = None
    response_content: str | None = None


class Accountant:
    def __init__(
        self,
        authorizer: Authorizer,
        writer: "SpendWriter",
        metrics: Metrics,
        clock: Callable[[], float],
        prices_file: str | None = None,
    ) -> None:
        self.authorizer = authorizer
        self.writer = writer
        self.metrics = metrics
        self.clock = clock
        self.table = load_price_table(prices_file)
        self._prices: dict[tuple[str, str], Price | None] = {}
        self._unpriced: set[tuple[str, str]] = set()

    def price(self, deployment: Deployment) -> Price | None:
        """Priced by upstream model, so a pass-through (wildcard) deployment prices each model it serves."""
        key = (deployment.id, deployment.model)
        try:
            return self._prices[key]
        except KeyError:
            price = price_for(deployment.base_model or deployment.model, self.table, override=deployment.prices)
            if price is None:
                price = price_for(deployment.model_name, self.table)
            if price is None and key not in self._unpriced:
                self._unpriced.add(key)
                log.warning("no price known for model %r (deployment %s); its requests cost 0", deployment.model, deployment.id)
            if len(self._prices) > 10_000:
                self._prices.clear()
            self._prices[key] = price
            return price

    async def record(self, outcome: Outcome) -> float:
        cost = cost_of(outcome.usage, self.price(outcome.deployment)) if outcome.deployment is not None else 0.0
        await self.authorizer.charge(outcome.grant, cost, outcome.usage.total_tokens, self.clock())
        identity = outcome.identity
        key = identity.key
        self.writer.add_row(
            SpendLogRow(
                request_id=outcome.request_id or next_request_id(),
                ts=outcome.started,
                token_hash=identity.token_hash if key is not None else None,
                key_alias=identity.alias,
                user_id=key.user_id if key is not None else None,
                team_id=key.team_id if key is not None else None,
                model=outcome.requested_model,
                model_group=outcome.group,
                deployment=outcome.deployment.id if outcome.deployment is not None else None,
                provider=outcome.deployment.provider if outcome.deployment is not None else None,
                input_tokens=outcome.usage.input_tokens,
                output_tokens=outcome.usage.output_tokens,
                cache_read_tokens=outcome.usage.cache_read_tokens,
                cache_write_tokens=outcome.usage.cache_write_tokens,
                cost=cost,
                status=outcome.status,
                latency_ms=round(outcome.latency * 1000.0, 3),
                stream=outcome.stream,
                attempts=outcome.attempts,
                request_content=outcome.request_content,
                response_content=outcome.response_content,
            )
        )
        self.metrics.request_done(outcome.group or outcome.requested_model, outcome.status, outcome.usage, cost)
        return cost


class SpendWriter:
    def __init__(
        self,
        store: Store,
        ledger: Ledger,
        settings: SpendSettings,
        metrics: Metrics,
        *,
        shared: bool,
        health: StoreHealth | None = None,
    ) -> None:
        self.store = store
        self.health = health
        """Told about each write's success or failure (readiness, ``keystile_degraded{service="database"}``)."""
        self.ledger = ledger
        self.settings = settings
        self.metrics = metrics
        self.shared = shared
        """Other processes write spend too: refresh budgeted entities' totals on every flush."""
        self.rows: list[SpendLogRow] = []
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._last_prune = 0.0
        self.failures = 0

    def add_row(self, row: SpendLogRow) -> None:
        self.rows.append(row)
        self._trim()

    def _trim(self) -> None:
        """Bound the buffer (the store may be down for long): the oldest rows go first, counted."""
        rows = self.rows
        if len(rows) > MAX_BUFFERED_ROWS:
            dropped = len(rows) - MAX_BUFFERED_ROWS
            del rows[:dropped]
            self.metrics.spend_rows_dropped(dropped)
            log.error("spend log buffer full while the store is unreachable; dropped %d oldest rows", dropped)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="keystile-spend-writer")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.flush_interval)
            await self.flush()
            await self._maybe_prune()

    async def flush(self) -> bool:
        """Write what is pending; True when the store took it (or there was nothing)."""
        async with self._lock:
            increments, resets = self.ledger.take()
            rows, self.rows = self.rows, []
            if self.shared:
                for entity in self.ledger.budgeted():
                    increments.setdefault(entity, 0.0)
            if not increments and not resets and not rows:
                return True
            try:
                totals = await self.store.apply_spend(SpendBatch(increments, resets, rows))
            except Exception as exc:  # the database is down or busy: keep everything for the next try
                self.ledger.restore(increments, resets)
                self.rows[:0] = rows
                self._trim()
                self.failures += 1
                if self.health is not None and isinstance(exc, DatabaseUnavailable):
                    self.health.failed(exc)
                self.metrics.spend_flush_failed(len(self.rows))
                log.warning("spend write failed (%s); %d rows kept in memory for retry", exc, len(self.rows))
                return False
            self.ledger.settle(totals)
            self.metrics.spend_pending(len(self.rows))
            if self.health is not None:
                self.health.ok()
            return True

    async def _maybe_prune(self) -> None:
        retention = self.settings.log_retention
        now = time.time()
        if retention <= 0 or now - self._last_prune < 3600:
            return
        self._last_prune = now
        try:
            removed = await self.store.prune_spend_logs(now - retention)
            if removed:
                log.info("pruned %d spend-log rows older than the retention period", removed)
        except Exception as exc:
            log.warning("pruning spend logs failed: %s", exc)

    async def close(self) -> None:
        """Stop the loop and write everything (SIGTERM path); retries briefly if the store is busy."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for attempt in range(20):
            if await self.flush():
                return
            await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
        log.error("could not write %d spend rows before shutdown", len(self.rows))


def entity_label(entity: Entity) -> str:
    return f"{entity[0]}:{entity[1]}"
