"""Rate limits: requests per minute, tokens per minute and parallel requests, per scope.

A *scope* is whatever one limit counts (``key:<hash>``, ``team:<id>``,
``key:<hash>:model:<name>``). ``Counters`` is the interface; ``LocalCounters`` keeps
sliding windows in this process (exact in count; an entry may outlive its minute by up to
``COALESCE``), and ``limits.redis_counters`` (the scale-out store)
implements the same interface with atomic scripts so several instances share one count.
Admission is all-or-nothing: a refused request consumes nothing.

Tokens are known only when a request ends, so admission also *holds* the request's
estimated tokens (``limits.reservation``) in every tokens-per-minute scope it counts in; a
scope admits while its window's tokens plus what is held stay under the limit, and
``add_tokens`` replaces the hold with the tokens the upstream reported.
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
    hold: str | None = None
    """Names the tokens held for this request (None: none); pass it to ``add_tokens``."""


LOCAL_HOLD = "local"
"""The ``hold`` of tokens held by ``LocalCounters`` (their amount travels with the grant)."""


class Counters(Protocol):
    async def admit(self, checks: Sequence[RateCheck], now: float, hold: int = 0) -> Admission:
        """Admit, or refuse, a request; ``hold``: its estimated tokens, held in every tpm scope."""
        ...

    async def release(self, slots: Sequence[str]) -> None: ...

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float, hold: str | None = None, held: int = 0) -> None:
        """Count a finished request's ``tokens``, and drop the ``held`` tokens its admission held."""
        ...


COALESCE = 0.1
"""Seconds within which counted requests (or tokens) share one entry of a window. An entry
leaves the window a minute after its *newest* member, so a request may count up to this much
longer than its minute — never shorter, so a limit is never exceeded — and a window holds at
most 600 entries however many requests per second a key sends (an exact log of a minute of
requests grew by ~150 bytes per request, 45 MB per key at 5,000 req/s)."""


class _Tally:
    """One sliding minute of counted amounts, oldest first, and their sum.

    Entries are ``[opened, newest, amount]``: amounts counted within ``COALESCE`` of the
    entry's first share it, and it leaves the window a minute after its newest.
    """

    __slots__ = ("entries", "total")

    def __init__(self) -> None:
        self.entries: deque[list] = deque()
        self.total = 0

    def add(self, now: float, amount: int) -> None:
        self.total += amount
        entries = self.entries
        if entries:
            last = entries[-1]
            if 0.0 <= now - last[0] < COALESCE:
                if now > last[1]:
                    last[1] = now
                last[2] += amount
                return
        entries.append([now, now, amount])

    def trim(self, edge: float) -> None:
        entries = self.entries
        while entries and entries[0][1] <= edge:
            self.total -= entries.popleft()[2]

    def below_at(self, limit: int) -> float:
        """When enough counted amounts will have left the window for the sum to be under ``limit``."""
        left = self.total
        for _, newest, amount in self.entries:
            left -= amount
            if left < limit:
                return newest + WINDOW
        return self.entries[-1][1] + WINDOW

    def oldest(self, now: float) -> float:
        """When the oldest entry came in counted as leaving (its newest member), or ``now`` if none."""
        return self.entries[0][1] if self.entries else now


class _Window:
    """One scope's sliding minute of requests and tokens, and its requests in flight."""

    __slots__ = ("requests", "tokens", "inflight", "held")

    def __init__(self) -> None:
        self.requests = _Tally()
        self.tokens = _Tally()
        self.inflight = 0
        self.held = 0
        """Tokens held by admitted requests that have not reported theirs yet."""

    def trim(self, now: float) -> None:
        edge = now - WINDOW
        self.requests.trim(edge)
        self.tokens.trim(edge)

    @property
    def idle(self) -> bool:
        return not self.requests.entries and not self.tokens.entries and self.inflight == 0 and self.held == 0


class LocalCounters:
    """In-process counters: no I/O, a few microseconds per admission, bounded memory per scope."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}
        self._admissions = 0

    def _window(self, scope: str) -> _Window:
        window = self._windows.get(scope)
        if window is None:
            window = self._windows[scope] = _Window()
        return window

    async def admit(self, checks: Sequence[RateCheck], now: float, hold: int = 0) -> Admission:
        return self.admit_now(checks, now, hold)

    def admit_now(self, checks: Sequence[RateCheck], now: float, hold: int = 0) -> Admission:
        quota = Quota()
        windows = []
        for check in checks:
            window = self._window(check.scope)
            window.trim(now)
            windows.append(window)
            if check.parallel is not None and window.inflight >= check.parallel:
                return Admission(Refusal(check, "parallel", 1.0), quota)
            if check.rpm is not None:
                requests = window.requests
                if requests.total >= check.rpm:
                    retry = requests.below_at(check.rpm) - now
                    return Admission(Refusal(check, "rpm", max(retry, 0.001)), quota)
                remaining = check.rpm - requests.total - 1
                if quota.rpm_remaining is None or remaining < quota.rpm_remaining:
                    reset = requests.oldest(now) + WINDOW - now
                    quota.rpm_limit, quota.rpm_remaining, quota.rpm_reset = check.rpm, remaining, reset
            if check.tpm is not None:
                tokens = window.tokens
                if tokens.total >= check.tpm:
                    retry = tokens.below_at(check.tpm) - now if tokens.entries else 1.0
                    return Admission(Refusal(check, "tpm", max(retry, 0.001)), quota)
                if window.held and tokens.total + window.held >= check.tpm:
                    return Admission(Refusal(check, "tpm", 1.0), quota)  # held by requests still running
                remaining = max(check.tpm - tokens.total - window.held - hold, 0)
                if quota.tpm_remaining is None or remaining < quota.tpm_remaining:
                    reset = tokens.oldest(now) + WINDOW - now
                    quota.tpm_limit, quota.tpm_remaining, quota.tpm_reset = check.tpm, remaining, reset
        slots = []
        for check, window in zip(checks, windows):
            if check.rpm is not None:
                window.requests.add(now, 1)
            if check.parallel is not None:
                window.inflight += 1
                slots.append(check.scope)
            if hold and check.tpm is not None:
                window.held += hold
        self._admissions += 1
        if self._admissions % 4096 == 0:
            self._sweep(now)
        return Admission(None, quota, tuple(slots), LOCAL_HOLD if hold and quota.tpm_limit is not None else None)

    async def release(self, slots: Sequence[str]) -> None:
        self.release_now(slots)

    def release_now(self, slots: Sequence[str]) -> None:
        for scope in slots:
            window = self._windows.get(scope)
            if window is not None and window.inflight > 0:
                window.inflight -= 1

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float, hold: str | None = None, held: int = 0) -> None:
        self.add_tokens_now(scopes, tokens, now, held if hold is not None else 0)

    def add_tokens_now(self, scopes: Sequence[str], tokens: int, now: float, held: int = 0) -> None:
        """Count ``tokens`` in each scope's window and drop the ``held`` tokens admission held there."""
        windows = self._windows
        if held:
            for scope in scopes:
                window = windows.get(scope)
                if window is not None:
                    window.held = max(window.held - held, 0)
        if tokens <= 0:
            return
        for scope in scopes:
            window = windows.get(scope) or self._window(scope)
            window.tokens.add(now, tokens)

    def _sweep(self, now: float) -> None:
        """Drop windows with nothing in them so memory stays flat however many keys come and go."""
        for scope in [s for s, w in self._windows.items() if (w.trim(now) or w.idle)]:
            del self._windows[scope]
