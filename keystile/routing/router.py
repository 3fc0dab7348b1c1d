"""Route: a public model name becomes a sequence of deployments to try.

``Router.plan`` returns a ``RoutePlan`` the inference handler walks, one attempt at a time::

    deployment = plan.next()          # None: nothing left to try
    ...call it...
    plan.failed(retry_after=…)        # counts against it; returns the wait before the next try
    plan.failed(timed_out=True)       # …no answer in time (not counted if the client cut the time)
    plan.succeeded(latency, tokens)   # or: plan.answered(latency) … plan.done(tokens)
    plan.release()                    # always, at the end: closes an attempt left open

Retries stay within the model group (another deployment first, then the same ones again
after an exponential backoff with jitter, or the upstream's ``retry-after`` up to
``retry_after_cap``); when they are used up the plan moves on to the configured fallback
groups, without waiting. The choice inside a group is ``strategies.choose``; the health it
reads and writes is ``health.HealthTable``.

Retries allowed per group: the failed deployment's ``max_retries``, else ``router.num_retries``;
the ``x-keystile-max-retries`` header may lower that (raise it too, up to ``max_retries_cap``,
only with ``router.client_may_raise_retries``).

A client's own overrides never make a deployment look unhealthy: a timeout the client
shortened (``x-keystile-timeout`` below the deployment's) does not count toward its cooldown.
Attempts the upstream received but whose usage keystile never saw (timed out, or broken
before an answer) are counted in ``lost_attempts``, so the request can be charged for them.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace
from fnmatch import fnmatchcase
from typing import Callable

from keystile.config.model import Deployment, RouterSettings, Settings, is_pattern
from keystile.routing.health import CooldownListener, DeploymentHealth, HealthTable
from keystile.routing.strategies import choose

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
"""Upstream statuses worth another attempt; they also count against the deployment's health."""

# Anthropic: "prompt is too long: …", "input length and `max_tokens` exceed context limit: …";
# OpenAI: code "context_length_exceeded", "This model's maximum context length is …".
_CONTEXT_WINDOW_MARKERS = (
    b"prompt is too long",
    b"exceed context limit",
    b"context_length_exceeded",
    b"maximum context length",
    b"context window",
    b"input is too long",  # Bedrock's ValidationException
    b"exceeds the maximum number of tokens",  # Gemini's INVALID_ARGUMENT
)


def is_context_window_error(status: int, body: bytes) -> bool:
    """Anthropic's 400 ``prompt is too long``, OpenAI's ``context_length_exceeded``, Bedrock's and Gemini's own wordings."""
    if status not in (400, 413):
        return False
    lowered = body[:4096].lower()
    return any(marker in lowered for marker in _CONTEXT_WINDOW_MARKERS)


class ModelGroup:
    """The deployments serving one public model name, with their health in the same order."""

    __slots__ = ("name", "deployments", "health", "strategy", "fallbacks", "context_window_fallbacks")

    def __init__(self, name: str, strategy: str) -> None:
        self.name = name
        self.deployments: list[Deployment] = []
        self.health: list[DeploymentHealth] = []
        self.strategy = strategy
        self.fallbacks: tuple[str, ...] = ()
        self.context_window_fallbacks: tuple[str, ...] = ()


class Router:
    def __init__(
        self,
        settings: Settings,
        rng: random.Random | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_cooldown: CooldownListener | None = None,
    ) -> None:
        self.settings: RouterSettings = settings.router
        self.table = HealthTable(self.settings, on_cooldown)
        self.rng = rng or random.Random()
        self.clock = clock
        self.on_cooldown = on_cooldown
        self.configured: tuple[Deployment, ...] = settings.deployments
        """The deployments of the configuration file; ``set_runtime`` adds those of the database."""
        self.runtime: tuple[Deployment, ...] = ()
        self._build(self.configured)

    def _build(self, deployments: tuple[Deployment, ...]) -> None:
        router = self.settings
        strategies = dict(router.strategies)
        groups: dict[str, ModelGroup] = {}
        for deployment in deployments:
            name = deployment.model_name
            group = groups.get(name)
            if group is None:
                group = groups[name] = ModelGroup(name, strategies.get(name, router.strategy))
                group.fallbacks = router.fallbacks_for(name)
                group.context_window_fallbacks = router.fallbacks_for(name, context_window=True)
            group.deployments.append(deployment)
            group.health.append(self.table.of(deployment))
            if self.on_cooldown is not None:
                self.on_cooldown(deployment.id, False)  # every deployment has its gauge from the start
        # Groups named by a pattern ("claude-*", "*") serve any matching name not configured exactly.
        # Each attribute is replaced whole, so a request already walking a plan keeps its group.
        self.groups = groups
        self.patterns = [g for name, g in groups.items() if is_pattern(name)]
        self._matched: dict[str, ModelGroup | None] = {}
        self._concrete: dict[tuple[str, str], Deployment] = {}

    def set_runtime(self, deployments: tuple[Deployment, ...]) -> bool:
        """Serve these deployments (added at run time, from the database) besides the configured ones.

        A deployment keeps its health (cooldown, latency) across the change when its id stays;
        returns whether anything changed.
        """
        if deployments == self.runtime:
            return False
        self.runtime = deployments
        self._build(self.configured + deployments)
        return True

    def deployments(self) -> tuple[Deployment, ...]:
        return self.configured + self.runtime

    def group(self, name: str) -> ModelGroup | None:
        """The group serving ``name``: configured exactly, else the first pattern that matches."""
        group = self.groups.get(name)
        if group is not None or not self.patterns:
            return group
        try:
            return self._matched[name]
        except KeyError:
            pass
        if len(self._matched) > 10_000:  # names are client-chosen: keep the memo bounded
            self._matched.clear()
        group = self._matched[name] = next((g for g in self.patterns if fnmatchcase(name, g.name)), None)
        return group

    def fallbacks_of(self, name: str, group: ModelGroup | None, *, context_window: bool = False) -> tuple[str, ...]:
        """Fallbacks for a request of ``name``: those configured for the name itself (which may be
        served by a pattern group: ``claude-opus-4-1`` by ``claude-*``), else its group's."""
        if group is None:
            return ()
        if group.name != name:
            own = self.settings.fallbacks_for(name, context_window=context_window)
            if own:
                return own
        return group.context_window_fallbacks if context_window else group.fallbacks

    def concrete(self, deployment: Deployment, requested: str) -> Deployment:
        """A pass-through deployment (no upstream ``model``) sends the name the client asked for."""
        if deployment.model:
            return deployment
        key = (deployment.id, requested)
        found = self._concrete.get(key)
        if found is None:
            if len(self._concrete) > 10_000:
                self._concrete.clear()
            found = self._concrete[key] = replace(deployment, model=requested)
        return found

    def plan(self, model_name: str, *, max_retries: int | None = None, timeout: float | None = None) -> "RoutePlan":
        """``max_retries``: the request's own retry count (``x-keystile-max-retries``);
        ``timeout``: its own seconds to the first byte (``x-keystile-timeout``), if it set them."""
        return RoutePlan(self, model_name, max_retries, timeout)

    def health(self, wall_now: float) -> list[dict]:
        """Every deployment's state for ``GET /health``: no upstream calls, just what was seen."""
        now = self.clock()
        out = []
        for group in self.groups.values():
            for deployment, health in zip(group.deployments, group.health):
                out.append(
                    {
                        "id": deployment.id,
                        "model_group": group.name,
                        "provider": deployment.provider,
                        "model": deployment.model,
                        "region": deployment.region,
                        "strategy": group.strategy,
                        **self.table.report(health, now, wall_now),
                    }
                )
        return out


class RoutePlan:
    """One request's walk through its model group, then the fallback groups."""

    __slots__ = (
        "router",
        "requested",
        "max_retries",
        "timeout",
        "group_name",
        "attempts",
        "lost_attempts",
        "_deployment",
        "_name",
        "_groups",
        "_next_group",
        "_group",
        "_group_attempts",
        "_tried",
        "_current",
        "_probe",
        "_primary",
    )

    def __init__(self, router: Router, requested: str, max_retries: int | None, timeout: float | None = None) -> None:
        self.router = router
        self.requested = requested
        self.max_retries = max_retries
        self.timeout = timeout
        """The request's own first-byte timeout, or None: each deployment's."""
        self.attempts = 0
        self.lost_attempts = 0
        """Attempts the upstream received (and may bill) whose usage keystile never saw."""
        self._deployment: Deployment | None = None
        group = router.group(requested)
        self.group_name = group.name if group is not None else requested
        self._primary = group
        self._name = requested
        """The model name the current group serves (a fallback's own name once one is tried)."""
        self._groups: tuple[str, ...] = router.fallbacks_of(requested, group)
        self._next_group = 0
        self._group = group
        self._group_attempts = 0
        self._tried = 0
        self._current: DeploymentHealth | None = None
        self._probe = False

    @property
    def fallback(self) -> bool:
        """The current group is not the one the client asked for."""
        primary = self._primary
        return self.group_name != (primary.name if primary is not None else self.requested)

    def next(self) -> Deployment | None:
        """The deployment for the next attempt (the previous one must have been closed)."""
        group = self._group
        if group is None:
            group = self._advance()
            if group is None:
                return None
        router = self.router
        now = router.clock()
        deployments = group.deployments
        index = choose(group.strategy, deployments, group.health, self._tried, now, router.rng.random() if len(deployments) > 1 else 0.0)
        health = group.health[index]
        self._tried |= 1 << index
        self._group_attempts += 1
        self.attempts += 1
        self._current = health
        self._probe = router.table.started(health, now)
        deployment = self._deployment = router.concrete(deployments[index], self._name)
        return deployment

    def answered(self, latency: float | None) -> None:
        """The current deployment has started a good answer (``latency``: seconds until it did)."""
        if self._current is not None:
            self.router.table.succeeded(self._current, latency, self.router.clock())

    def done(self, tokens: int = 0) -> None:
        """Close the current attempt (idempotent); ``tokens`` count toward the deployment's tpm."""
        health = self._current
        if health is not None:
            self._current = None
            self.router.table.released(health, self._probe, tokens)

    def succeeded(self, latency: float | None, tokens: int = 0) -> None:
        self.answered(latency)
        self.done(tokens)

    def release(self) -> None:
        """End of the request: an attempt still open ends without a verdict (client gone, error)."""
        self.done()

    def failed(self, *, retry_after: float | None = None, timed_out: bool = False, received: bool = False) -> float:
        """The current attempt failed in a way that counts against the deployment.

        ``timed_out``: no first byte within the timeout (the upstream had the whole request);
        when the request had shortened that timeout itself, the failure is the client's and
        does not count against the deployment. ``received``: the upstream had the request but
        its answer broke before keystile saw its usage. Either counts in ``lost_attempts``.

        Closes the attempt and returns how long to wait before ``next()``: nothing when
        another deployment of the group (or a fallback group) is next; otherwise the
        exponential backoff with jitter, at least the upstream's ``retry-after`` (capped).
        """
        health = self._current
        if health is None:
            return 0.0
        router = self.router
        settings = router.settings
        now = router.clock()
        if timed_out or received:
            self.lost_attempts += 1
        if not (timed_out and self._client_shortened_timeout()):
            router.table.failed(health, now)
        self.done()
        group = self._group
        if group is None:
            return 0.0
        limit = group.deployments[group.health.index(health)].max_retries
        if limit is None:
            limit = settings.num_retries
        if self.max_retries is not None:
            asked = min(self.max_retries, settings.max_retries_cap)
            limit = asked if settings.client_may_raise_retries else min(asked, limit)
        if self._group_attempts > limit:
            self._group = None  # retries used up: on to the fallbacks, without waiting
            return 0.0
        for i, other in enumerate(group.health):
            if not (self._tried >> i) & 1 and other.available(now):
                return 0.0  # a fresh deployment is next; the wait was about the one that failed
        delay = settings.retry_backoff * (2 ** (self._group_attempts - 1)) * (0.5 + router.rng.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, settings.retry_after_cap))
        return delay

    def _client_shortened_timeout(self) -> bool:
        """The request's own timeout is below what the current deployment is configured to wait."""
        deployment = self._deployment
        if self.timeout is None or deployment is None:
            return False
        return self.timeout < (deployment.timeout or self.router.settings.timeout)

    def context_window_exceeded(self) -> bool:
        """The prompt is too long for the current group: switch to its context-window fallbacks."""
        group = self._group
        targets = self.router.fallbacks_of(self._name, group, context_window=True)
        if not targets:
            return False
        self.done()
        self._groups = targets
        self._next_group = 0
        self._group = None
        return True

    def _advance(self) -> ModelGroup | None:
        router = self.router
        while self._next_group < len(self._groups):
            name = self._groups[self._next_group]
            self._next_group += 1
            group = router.group(name)  # a fallback may name a model a pattern group serves
            if group is not None and group.deployments:
                self._group = group
                self._name = name
                self.group_name = group.name
                self._group_attempts = 0
                self._tried = 0
                return group
        return None
