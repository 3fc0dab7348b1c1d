"""Throughput at a latency bound: the highest request rate at which keystile's added p99 stays under a bound.

The rate doubles from ``start`` until a step fails the loosest bound (added p99 over it, an
error, or the rate not sustained), then each bound's bracket — the highest passing rate below
the lowest failing one — is narrowed by geometric bisection. Every step is one open-loop
measurement (``measure(rate)``); the search stops at ``ceiling`` and when ``budget`` seconds
are spent, and reports the bracket it got to. Pure: the caller supplies the measurement.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable


@dataclass(frozen=True, slots=True)
class Step:
    rate: float
    added_p99_ms: float
    sustained: bool = True
    errors: int = 0
    detail: dict | None = None

    def passes(self, bound_ms: float) -> bool:
        return self.sustained and self.errors == 0 and self.added_p99_ms <= bound_ms


def bracket(steps: dict[float, Step], bound_ms: float) -> tuple[float | None, float | None]:
    """(highest passing rate below the lowest failing one, lowest failing rate); None where there is none."""
    failing = [rate for rate, step in steps.items() if not step.passes(bound_ms)]
    high = min(failing, default=None)
    passing = [rate for rate, step in steps.items() if step.passes(bound_ms) and (high is None or rate < high)]
    return max(passing, default=None), high


def search_rates(
    measure: Callable[[float], Step],
    bounds_ms: tuple[float, ...],
    *,
    start: float,
    ceiling: float,
    budget: float,
    refine: int = 3,
    resolution: float = 1.1,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    deadline = clock() + budget
    steps: dict[float, Step] = {}
    rate = start
    while rate <= ceiling:
        steps[rate] = measure(rate)
        if not steps[rate].passes(max(bounds_ms)) or clock() >= deadline:
            break
        rate *= 2
    for bound in bounds_ms:
        for _ in range(refine):
            low, high = bracket(steps, bound)
            if low is None or high is None or high / low < resolution or clock() >= deadline:
                break
            middle = float(round(math.sqrt(low * high)))
            steps[middle] = measure(middle)
    results = []
    for bound in bounds_ms:
        low, high = bracket(steps, bound)
        results.append({"bound_ms": bound, "rate": low, "first_failing_rate": high,
                        "below_start": low is None, "unbounded": high is None})
    return {"results": results, "steps": [asdict(steps[rate]) for rate in sorted(steps)],
            "start": start, "ceiling": ceiling, "budget_s": budget, "out_of_time": clock() >= deadline}
