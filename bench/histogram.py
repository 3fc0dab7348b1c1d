"""A log-linear latency histogram (HdrHistogram's layout, in a few lines): fixed relative precision, mergeable.

Values are integers (the benchmark records nanoseconds). Below 2**SUB_BITS every value has its own
bucket; above, each power-of-two range is cut into 2**(SUB_BITS - 1) equal buckets, so a bucket is
never wider than 1/2**(SUB_BITS - 1) of the values in it: with SUB_BITS = 11, 1/1024 — a reported
percentile is within 0.1 % of the exact one (three significant digits, HdrHistogram's usual
setting), and a value up to an hour in nanoseconds needs about 33,000 buckets, of which a run
touches a few hundred. Percentiles report the bucket's highest value (as HdrHistogram does), so
they never understate; count, min, max and mean are exact.
"""

from __future__ import annotations

import math

SUB_BITS = 11
_HALF = 1 << (SUB_BITS - 1)
_FULL = 1 << SUB_BITS
PRECISION = 1.0 / _HALF
"""The largest relative error of a reported percentile."""


def bucket_of(value: int) -> int:
    if value < _FULL:
        return value
    shift = value.bit_length() - SUB_BITS
    return ((shift + 1) << (SUB_BITS - 1)) + (value >> shift) - _HALF


def bucket_range(index: int) -> tuple[int, int]:
    """The lowest and highest value that fall into bucket ``index``."""
    if index < _FULL:
        return index, index
    shift = (index >> (SUB_BITS - 1)) - 1
    low = (index - (shift << (SUB_BITS - 1))) << shift
    return low, low + (1 << shift) - 1


class Histogram:
    __slots__ = ("counts", "count", "min", "max", "total")

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}
        self.count = 0
        self.min = 0
        self.max = 0
        self.total = 0

    def record(self, value: int) -> None:
        value = max(0, int(value))
        index = bucket_of(value)
        self.counts[index] = self.counts.get(index, 0) + 1
        if not self.count or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        for index, n in other.counts.items():
            self.counts[index] = self.counts.get(index, 0) + n
        if other.count:
            self.min = other.min if not self.count else min(self.min, other.min)
            self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def percentile(self, q: float) -> int:
        """The value at or below which ``q`` % of the recorded values lie (0 when empty)."""
        if not self.count:
            return 0
        rank = max(1, min(self.count, math.ceil(q * self.count / 100 - 1e-9)))  # 1e-9: 99.9 * 1000 / 100 is 999.0000000000001
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return min(bucket_range(index)[1], self.max)
        return self.max

    def summary(self, scale: float = 1e-3) -> dict[str, float]:
        """p50, p90, p99, p99.9, p99.99, min, max, mean, count; values times ``scale`` (ns → µs by default)."""
        out = {f"p{q:g}": self.percentile(q) * scale for q in (50, 90, 99, 99.9, 99.99)}
        out.update(min=self.min * scale, max=self.max * scale, mean=(self.total / self.count * scale) if self.count else 0.0,
                   count=self.count)
        return out

    def to_json(self) -> dict:
        return {"sub_bits": SUB_BITS, "count": self.count, "min": self.min, "max": self.max, "total": self.total,
                "counts": [[index, n] for index, n in sorted(self.counts.items())]}

    @classmethod
    def from_json(cls, data: dict) -> Histogram:
        if data.get("sub_bits") != SUB_BITS:
            raise ValueError(f"histogram recorded with sub_bits {data.get('sub_bits')}, this code uses {SUB_BITS}")
        h = cls()
        h.counts = {int(index): int(n) for index, n in data["counts"]}
        h.count, h.min, h.max, h.total = data["count"], data["min"], data["max"], data["total"]
        return h
