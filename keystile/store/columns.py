"""What a column can hold, and making a value fit: text caps, integer and money ranges.

Spend-log rows carry strings a client chose (the model it asked for) and numbers an upstream
reported (tokens). The database refuses some of them — PostgreSQL any text with a NUL, both
drivers any text with a lone surrogate and any integer beyond BIGINT — and one refused row
used to fail every batch after it. Rows are therefore made to fit before they are written.
The admin API refuses values outside these same bounds with a 400 instead (``server.admin``).
"""

from __future__ import annotations

import math
import re
import sys

NAME_CHARS = 256
"""Ids, aliases, model names, deployment names: longer is refused (admin) or cut (spend log)."""
EMAIL_CHARS = 320
DURATION_CHARS = 32
REQUEST_ID_CHARS = 128
CONTENT_CHARS = 1 << 20
"""Prompt / completion text kept in a spend-log row when ``spend.log_content`` is on."""

BIGINT_MAX = (1 << 63) - 1
MONEY_MAX = 1e15
"""USD. No budget, spend or single request's cost is larger; anything larger is an error, and
capping it keeps ``spend + ?`` far from the double range, where PostgreSQL would refuse the sum."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: str) -> bool:
    """No NUL and no lone surrogate: text both databases accept as it is."""
    return _UNSTORABLE.search(value) is None


def fit_text(value: str | None, cap: int) -> str | None:
    """``value`` without NULs and lone surrogates, cut to ``cap`` characters."""
    if value is None:
        return None
    try:
        if len(value) <= cap and value.isascii() and "\x00" not in value:
            return value  # the common case, checked in C
    except (TypeError, AttributeError):
        value = str(value)
    return _UNSTORABLE.sub("", value[: cap * 2])[:cap]


def fit_count(value: int) -> int:
    """A token count or other non-negative integer, within BIGINT."""
    if type(value) is int and 0 <= value <= BIGINT_MAX:
        return value
    try:
        return min(max(int(value), 0), BIGINT_MAX)
    except (TypeError, ValueError, OverflowError):
        return 0


def fit_money(value: float) -> float:
    """A finite amount of USD within ``±MONEY_MAX`` (NaN becomes 0)."""
    return _fit_within(value, MONEY_MAX)


def fit_float(value: float) -> float:
    """Any finite double (NaN becomes 0, infinities the largest finite value of their sign)."""
    return _fit_within(value, sys.float_info.max)


def _fit_within(value: float, bound: float) -> float:
    """``value`` as a float within ``±bound``; NaN and what is not a number become 0."""
    if type(value) is float and -bound <= value <= bound:
        return value
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return 0.0
    if math.isnan(value):
        return 0.0
    return min(max(value, -bound), bound)
