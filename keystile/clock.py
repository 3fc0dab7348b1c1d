"""The gateway's notion of "now", injectable so budget periods can be tested without sleeping.

Production uses wall time. A test run started with ``KEYSTILE_TEST_CLOCK=1`` may move the
clock forward through the admin API (``POST /keystile/test/clock``); nothing else can.
"""

from __future__ import annotations

import time


class Clock:
    __slots__ = ("offset",)

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> float:
        self.offset += seconds
        return self.now()
