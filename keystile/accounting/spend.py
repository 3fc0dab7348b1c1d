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
import os
import secrets
import logging
import time
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
# ``keystile serve`` imports this module before its server starts the workers. Workers forked
# from that process (granian's were) would inherit the prefix, hand out the same ids, and the
# idempotent spend-log insert would drop one worker's rows as duplicates — it did — so every
# forked child draws its own. (uvicorn's workers are fresh interpreters and draw one anyway.)
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)


def _new_id_sequence() -> None:
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = secrets.token_hex(8)
    _ID_COUNTER = itertools.count(1)


os.register_at_fork(after_in_child=_new_id_sequence)


def next_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"


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

    async def record(
        self,
        identity: Identity,
        grant: Grant,
        deployment: Deployment | None,
        usage: Usage,
        *,
        request_id: str,
        requested_model: str,
        group: str | None,
        status: int,
        started: float,
        latency: float,
        stream: bool,
        attempts: int,
        request_content: str | None = None,
        response_content: str | None = None,
    ) -> float:
        """Charge one finished request and queue its spend-log row; returns its cost.

        ``started`` is the wall-clock time the request arrived, ``latency`` its duration in seconds.
        """
        cost = cost_of(usage, self.price(deployment)) if deployment is not None else 0.0
        authorizer = self.authorizer
        if authorizer.in_memory:
            authorizer.charge_now(grant, cost, usage.total_tokens, self.clock())
        else:
            await authorizer.charge(grant, cost, usage.total_tokens, self.clock())
        self.writer.add_row(
            _log_row(identity, request_id, started, requested_model, group, deployment, usage, cost, status, latency,
                     stream, attempts, request_content, response_content)
        )
        self.metrics.request_done(group or requested_model, status, usage, cost)
        return cost

    def refused(
        self,
        identity: Identity,
        *,
        request_id: str,
        requested_model: str,
        group: str | None,
        status: int,
        started: float,
        latency: float,
        stream: bool,
    ) -> None:
        """Log a request refused after authentication (rate limit, budget, model, malformed body).

        Nothing is charged; the row (cost 0, no deployment, 0 attempts) lets a platform team see
        who was turned away and why. The metric is labelled by the served group only: model
        names the gateway does not serve are client-chosen and would make labels unbounded.
        """
        self.writer.add_row(
            _log_row(identity, request_id, started, requested_model, group, None, _NO_USAGE, 0.0, status, latency, stream, 0)
        )
        self.metrics.request_done(group or UNKNOWN_MODEL_LABEL, status, _NO_USAGE, 0.0)


UNKNOWN_MODEL_LABEL = "(not served)"
_NO_USAGE = Usage()


def _log_row(
    identity: Identity,
    request_id: str,
    started: float,
    requested_model: str,
    group: str | None,
    deployment: Deployment | None,
    usage: Usage,
    cost: float,
    status: int,
    latency: float,
    stream: bool,
    attempts: int,
    request_content: str | None = None,
    response_content: str | None = None,
) -> SpendLogRow:
    """One spend-log row. Positional, in SpendLogRow's field order: a third of the cost of 21
    keywords, on every request."""
    key = identity.key
    return SpendLogRow(
        request_id,
        started,  # ts
        identity.token_hash if key is not None else None,
        identity.alias,
        key.user_id if key is not None else None,
        key.team_id if key is not None else None,
        requested_model,  # model
        group,  # model_group
        deployment.id if deployment is not None else None,
        deployment.provider if deployment is not None else None,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        cost,
        status,
        round(latency * 1000.0, 3),  # latency_ms
        stream,
        attempts,
        request_content,
        response_content,
    )


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
        rows = self.rows
        rows.append(row)
        if len(rows) > MAX_BUFFERED_ROWS:
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
