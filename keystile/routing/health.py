"""Deployment health: in-flight requests, latency, recent failures and cooldowns, per deployment.

The router reads it to choose a deployment and writes it as each attempt ends. It all lives
in one ``HealthTable`` per process; times are ``time.monotonic()`` seconds.

A deployment is in one of three states::

    healthy ──(cooldown_failures failures within cooldown_window)──► cooling down
       ▲                                                                 │ cooldown_seconds pass
       └──────────────── the probe succeeds ◄── probing (one request) ◄──┘
                         the probe fails ──► cooling down again

Only failures that say something about the deployment count (429, 5xx, 529, timeouts,
connection errors); a client's 4xx does not, nor a timeout the client shortened itself
(``RoutePlan.failed`` decides). A request that ends without a verdict (client gone, 4xx
answer) just leaves, and if it was the probe, the next request probes instead.

Sharing across processes (Redis) would implement the same four transitions
(``started`` / ``succeeded`` / ``failed`` / ``released``) against shared keys, but only
the rare ones need to travel: entering and leaving cooldown. In-flight counts, latency and
per-minute usage stay local estimates, so the healthy path never waits on the network.
This module has no Redis code; ``HealthTable`` is the seam.
"""

from __future__ import annotations

from typing import Callable

from keystile.config.model import Deployment, RouterSettings

LATENCY_ALPHA = 0.3
"""Weight of the newest sample in the latency average (higher: reacts faster, noisier)."""
LATENCY_STALE = 60.0
"""Seconds after which a deployment's latency average is forgotten. The ``latency`` strategy
sends traffic only to the fastest, so a deployment that was once slow would otherwise never
be measured again; with a stale average it counts as unmeasured and gets the next request."""
ERROR_ALPHA = 0.1
"""Weight of the newest outcome in the error-rate average (reported by /health)."""

CooldownListener = Callable[[str, bool], None]
"""Called with (deployment id, cooling) when a deployment enters cooldown or recovers."""


class DeploymentHealth:
    """What the router knows about one deployment right now. Mutated only by ``HealthTable``."""

    __slots__ = (
        "id",
        "rpm",
        "tpm",
        "inflight",
        "latency",
        "latency_at",
        "error_rate",
        "recent_failures",
        "cooldown_until",
        "last_failure",
        "probing",
        "requests",
        "failures",
        "minute",
        "minute_requests",
        "minute_tokens",
    )

    def __init__(self, deployment_id: str, *, rpm: int | None = None, tpm: int | None = None) -> None:
        self.id = deployment_id
        self.rpm = rpm
        self.tpm = tpm
        self.inflight = 0
        self.latency = 0.0
        """Average seconds until the response started (EWMA); 0.0 = no sample yet."""
        self.latency_at = 0.0
        """When the last latency sample came in (router clock)."""
        self.error_rate = 0.0
        self.recent_failures: list[float] = []
        """Times of failures within the cooldown window (while healthy)."""
        self.cooldown_until = 0.0
        """0.0: healthy. Otherwise out of rotation until then, and probed after."""
        self.last_failure = 0.0
        self.probing = False
        """The one request let through after a cooldown is under way."""
        self.requests = 0
        self.failures = 0
        self.minute = -1
        self.minute_requests = 0
        self.minute_tokens = 0

    def available(self, now: float) -> bool:
        """May take a request: healthy, or its cooldown is over and no probe is under way."""
        until = self.cooldown_until
        return until == 0.0 or (now >= until and not self.probing)

    def at_capacity(self, now: float) -> bool:
        """Its configured rpm or tpm is used up for the current minute."""
        if self.minute != int(now // 60.0):
            return False
        return (self.rpm is not None and self.minute_requests >= self.rpm) or (
            self.tpm is not None and self.minute_tokens >= self.tpm
        )

    def utilisation(self, now: float) -> float:
        """The larger of rpm and tpm use this minute, as a fraction of the limit (0 when unlimited)."""
        if self.minute != int(now // 60.0):
            return 0.0
        used = 0.0
        if self.rpm is not None:
            used = self.minute_requests / self.rpm
        if self.tpm is not None:
            used = max(used, self.minute_tokens / self.tpm)
        return used

    def state(self, now: float) -> str:
        if self.cooldown_until == 0.0:
            return "healthy"
        if now < self.cooldown_until:
            return "cooling_down"
        return "probing"

    def __repr__(self) -> str:
        return f"DeploymentHealth({self.id!r}, inflight={self.inflight}, cooldown_until={self.cooldown_until})"


class HealthTable:
    """Every deployment's ``DeploymentHealth`` in this process, and the rules that change them."""

    __slots__ = ("failures_to_cool", "window", "cooldown", "on_cooldown", "_by_id")

    def __init__(self, settings: RouterSettings, on_cooldown: CooldownListener | None = None) -> None:
        self.failures_to_cool = max(settings.cooldown_failures, 1)
        self.window = settings.cooldown_window
        self.cooldown = settings.cooldown_seconds
        self.on_cooldown = on_cooldown
        self._by_id: dict[str, DeploymentHealth] = {}

    def of(self, deployment: Deployment) -> DeploymentHealth:
        health = self._by_id.get(deployment.id)
        if health is None:
            health = self._by_id[deployment.id] = DeploymentHealth(deployment.id, rpm=deployment.rpm, tpm=deployment.tpm)
        return health

    def all(self) -> list[DeploymentHealth]:
        return list(self._by_id.values())

    # --- the four transitions -----------------------------------------------------------------

    def started(self, health: DeploymentHealth, now: float) -> bool:
        """An attempt begins; True if it is the probe after a cooldown."""
        health.inflight += 1
        health.requests += 1
        probe = health.cooldown_until != 0.0 and now >= health.cooldown_until and not health.probing
        if probe:
            health.probing = True
        if health.rpm is not None or health.tpm is not None:
            minute = int(now // 60.0)
            if minute != health.minute:
                health.minute = minute
                health.minute_requests = 0
                health.minute_tokens = 0
            health.minute_requests += 1
        return probe

    def succeeded(self, health: DeploymentHealth, latency: float | None, now: float) -> None:
        """The deployment answered well (``latency``: seconds until the answer started).

        Only an answer after the cooldown ended (the probe) ends it: one that was under way
        when the deployment was taken out, or a last resort while it is out, does not.
        """
        if latency is not None:
            fresh = health.latency == 0.0 or now - health.latency_at > LATENCY_STALE
            health.latency = latency if fresh else health.latency + LATENCY_ALPHA * (latency - health.latency)
            health.latency_at = now
        if health.error_rate:
            health.error_rate -= ERROR_ALPHA * health.error_rate
        if health.cooldown_until != 0.0 and now >= health.cooldown_until:
            health.cooldown_until = 0.0
            health.probing = False
            health.recent_failures.clear()
            if self.on_cooldown is not None:
                self.on_cooldown(health.id, False)

    def failed(self, health: DeploymentHealth, now: float) -> bool:
        """A failure that counts against the deployment; True if it is cooling down now."""
        health.failures += 1
        health.last_failure = now
        health.error_rate += ERROR_ALPHA * (1.0 - health.error_rate)
        if health.cooldown_until != 0.0:
            if now < health.cooldown_until:
                return True  # a request chosen before the cooldown began (or as a last resort)
            health.probing = False  # the probe failed: straight back into cooldown
            health.cooldown_until = now + self.cooldown
            return True
        recent = health.recent_failures
        recent.append(now)
        horizon = now - self.window
        while recent and recent[0] < horizon:
            del recent[0]
        if len(recent) < self.failures_to_cool:
            return False
        recent.clear()
        health.cooldown_until = now + self.cooldown
        if self.on_cooldown is not None:
            self.on_cooldown(health.id, True)
        return True

    def released(self, health: DeploymentHealth, probe: bool, tokens: int = 0) -> None:
        """An attempt is over, whatever its verdict (one call per ``started``)."""
        health.inflight -= 1
        if probe and health.probing:
            health.probing = False  # the probe ended without a verdict: let the next request probe
        if tokens and health.tpm is not None:
            health.minute_tokens += tokens

    # --- reporting ----------------------------------------------------------------------------

    def report(self, health: DeploymentHealth, now: float, wall_now: float) -> dict:
        """``/health``'s view of one deployment; ``wall_now`` turns monotonic times into epochs."""
        until = health.cooldown_until
        out: dict = {
            "state": health.state(now),
            "cooling_down_until": None if until == 0.0 or now >= until else round(wall_now + until - now, 3),
            "inflight": health.inflight,
            "latency_ms": round(health.latency * 1000.0, 1) if health.latency else None,
            "error_rate": round(health.error_rate, 3),
            "recent_failures": sum(1 for t in health.recent_failures if t >= now - self.window),
            "requests": health.requests,
            "failures": health.failures,
            "last_failure": round(wall_now - (now - health.last_failure), 3) if health.last_failure else None,
        }
        if health.rpm is not None or health.tpm is not None:
            current = health.minute == int(now // 60.0)
            out["minute_requests"] = health.minute_requests if current else 0
            out["minute_tokens"] = health.minute_tokens if current else 0
        return out
