"""Prometheus metrics at ``/metrics``: traffic, tokens, spend, gateway overhead, degraded states.

The per-request figures (requests, tokens, spend, overhead) are tallied in plain dicts and
lists on the hot path — a few additions — and folded into the Prometheus objects once a
second and before every scrape. Labels are model names and status codes only — never
keys, aliases or anything secret. With several workers the ``serve`` command sets
``PROMETHEUS_MULTIPROC_DIR`` so every worker's samples are merged.
"""

from __future__ import annotations

import os
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from keystile.accounting.usage import Usage

OVERHEAD_BUCKETS = (0.00005, 0.0001, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("keystile_requests", "Inference requests by model group and HTTP status", ["model", "status"], registry=r)
        self.tokens = Counter("keystile_tokens", "Tokens by model group and kind", ["model", "kind"], registry=r)
        self.spend = Counter("keystile_spend_usd", "Spend in USD by model group", ["model"], registry=r)
        self.overhead = Histogram(
            "keystile_overhead_seconds",
            "Time keystile spent on a request, excluding the wait for the upstream",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter(
            "keystile_upstream_errors", "Failed upstream attempts by deployment and reason", ["deployment", "reason"], registry=r
        )
        self.store_calls = Counter(
            "keystile_store_calls", "Database round trips by kind (read: a query; write: a statement or transaction)", ["kind"],
            registry=r,
        )
        self.retries = Counter("keystile_retries", "Upstream attempts after the first, by model group", ["model"], registry=r)
        self.fallbacks = Counter("keystile_fallbacks", "Requests served by a fallback group", ["model", "fallback"], registry=r)
        self.spend_pending_rows = Gauge(
            "keystile_spend_pending_rows", "Spend-log rows waiting to be written", registry=r, multiprocess_mode="livesum"
        )
        self.spend_flush_failures = Counter("keystile_spend_flush_failures", "Spend writes that failed and will be retried", registry=r)
        self.spend_rows_dropped_total = Counter(
            "keystile_spend_rows_dropped", "Spend-log rows dropped because the buffer was full", registry=r
        )
        self.spend_quarantined_total = Counter(
            "keystile_spend_quarantined",
            "Spend-log rows (kind=row) or spend increments (kind=spend) the database refused for a reason other than an outage: logged and dropped, never retried",
            ["kind"],
            registry=r,
        )
        self.degraded = Gauge(
            "keystile_degraded", "1 while a backing service is unreachable", ["service"], registry=r, multiprocess_mode="max"
        )
        self.deployment_cooldown = Gauge(
            "keystile_deployment_cooling_down", "1 while a deployment is in cooldown", ["deployment"], registry=r, multiprocess_mode="max"
        )
        self.key_cache_invalidations = Counter(
            "keystile_key_cache_invalidations", "Key-cache drops caused by changes made elsewhere, by how they arrived", ["source"], registry=r
        )
        # Tallies since the last fold: (model, status) → requests; model → [input, output,
        # cache_read, cache_write, usd]; overhead bucket counts (last one: +Inf) and sum.
        self._requests: dict[tuple[str, int], int] = {}
        self._usage: dict[str, list[float]] = {}
        self._overhead_counts = [0] * (len(OVERHEAD_BUCKETS) + 1)
        self._overhead_sum = 0.0

    def request_done(self, model: str, status: int, usage: Usage, cost: float) -> None:
        key = (model, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        if usage.total_tokens or cost:
            tally = self._usage.get(model)
            if tally is None:
                tally = self._usage[model] = [0, 0, 0, 0, 0.0]
            tally[0] += usage.input_tokens
            tally[1] += usage.output_tokens
            tally[2] += usage.cache_read_tokens
            tally[3] += usage.cache_write_tokens
            tally[4] += cost

    def observe_overhead(self, seconds: float) -> None:
        self._overhead_counts[bisect_left(OVERHEAD_BUCKETS, seconds)] += 1
        self._overhead_sum += seconds

    def fold(self) -> None:
        """Move the tallies into the Prometheus objects (once a second, and before a scrape)."""
        requests, self._requests = self._requests, {}
        for (model, status), count in requests.items():
            self.requests.labels(model, str(status)).inc(count)
        usage, self._usage = self._usage, {}
        for model, (tokens_in, tokens_out, cache_read, cache_write, usd) in usage.items():
            for kind, amount in (("input", tokens_in), ("output", tokens_out), ("cache_read", cache_read), ("cache_write", cache_write)):
                if amount:
                    self.tokens.labels(model, kind).inc(amount)
            if usd:
                self.spend.labels(model).inc(usd)
        counts, self._overhead_counts = self._overhead_counts, [0] * (len(OVERHEAD_BUCKETS) + 1)
        if any(counts):
            # prometheus_client has no bulk observe; its buckets are per-bound counters (le, not
            # cumulative), which is exactly what was counted here.
            for index, count in enumerate(counts):
                if count:
                    self.overhead._buckets[index].inc(count)
            self.overhead._sum.inc(self._overhead_sum)
            self._overhead_sum = 0.0

    def store_call(self, kind: str) -> None:
        self.store_calls.labels(kind).inc()

    def spend_pending(self, rows: int) -> None:
        self.spend_pending_rows.set(rows)

    def spend_flush_failed(self, rows: int) -> None:
        self.spend_flush_failures.inc()
        self.spend_pending_rows.set(rows)

    def spend_rows_dropped(self, count: int) -> None:
        self.spend_rows_dropped_total.inc(count)

    def spend_quarantined(self, kind: str) -> None:
        self.spend_quarantined_total.labels(kind).inc()

    def set_degraded(self, service: str, degraded: bool) -> None:
        self.degraded.labels(service).set(1 if degraded else 0)

    def key_cache_invalidated(self, source: str) -> None:
        """``redis``: another instance's broadcast; ``poll``: the store's revision counter moved."""
        self.key_cache_invalidations.labels(source).inc()

    def set_cooling_down(self, deployment: str, cooling: bool) -> None:
        """1 from the moment a deployment is taken out until a probe finds it healthy again."""
        self.deployment_cooldown.labels(deployment).set(1 if cooling else 0)

    def render(self) -> bytes:
        self.fold()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
