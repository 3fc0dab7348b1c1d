"""Rate limits: requests per minute, tokens per minute and parallel requests, per scope.

A *scope* is whatever one limit counts (``key:<hash>``, ``team:<id>``,
``key:<hash>:model:<name>``). ``Counters`` is the interface; ``LocalCounters`` keeps exact
sliding windows in this process, and ``limits.redis_counters`` (the scale-out store)
implements the same interface with atomic scripts so several instances share one count.
Admission is all-or-nothing: a refused request consumes nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, Sequence

WINDOW = 60.0


@dataclass(frozen=True, slots=True)
class RateCheck:
    scope: str
    label: str
    """How the limit is named to the client: ``key``, ``team 'ml'``, ``key for model 'x'``."""
    rpm: int | None = None
    tpm: int | None = None
    parallel: int | None = None


@dataclass(slots=True)
class Refusal:
    check: RateCheck
    limit: str
    """``rpm`` | ``tpm`` | ``parallel``."""
    retry_after: float

    def message(self) -> str:
        what = {
            "rpm": f"requests per minute limit ({self.check.rpm})",
            "tpm": f"tokens per minute limit ({self.check.tpm})",
            "parallel": f"parallel requests limit ({self.check.parallel})",
        }[self.limit]
        return f"Rate limit reached: the {self.check.label} {what} is used up; retry after {math.ceil(self.retry_after)}s."


@dataclass(slots=True)
class Quota:
    """What remains of the tightest request and token limits, for response headers."""

    rpm_limit: int | None = None
    rpm_remaining: int | None = None
    rpm_reset: float = 0.0
    tpm_limit: int | None = None
    tpm_remaining: int | None = None
    tpm_reset: float = 0.0


@dataclass(slots=True)
class Admission:
    refusal: Refusal | None
    quota: Quota = field(default_factory=Quota)
    slots: tuple[str, ...] = ()
    """Parallel-request scopes taken; hand them back with ``Counters.release``."""


class Counters(Protocol):
    async def admit(self, checks: Sequence[RateCheck], now: float) -> Admission: ...

    async def release(self, slots: Sequence[str]) -> None: ...

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None: ...


class _Window:
    """Exact sliding minute: request times, and (time, tokens) with a running sum."""

    __slots__ = ("requests", "tokens", "token_sum", "inflight")

    def __init__(self) -> None:
        self.requests: deque[float] = deque()
        self.tokens: deque[tuple[float, int]] = deque()
        self.token_sum = 0
        self.inflight = 0

    def trim(self, now: float) -> None:
        edge = now - WINDOW
        requests = self.requests
        while requests and requests[0] <= edge:
            requests.popleft()
        tokens = self.tokens
        while tokens and tokens[0][0] <= edge:
            self.token_sum -= tokens.popleft()[1]

    def below_at(self, limit: int) -> float:
        """When enough counted tokens will have left the window for the sum to be under ``limit``."""
        left = self.token_sum
        for at, tokens in self.tokens:
            left -= tokens
            if left < limit:
                return at + WINDOW
        return self.tokens[-1][0] + WINDOW

    @property
    def idle(self) -> bool:
        return not self.requests and not self.tokens and self.inflight == 0


class LocalCounters:
    """In-process counters: exact, no I/O, a few microseconds per admission."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._admissions = 0

    def _window(self, scope: str) -> _Window:
        window = self._windows.get(scope)
        if window is None:
            window = self._windows[scope] = _Window()
        return window

    async def admit(self, checks: Sequence[RateCheck], now: float) -> Admission:
        return self.admit_now(checks, now)

    def admit_now(self, checks: Sequence[RateCheck], now: float) -> Admission:
        quota = Quota()
        windows = []
        for check in checks:
            window = self._window(check.scope)
            window.trim(now)
            windows.append(window)
            if check.parallel is not None and window.inflight >= check.parallel:
                return Admission(Refusal(check, "parallel", 1.0), quota)
            if check.rpm is not None:
                if len(window.requests) >= check.rpm:
                    retry = window.requests[len(window.requests) - check.rpm] + WINDOW - now
                    return Admission(Refusal(check, "rpm", max(retry, 0.001)), quota)
                remaining = check.rpm - len(window.requests) - 1
                if quota.rpm_remaining is None or remaining < quota.rpm_remaining:
                    reset = (window.requests[0] if window.requests else now) + WINDOW - now
                    quota.rpm_limit, quota.rpm_remaining, quota.rpm_reset = check.rpm, remaining, reset
            if check.tpm is not None:
                if window.token_sum >= check.tpm:
                    retry = window.below_at(check.tpm) - now if window.tokens else 1.0
                    return Admission(Refusal(check, "tpm", max(retry, 0.001)), quota)
                remaining = check.tpm - window.token_sum
                if quota.tpm_remaining is None or remaining < quota.tpm_remaining:
                    reset = (window.tokens[0][0] if window.tokens else now) + WINDOW - now
                    quota.tpm_limit, quota.tpm_remaining, quota.tpm_reset = check.tpm, remaining, reset
        slots = []
        for check, window in zip(checks, windows):
            if check.rpm is not None:
                window.requests.append(now)
            if check.parallel is not None:
                window.inflight += 1
                slots.append(check.scope)
        self._admissions += 1
        if self._admissions % 4096 == 0:
            self._sweep(now)
        return Admission(None, quota, tuple(slots))

    async def release(self, slots: Sequence[str]) -> None:
        self.release_now(slots)

    def release_now(self, slots: Sequence[str]) -> None:
        for scope in slots:
            window = self._windows.get(scope)
            if window is not None and window.inflight > 0:
                window.inflight -= 1

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        self.add_tokens_now(scopes, tokens, now)

    def add_tokens_now(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        if tokens <= 0:
            return
        windows = self._windows
        for scope in scopes:
            window = windows.get(scope) or self._window(scope)
            window.tokens.append((now, tokens))
            window.token_sum += tokens

    def _sweep(self, now: float) -> None:
        """Drop windows with nothing in them so memory stays flat however many keys come and go."""
        for scope in [s for s, w in self._windows.items() if (w.trim(now) or w.idle)]:
            del self._windows[scope]
