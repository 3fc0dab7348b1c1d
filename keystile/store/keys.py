"""Building a new virtual-key record — shared by the admin API and the ``keystile keys`` command."""

from __future__ import annotations

from typing import Any

from keystile.auth import hash_key
from keystile.credentials import mask
from keystile.durations import parse_duration
from keystile.limits.budgets import period_seconds
from keystile.store.records import KeyRecord


def build_key(raw: str, fields: dict[str, Any], now: float, duration: str | None = None) -> KeyRecord:
    """A record for the key ``raw``: only its hash and a masked form are kept."""
    record = KeyRecord(token_hash=hash_key(raw), key_name=mask(raw), **fields)
    record.expires_at = now + parse_duration(duration) if duration else None
    period = period_seconds(record.budget_duration)
    record.budget_reset_at = now + period if period else None
    return record
