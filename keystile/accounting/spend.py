"""Spend: cost each finished request, charge it in memory, write it to the store in batches.

``Accountant.record`` runs when a response has been sent: it prices the usage, adds the
cost to the budgets in the ``Ledger`` and tokens to the rate-limit windows, and queues a
spend-log row. ``SpendWriter`` drains both to the store about once a second and once more
on shutdown, so a clean stop loses nothing and a crash at most one interval. When the
store is unreachable the batch is kept (bounded) and retried; when the store refuses a batch
for any other reason, it is written in parts so that one bad row cannot hold back the rest.
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
from keystile.accounting.refusals import RefusalSampler
from keystile.accounting.usage import Usage
from keystile.auth import Identity
from keystile.config.model import Deployment, SpendSettings
from keystile.limits.authorize import Authorizer, Grant
from keystile.limits.budgets import Entity, Ledger
from keystile.metrics import Metrics
from keystile.store.columns import NAME_CHARS
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
        call_type: str | None = None,
        tags: list[str] | None = None,
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
                     stream, attempts, request_content, response_content, call_type, tags)
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
        call_type: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        """Log a request refused after authentication (rate limit, budget, model, malformed body).

        Nothing is charged; the row (cost 0, no deployment, 0 attempts) lets a platform team see
        who was turned away and why. Rows are sampled per key (``accounting.refusals``) so a key
        cannot fill the database with refusals. The metric counts every refusal, labelled by the
        served group only: model names the gateway does not serve are client-chosen and would
        make labels unbounded.
        """
        self.writer.add_refusal(
            identity.key_id,
            _log_row(identity, request_id, started, requested_model, group, None, _NO_USAGE, 0.0, status, latency, stream, 0,
                     None, None, call_type, tags),
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
    call_type: str | None = None,
    tags: list[str] | None = None,
) -> SpendLogRow:
    """One spend-log row. Positional, in SpendLogRow's field order: a third of the cost of 24
    keywords, on every request. The model name is the client's and may be megabytes long:
    cut here, so the buffer never holds more than the column keeps."""
    key = identity.key
    if len(requested_model) > NAME_CHARS:
        requested_model = requested_model[:NAME_CHARS]
    return SpendLogRow(
        request_id,
        started,  # ts
        identity.key_id if key is not None else None,
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
        1,  # requests
        call_type,
        tags,
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
        self.refusals = RefusalSampler()
        self._task: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._last_prune = 0.0
        self.failures = 0
        self.quarantined = 0
        """Rows and increments the store refused for good (logged, counted, dropped)."""

    def add_row(self, row: SpendLogRow) -> None:
        rows = self.rows
        rows.append(row)
        if len(rows) > MAX_BUFFERED_ROWS:
            self._trim()

    def add_refusal(self, key_id: str, row: SpendLogRow) -> None:
        """Queue a refusal's row, unless its key is being refused often: then it is counted into a later row."""
        sampled = self.refusals.admit(key_id, row, time.monotonic())
        if sampled is not None:
            self.add_row(sampled)

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

    async def flush(self, *, final: bool = False) -> bool:
        """Write what is pending; True when the store took it (or there was nothing).

        ``final`` (shutdown) also writes the rows that report refusals still held back.
        """
        async with self._lock:
            for row in self.refusals.due(time.monotonic(), everything=final):
                self.add_row(row)
            increments, resets = self.ledger.take()
            rows, self.rows = self.rows, []
            if self.shared:
                for entity in self.ledger.budgeted():
                    increments.setdefault(entity, 0.0)
            if not increments and not resets and not rows:
                return True
            try:
                try:
                    totals = await self.store.apply_spend(SpendBatch(increments, resets, rows))
                except Exception as exc:
                    if is_outage(exc):
                        raise _Unwritten(exc, increments, resets, rows) from exc
                    log.warning("the database refused a spend batch (%s); writing it in parts", _describe(exc))
                    totals = await self._write_in_parts(increments, resets, rows)
            except _Unwritten as unwritten:  # the database is down or busy: keep what is unwritten for the next try
                self.ledger.restore(unwritten.increments, unwritten.resets)
                self.rows[:0] = unwritten.rows
                self._trim()
                self.failures += 1
                if self.health is not None and isinstance(unwritten.cause, DatabaseUnavailable):
                    self.health.failed(unwritten.cause)
                self.metrics.spend_flush_failed(len(self.rows))
                log.warning("spend write failed (%s); %d rows kept in memory for retry", unwritten.cause, len(self.rows))
                return False
            self.ledger.settle(totals)
            self.metrics.spend_pending(len(self.rows))
            if self.health is not None:
                self.health.ok()
            return True

    async def _write_in_parts(
        self, increments: dict[Entity, float], resets: dict, rows: list[SpendLogRow]
    ) -> dict[Entity, tuple[float, float | None]]:
        """A batch the database refused, not for an outage: spend first, then the rows in halves
        down to single rows. What the database still refuses on its own is quarantined (logged
        with its request id, counted, dropped), so it can never block the rest again. An outage
        midway raises ``_Unwritten`` with exactly what was not written."""
        totals: dict[Entity, tuple[float, float | None]] = {}
        entities = list(dict.fromkeys([*resets, *increments]))
        if entities:
            try:
                totals.update(await self.store.apply_spend(SpendBatch(increments, resets, [])))
            except Exception as exc:
                if is_outage(exc):
                    raise _Unwritten(exc, increments, resets, rows) from exc
                for n, entity in enumerate(entities):
                    one = SpendBatch(
                        {entity: increments[entity]} if entity in increments else {},
                        {entity: resets[entity]} if entity in resets else {},
                        [],
                    )
                    try:
                        totals.update(await self.store.apply_spend(one))
                    except Exception as exc:
                        if is_outage(exc):
                            rest = entities[n:]
                            raise _Unwritten(
                                exc,
                                {e: increments[e] for e in rest if e in increments},
                                {e: resets[e] for e in rest if e in resets},
                                rows,
                            ) from exc
                        self._quarantine("spend", f"{entity_label(entity)} +{increments.get(entity, 0.0)!r} USD", exc)
        pending = [rows] if rows else []
        while pending:
            chunk = pending.pop()
            try:
                await self.store.apply_spend(SpendBatch({}, {}, chunk))
            except Exception as exc:
                if is_outage(exc):
                    raise _Unwritten(exc, {}, {}, [row for part in (*pending, chunk) for row in part]) from exc
                if len(chunk) == 1:
                    row = chunk[0]
                    self._quarantine("row", f"spend-log row of request {row.request_id} (key {row.key_id}, model {row.model[:40]!r})", exc)
                else:
                    half = len(chunk) // 2
                    pending += [chunk[half:], chunk[:half]]  # the first half is written first
        return totals

    def _quarantine(self, kind: str, what: str, exc: BaseException) -> None:
        self.quarantined += 1
        self.metrics.spend_quarantined(kind)
        log.error("quarantined %s: the database refused it (%s); it is dropped, not retried", what, _describe(exc))

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
            if await self.flush(final=True):
                return
            await asyncio.sleep(min(0.25 * (attempt + 1), 2.0))
        log.error("could not write %d spend rows before shutdown", len(self.rows))


class _Unwritten(Exception):
    """An outage stopped a flush; carries what it had not written yet, to be kept for the next one."""

    def __init__(self, cause: BaseException, increments: dict, resets: dict, rows: list[SpendLogRow]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.increments = increments
        self.resets = resets
        self.rows = rows


def is_outage(exc: BaseException) -> bool:
    """The database could not be reached or was busy: worth retrying the same batch later.

    Anything else (a value it refuses, a constraint, a bug) would fail again the same way.
    """
    return isinstance(exc, (DatabaseUnavailable, OSError, asyncio.TimeoutError))


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def entity_label(entity: Entity) -> str:
    return f"{entity[0]}:{entity[1]}"
