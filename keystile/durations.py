"""Durations as people write them in configs and admin calls: ``30s``, ``15m``, ``1h``, ``7d``, ``30d``."""

from __future__ import annotations

import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0, "mo": 2592000.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|mo)?\s*$")


def parse_duration(value: object) -> float:
    """Seconds for ``value``; a bare number means seconds. Raises ValueError with a readable message."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 1h or 7d, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            number, unit = match.groups()
            return float(number) * _UNITS[unit or "s"]
    raise ValueError(f"expected a duration like 30s, 1h or 7d, got {value!r}")
