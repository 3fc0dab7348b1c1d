"""``strategies.choose`` as the pure function it is: group state + tried mask + time + r → index."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from keystile.config.model import Deployment
from keystile.routing.health import LATENCY_STALE, DeploymentHealth
from keystile.routing.strategies import CAPACITY, LATENCY, LEAST_BUSY, WEIGHTED, choose

NOW = 1000.0
MINUTE = int(NOW // 60.0)


@dataclass
class D:
    """One deployment's row in a case: its config and its health snapshot."""

    weight: float = 1.0
    rpm: int | None = None
    tpm: int | None = None
    inflight: int = 0
    latency: float = 0.0
    latency_at: float = NOW
    cooling_until: float = 0.0
    probing: bool = False
    last_failure: float = 0.0
    minute_requests: int = 0
    minute_tokens: int = 0
    minute: int = MINUTE


def group(rows: list[D]) -> tuple[list[Deployment], list[DeploymentHealth]]:
    deployments, health = [], []
    for i, row in enumerate(rows):
        deployments.append(Deployment("g", "mock", "m", id=f"g#{i}", weight=row.weight, rpm=row.rpm, tpm=row.tpm))
        h = DeploymentHealth(f"g#{i}", rpm=row.rpm, tpm=row.tpm)
        h.inflight = row.inflight
        h.latency = row.latency
        h.latency_at = row.latency_at
        h.cooldown_until = row.cooling_until
        h.probing = row.probing
        h.last_failure = row.last_failure
        h.minute = row.minute
        h.minute_requests = row.minute_requests
        h.minute_tokens = row.minute_tokens
        health.append(h)
    return deployments, health


COOL = NOW + 30.0  # cooling down until then
EXPIRED = NOW - 1.0  # cooldown over: due for its probe

CASES = [
    # (name, strategy, rows, tried mask, r, expected index)
    ("empty group", WEIGHTED, [], 0, 0.5, -1),
    ("single deployment", WEIGHTED, [D()], 0, 0.9, 0),
    ("single deployment cooling is still tried", WEIGHTED, [D(cooling_until=COOL)], 0, 0.9, 0),
    # weighted random: r picks a point on the cumulative weights
    ("weighted 1:3, r at start", WEIGHTED, [D(weight=1), D(weight=3)], 0, 0.0, 0),
    ("weighted 1:3, r just below 1/4", WEIGHTED, [D(weight=1), D(weight=3)], 0, 0.2499, 0),
    ("weighted 1:3, r at 1/4", WEIGHTED, [D(weight=1), D(weight=3)], 0, 0.25, 1),
    ("weighted 1:3, r near 1", WEIGHTED, [D(weight=1), D(weight=3)], 0, 0.9999, 1),
    ("weight 0 never chosen", WEIGHTED, [D(weight=1), D(weight=0), D(weight=1)], 0, 0.6, 2),
    ("weight 0 is a standby", WEIGHTED, [D(weight=1, cooling_until=COOL), D(weight=0)], 0, 0.1, 1),
    ("all weights 0: uniform, low r", WEIGHTED, [D(weight=0), D(weight=0)], 0, 0.2, 0),
    ("all weights 0: uniform, high r", WEIGHTED, [D(weight=0), D(weight=0)], 0, 0.7, 1),
    # cooldowns
    ("cooling deployment skipped", WEIGHTED, [D(weight=1), D(weight=3, cooling_until=COOL)], 0, 0.99, 0),
    ("cooldown over: probe-due is a candidate", WEIGHTED, [D(), D(cooling_until=EXPIRED)], 0, 0.99, 1),
    ("probe under way: skipped", WEIGHTED, [D(), D(cooling_until=EXPIRED, probing=True)], 0, 0.99, 0),
    ("every deployment cooling: least recently failed", WEIGHTED,
     [D(cooling_until=COOL, last_failure=NOW - 1), D(cooling_until=COOL, last_failure=NOW - 5)], 0, 0.0, 1),
    ("every deployment cooling: untried first", WEIGHTED,
     [D(cooling_until=COOL, last_failure=NOW - 1), D(cooling_until=COOL, last_failure=NOW - 5)], 0b10, 0.0, 0),
    ("cooling and probing: least recently failed", LEAST_BUSY,
     [D(cooling_until=EXPIRED, probing=True, last_failure=NOW - 40), D(cooling_until=COOL, last_failure=NOW - 2)], 0, 0.5, 0),
    # retries: untried first, then the tried ones again, healthy before cooling
    ("tried deployment avoided", WEIGHTED, [D(weight=100), D(weight=1)], 0b01, 0.0, 1),
    ("all tried: retry among available", WEIGHTED, [D(), D(cooling_until=COOL)], 0b11, 0.99, 0),
    ("untried but cooling loses to tried healthy", WEIGHTED, [D(), D(cooling_until=COOL)], 0b01, 0.99, 0),
    # least busy
    ("least busy", LEAST_BUSY, [D(inflight=3), D(inflight=1), D(inflight=2)], 0, 0.99, 1),
    ("least busy tie, low r", LEAST_BUSY, [D(inflight=3), D(inflight=1), D(inflight=1)], 0, 0.0, 1),
    ("least busy tie, high r", LEAST_BUSY, [D(inflight=3), D(inflight=1), D(inflight=1)], 0, 0.99, 2),
    ("least busy ignores weight", LEAST_BUSY, [D(weight=100, inflight=2), D(weight=1, inflight=0)], 0, 0.0, 1),
    ("least busy skips cooling", LEAST_BUSY, [D(inflight=5), D(inflight=0, cooling_until=COOL)], 0, 0.5, 0),
    ("least busy skips tried", LEAST_BUSY, [D(inflight=5), D(inflight=0)], 0b10, 0.5, 0),
    # lowest latency
    ("lowest latency", LATENCY, [D(latency=0.5), D(latency=0.2), D(latency=0.3)], 0, 0.99, 1),
    ("latency within 10% is a tie, low r", LATENCY, [D(latency=0.5), D(latency=0.2), D(latency=0.21)], 0, 0.0, 1),
    ("latency within 10% is a tie, high r", LATENCY, [D(latency=0.5), D(latency=0.2), D(latency=0.21)], 0, 0.99, 2),
    ("unmeasured deployment goes first", LATENCY, [D(latency=0.5), D(latency=0.0)], 0, 0.0, 1),
    ("stale sample counts as unmeasured", LATENCY,
     [D(latency=0.1), D(latency=2.0, latency_at=NOW - LATENCY_STALE - 1.0)], 0, 0.0, 1),
    ("sample just inside the window still counts", LATENCY,
     [D(latency=0.1), D(latency=2.0, latency_at=NOW - LATENCY_STALE + 1.0)], 0, 0.99, 0),
    ("fastest is cooling", LATENCY, [D(latency=0.5), D(latency=0.1, cooling_until=COOL)], 0, 0.0, 0),
    # capacity
    ("capacity: full rpm skipped", CAPACITY, [D(rpm=10, minute_requests=10), D(rpm=10, minute_requests=3)], 0, 0.0, 1),
    ("capacity: full tpm skipped", CAPACITY, [D(tpm=1000, minute_tokens=1000), D(tpm=1000)], 0, 0.0, 1),
    ("capacity: last minute's use does not count", CAPACITY,
     [D(rpm=10, minute_requests=10, minute=MINUTE - 1), D(rpm=10, minute_requests=3)], 0, 0.0, 0),
    ("capacity: unlimited deployment always has room", CAPACITY, [D(rpm=1, minute_requests=1), D()], 0, 0.0, 1),
    ("capacity: weighted among those with room", CAPACITY,
     [D(rpm=1, minute_requests=1), D(weight=1, rpm=10), D(weight=3, rpm=10)], 0, 0.5, 2),
    ("capacity: all full, least used", CAPACITY,
     [D(rpm=10, minute_requests=12), D(tpm=100, minute_tokens=105)], 0, 0.0, 1),
    ("capacity: cooling skipped before capacity", CAPACITY, [D(rpm=10, minute_requests=10), D(cooling_until=COOL)], 0, 0.9, 0),
]


@pytest.mark.parametrize("name,strategy,rows,tried,r,expected", CASES, ids=[c[0] for c in CASES])
def test_choose(name, strategy, rows, tried, r, expected):
    deployments, health = group(rows)
    assert choose(strategy, deployments, health, tried, NOW, r) == expected


@pytest.mark.parametrize("strategy", [WEIGHTED, LEAST_BUSY, LATENCY, CAPACITY])
def test_never_fails_without_a_candidate(strategy):
    """Whatever the state, a non-empty group names one of its deployments."""
    rows = [D(cooling_until=COOL, probing=True, last_failure=NOW - i) for i in range(4)]
    deployments, health = group(rows)
    for tried in range(16):
        for r in (0.0, 0.5, 0.999):
            assert 0 <= choose(strategy, deployments, health, tried, NOW, r) < 4


def test_choose_is_pure():
    deployments, health = group([D(weight=1, inflight=2), D(weight=2, latency=0.3), D(cooling_until=COOL)])
    before = [(h.inflight, h.latency, h.cooldown_until, h.probing) for h in health]
    for strategy in (WEIGHTED, LEAST_BUSY, LATENCY, CAPACITY):
        first = choose(strategy, deployments, health, 0b001, NOW, 0.37)
        assert choose(strategy, deployments, health, 0b001, NOW, 0.37) == first
    assert [(h.inflight, h.latency, h.cooldown_until, h.probing) for h in health] == before


def test_weighted_distribution_follows_weights():
    deployments, health = group([D(weight=1), D(weight=3)])
    picks = [choose(WEIGHTED, deployments, health, 0, NOW, i / 1000) for i in range(1000)]
    assert picks.count(0) == 250 and picks.count(1) == 750
