"""Which deployment of a model group takes the next attempt: one pure function per strategy.

``choose`` sees only the group (deployments and their health, in the same order), the
deployments this request already tried (a bitmask of indices), the time and one random
number in [0, 1) — so every decision can be replayed in a table test. It never fails
without a candidate: when nothing is available it still names the best of the rest.

Candidates, best tier first:

1. available (healthy, or due for its probe) and not yet tried by this request;
2. available, tried already (a retry of the same deployment);
3. cooling down or being probed: the one whose last failure is oldest, untried first —
   a group whose every deployment is cooling down is still tried rather than refused.

Within tiers 1 and 2 the strategy picks:

    weighted    random, proportional to ``weight`` (all weights 0: uniform)
    least_busy  fewest requests in flight; ties broken at random
    latency     lowest average time to the first byte; deployments without a sample
                yet, or whose last one is older than LATENCY_STALE, go first (so each
                gets measured, and a once-slow one is measured again); within
                LATENCY_TOLERANCE of the best counts as a tie, broken at random
    capacity    skip deployments at their rpm/tpm this minute, weighted random among the
                rest; when all are at capacity, the least used one

Cost: a couple of passes over the group, no allocation.
"""

from __future__ import annotations

from typing import Sequence

from keystile.config.model import Deployment
from keystile.routing.health import LATENCY_STALE, DeploymentHealth

WEIGHTED, LEAST_BUSY, LATENCY, CAPACITY = "weighted", "least_busy", "latency", "capacity"
STRATEGIES = (WEIGHTED, LEAST_BUSY, LATENCY, CAPACITY)

LATENCY_TOLERANCE = 1.10
"""Latencies within 10% of the best are treated as equal, so near-equal deployments share load."""


def choose(
    strategy: str,
    deployments: Sequence[Deployment],
    health: Sequence[DeploymentHealth],
    tried: int,
    now: float,
    r: float,
) -> int:
    """Index of the deployment for the next attempt, or -1 for an empty group."""
    n = len(deployments)
    if n <= 1:
        return n - 1
    usable = 0
    bit = 1
    for h in health:  # DeploymentHealth.available, inlined: this loop runs on every request
        until = h.cooldown_until
        if not tried & bit and (until == 0.0 or (now >= until and not h.probing)):
            usable |= bit
        bit <<= 1
    if not usable:
        for i in range(n):
            if health[i].available(now):
                usable |= 1 << i
        if not usable:
            return _least_recently_failed(health, tried)
    if usable & (usable - 1) == 0:  # exactly one candidate
        return usable.bit_length() - 1
    if strategy == LEAST_BUSY:
        return _least_busy(health, usable, r)
    if strategy == LATENCY:
        return _lowest_latency(health, usable, now, r)
    if strategy == CAPACITY:
        under = _under_capacity(health, usable, now)
        if not under:
            return _least_used(health, usable, now)
        usable = under
    return _weighted(deployments, usable, r)


def _weighted(deployments: Sequence[Deployment], usable: int, r: float) -> int:
    total = 0.0
    bit = 1
    for d in deployments:
        if usable & bit and d.weight > 0.0:
            total += d.weight
        bit <<= 1
    if total <= 0.0:
        return _nth(usable, int(r * usable.bit_count()))
    x = r * total
    last = -1
    bit = 1
    for i, d in enumerate(deployments):
        if usable & bit and d.weight > 0.0:
            if x < d.weight:
                return i
            x -= d.weight
            last = i
        bit <<= 1
    return last  # r * total rounded up to total


def _least_busy(health: Sequence[DeploymentHealth], usable: int, r: float) -> int:
    fewest = -1
    ties = 0
    bit = 1
    for h in health:
        if usable & bit:
            if fewest < 0 or h.inflight < fewest:
                fewest, ties = h.inflight, bit
            elif h.inflight == fewest:
                ties |= bit
        bit <<= 1
    return _nth(ties, int(r * ties.bit_count()))


def _lowest_latency(health: Sequence[DeploymentHealth], usable: int, now: float, r: float) -> int:
    stale = now - LATENCY_STALE
    best = -1.0
    bit = 1
    for h in health:
        if usable & bit:
            latency = h.latency if h.latency_at >= stale else 0.0
            if best < 0.0 or latency < best:
                best = latency
        bit <<= 1
    limit = best * LATENCY_TOLERANCE
    ties = 0
    bit = 1
    for h in health:
        if usable & bit and (h.latency if h.latency_at >= stale else 0.0) <= limit:
            ties |= bit
        bit <<= 1
    return _nth(ties, int(r * ties.bit_count()))


def _under_capacity(health: Sequence[DeploymentHealth], usable: int, now: float) -> int:
    under = 0
    bit = 1
    for h in health:
        if usable & bit and not h.at_capacity(now):
            under |= bit
        bit <<= 1
    return under


def _least_used(health: Sequence[DeploymentHealth], usable: int, now: float) -> int:
    best, lowest = -1, 0.0
    for i, h in enumerate(health):
        if (usable >> i) & 1:
            used = h.utilisation(now)
            if best < 0 or used < lowest:
                best, lowest = i, used
    return best


def _least_recently_failed(health: Sequence[DeploymentHealth], tried: int) -> int:
    """Every deployment is out: the one that failed longest ago, preferring untried ones."""
    best = -1
    for i in range(len(health)):
        if best < 0:
            best = i
            continue
        untried, best_untried = not (tried >> i) & 1, not (tried >> best) & 1
        if untried != best_untried:
            if untried:
                best = i
        elif health[i].last_failure < health[best].last_failure:
            best = i
    return best


def _nth(mask: int, k: int) -> int:
    """Index of the k-th set bit of ``mask`` (k is clamped to the last one)."""
    last = -1
    i = 0
    while mask:
        if mask & 1:
            if k == 0:
                return i
            k -= 1
            last = i
        mask >>= 1
        i += 1
    return last
