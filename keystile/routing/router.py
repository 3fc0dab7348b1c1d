"""Route: a public model name becomes a sequence of deployments to try.

``Router.plan`` returns a ``RoutePlan`` the inference handler walks: ``next()`` names the
deployment to call, ``failed()`` says whether (and after how long) to try again, and
``succeeded()`` records the outcome. Retries stay within the model group; when they are
used up the plan moves on to the configured fallback groups.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from keystile.config.model import Deployment, RouterSettings, Settings

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


@dataclass(slots=True)
class ModelGroup:
    name: str
    deployments: list[Deployment]


class Router:
    def __init__(self, settings: Settings, rng: random.Random | None = None) -> None:
        self.settings: RouterSettings = settings.router
        self.groups: dict[str, ModelGroup] = {}
        for deployment in settings.deployments:
            self.groups.setdefault(deployment.model_name, ModelGroup(deployment.model_name, [])).deployments.append(deployment)
        self.rng = rng or random.Random()

    def group(self, name: str) -> ModelGroup | None:
        return self.groups.get(name)

    def plan(self, model_name: str, *, max_retries: int | None = None) -> "RoutePlan":
        return RoutePlan(self, model_name, self.settings.num_retries if max_retries is None else max_retries)

    def choose(self, group: ModelGroup, exclude: set[str]) -> Deployment | None:
        candidates = [d for d in group.deployments if d.id not in exclude] or group.deployments
        if len(candidates) == 1:
            return candidates[0]
        weights = [max(d.weight, 0.0) for d in candidates]
        if not any(weights):
            return self.rng.choice(candidates)
        return self.rng.choices(candidates, weights)[0]


@dataclass(slots=True)
class RoutePlan:
    router: Router
    requested: str
    max_retries: int
    group_name: str = ""
    attempts: int = 0
    _groups: list[str] = field(default_factory=list)
    _group_attempts: int = 0
    _tried: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._groups = [self.requested, *self.router.settings.fallbacks_for(self.requested)]
        self.group_name = self.requested

    def next(self) -> Deployment | None:
        while self._groups:
            group = self.router.group(self._groups[0])
            if group is not None and self._group_attempts <= self.max_retries:
                deployment = self.router.choose(group, self._tried)
                if deployment is not None:
                    self.group_name = group.name
                    self._group_attempts += 1
                    self.attempts += 1
                    self._tried.add(deployment.id)
                    return deployment
            self._groups.pop(0)
            self._group_attempts = 0
            self._tried = set()
        return None

    def failed(self, deployment: Deployment, *, retry_after: float | None = None) -> float:
        """Delay before the next attempt (``next()`` says whether there is one)."""
        if self._group_attempts > self.max_retries:
            return 0.0  # moving to a fallback group: no reason to wait
        base = self.router.settings.retry_backoff * (2 ** max(self._group_attempts - 1, 0))
        delay = base * (0.5 + self.router.rng.random())
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.router.settings.retry_after_cap))
        return delay

    def succeeded(self, deployment: Deployment, latency: float) -> None:
        return None
