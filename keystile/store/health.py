"""Whether the database answered the last time anyone asked it, and since when it has not.

The key cache, the spend writer and the readiness check report here; the cache uses it to
stop waiting on a database that just failed (one attempt per second, not one per request),
and readiness and ``keystile_degraded{service="database"}`` show the outage.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from keystile.metrics import Metrics

log = logging.getLogger("keystile.store")

RETRY_INTERVAL = 1.0
"""After a failure, requests skip the database for this long and use what is cached."""


class StoreHealth:
    def __init__(self, metrics: Metrics, clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.clock = clock
        self.down_since: float | None = None
        self.last_error = ""
        self._last_failure = 0.0

    @property
    def down(self) -> bool:
        return self.down_since is not None

    def outage_seconds(self) -> float:
        return 0.0 if self.down_since is None else self.clock() - self.down_since

    def failed(self, exc: BaseException) -> None:
        now = self.clock()
        self._last_failure = now
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.down_since is None:
            self.down_since = now
            self.metrics.set_degraded("database", True)
            log.warning(
                "database unreachable (%s); serving cached keys, keeping spend in memory until it returns", self.last_error
            )

    def ok(self) -> None:
        if self.down_since is not None:
            log.warning("database reachable again after %.1fs", self.clock() - self.down_since)
            self.down_since = None
            self.metrics.set_degraded("database", False)

    def backing_off(self) -> bool:
        """True right after a failure: don't make this request wait on the database again."""
        return self.down_since is not None and self.clock() - self._last_failure < RETRY_INTERVAL
