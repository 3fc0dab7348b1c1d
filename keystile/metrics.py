"""Prometheus metrics at ``/metrics``: traffic, tokens, spend, gateway overhead, degraded states.

Label children are cached so an update costs about a microsecond. Labels are model names
and status codes only — never keys, aliases or anything secret. With several workers the
``serve`` command sets ``PROMETHEUS_MULTIPROC_DIR`` so every worker's samples are merged.
"""

from __future__ import annotations

import os

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
        self.retries = Counter("keystile_retries", "Upstream attempts after the first, by model group", ["model"], registry=r)
        self.fallbacks = Counter("keystile_fallbacks", "Requests served by a fallback group", ["model", "fallback"], registry=r)
        self.spend_pending_rows = Gauge(
            "keystile_spend_pending_rows", "Spend-log rows waiting to be written", registry=r, multiprocess_mode="livesum"
        )
        self.spend_flush_failures = Counter("keystile_spend_flush_failures", "Spend writes that failed and will be retried", registry=r)
        self.spend_rows_dropped_total = Counter(
            "keystile_spend_rows_dropped", "Spend-log rows dropped because the buffer was full", registry=r
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
        self._request_children: dict[tuple[str, int], Counter] = {}
        self._token_children: dict[str, tuple[Counter, Counter, Counter, Counter, Counter]] = {}

    def request_done(self, model: str, status: int, usage: Usage, cost: float) -> None:
        child = self._request_children.get((model, status))
        if child is None:
            child = self._request_children[(model, status)] = self.requests.labels(model, str(status))
        child.inc()
        if usage.total_tokens:
            children = self._token_children.get(model)
            if children is None:
                children = self._token_children[model] = (
                    self.tokens.labels(model, "input"),
                    self.tokens.labels(model, "output"),
                    self.tokens.labels(model, "cache_read"),
                    self.tokens.labels(model, "cache_write"),
                    self.spend.labels(model),
                )
            children[0].inc(usage.input_tokens)
            children[1].inc(usage.output_tokens)
            children[2].inc(usage.cache_read_tokens)
            children[3].inc(usage.cache_write_tokens)
            if cost:
                children[4].inc(cost)

    def observe_overhead(self, seconds: float) -> None:
        self.overhead.observe(seconds)

    def spend_pending(self, rows: int) -> None:
        self.spend_pending_rows.set(rows)

    def spend_flush_failed(self, rows: int) -> None:
        self.spend_flush_failures.inc()
        self.spend_pending_rows.set(rows)

    def spend_rows_dropped(self, count: int) -> None:
        self.spend_rows_dropped_total.inc(count)

    def set_degraded(self, service: str, degraded: bool) -> None:
        self.degraded.labels(service).set(1 if degraded else 0)

    def key_cache_invalidated(self, source: str) -> None:
        """``redis``: another instance's broadcast; ``poll``: the store's revision counter moved."""
        self.key_cache_invalidations.labels(source).inc()

    def set_cooling_down(self, deployment: str, cooling: bool) -> None:
        """1 from the moment a deployment is taken out until a probe finds it healthy again."""
        self.deployment_cooldown.labels(deployment).set(1 if cooling else 0)

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)
