"""The connection to the shared Redis, and whether it is answering right now.

Everything keystile keeps in Redis (rate-limit counters, budget reservations, the key-cache
broadcast) goes through one ``RedisLink``. A failed call marks the link down — a warning in
the log, ``keystile_degraded{service="redis"} 1`` — and callers fall back to this instance's
own state instead of refusing traffic. A probe pings once a second while the link is down;
the first answer marks it up again and runs the recovery hooks.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from keystile.aio import stop_tasks
from keystile.metrics import Metrics

log = logging.getLogger("keystile.redis")

CALL_TIMEOUT = 0.5
"""Seconds a Redis call may take before the link counts as down (a local Redis answers in <1 ms)."""
PROBE_INTERVAL = 1.0

REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, asyncio.TimeoutError)


class RedisLink:
    def __init__(self, url: str, metrics: Metrics, prefix: str, *, timeout: float = CALL_TIMEOUT) -> None:
        self.url = url
        self.metrics = metrics
        self.prefix = prefix
        """Every key and channel starts with this: one Redis can serve several keystile deployments."""
        # One retry with no pause replaces a pooled connection Redis closed (a restart) without
        # failing the call; anything slower than ``timeout`` is an outage, not a wait.
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 1)
        )
        self.up = False
        self._recovery_hooks: list[Callable[[], Awaitable[None]]] = []
        self._probe: asyncio.Task | None = None
        self._warned = False

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    def on_recover(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` each time the link comes back after an outage."""
        self._recovery_hooks.append(hook)

    async def start(self) -> None:
        """Connect if Redis answers; start degraded (not failed) if it does not."""
        try:
            await self.client.ping()
        except REDIS_FAILURES as exc:
            self.failed(exc)
        else:
            self.up = True
            self.metrics.set_degraded("redis", False)
            log.info("connected to Redis: rate limits, budgets and key invalidation are shared")
        self._probe = asyncio.create_task(self._run_probe(), name="keystile-redis-probe")

    def failed(self, exc: BaseException) -> None:
        """A call failed: use per-instance state until the probe sees Redis again."""
        if self.up or not self._warned:
            log.warning(
                "Redis unreachable (%s: %s); using per-instance rate limits and budgets until it returns",
                type(exc).__name__,
                exc,
            )
            self._warned = True
        self.up = False
        self.metrics.set_degraded("redis", True)

    async def _run_probe(self) -> None:
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            if self.up:
                continue
            try:
                await self.client.ping()
            except REDIS_FAILURES:
                continue
            await self._recovered()

    async def _recovered(self) -> None:
        self.up = True
        self._warned = False
        self.metrics.set_degraded("redis", False)
        log.warning("Redis is reachable again; rate limits, budgets and key invalidation are shared again")
        for hook in self._recovery_hooks:
            try:
                await hook()
            except REDIS_FAILURES as exc:
                self.failed(exc)
                return
            except Exception:
                log.exception("Redis recovery hook failed")

    async def close(self) -> None:
        await stop_tasks(self._probe)
        try:
            await self.client.aclose()
        except REDIS_FAILURES:
            pass
