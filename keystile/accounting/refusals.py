"""Refusal logging bounded per key: a key being refused writes a sampled row with a count, not a row each.

Refusals cost nothing upstream and are not rate limited (a key over its rpm limit is the
very case), so one row per refusal let any key grow the spend log without bound: 300
requests from an rpm=1 key wrote 300 rows. Each key gets a small bucket of rows instead:
``BURST`` refusals are logged one by one, then one row a minute, and each row written carries
in ``requests`` the refusals held back since the previous one. Held-back refusals are never
lost from the count: a key that stops being refused gets a last row with them a minute later,
and a clean stop writes them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from keystile.store.records import SpendLogRow

BURST = 10
"""Refusals of one key logged one by one before sampling starts."""
REFILL_SECONDS = 60.0
"""While a key is being refused, one row per this many seconds (the bucket refills at this rate)."""


@dataclass(slots=True)
class _KeyRefusals:
    rows: float
    """Rows this key may still write at once (the bucket)."""
    updated: float
    held: int = 0
    """Refusals counted but not yet written."""
    held_since: float = 0.0
    sample: SpendLogRow | None = None
    """The latest held-back refusal: it becomes the row that reports them."""


class RefusalSampler:
    """Decides, per key, which refusal rows are written; the rest are counted into the next one."""

    def __init__(self, burst: int = BURST, refill_seconds: float = REFILL_SECONDS) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._keys: dict[str, _KeyRefusals] = {}

    def admit(self, key_id: str, row: SpendLogRow, now: float) -> SpendLogRow | None:
        """The row to write for this refusal (``requests`` counting the refusals held back before
        it), or None when it is only counted. ``now``: a monotonic clock, in seconds."""
        state = self._keys.get(key_id)
        if state is None:
            state = self._keys[key_id] = _KeyRefusals(float(self.burst), now)
        else:
            state.rows = min(float(self.burst), state.rows + (now - state.updated) / self.refill_seconds)
            state.updated = now
        if state.rows >= 1.0:
            state.rows -= 1.0
            row.requests = 1 + state.held
            state.held, state.sample = 0, None
            return row
        if not state.held:
            state.held_since = now
        state.held += 1
        state.sample = row
        return None

    def due(self, now: float, everything: bool = False) -> list[SpendLogRow]:
        """Rows reporting refusals held back for ``refill_seconds`` (all of them when ``everything``,
        at shutdown); keys whose bucket has refilled and that hold nothing are forgotten."""
        out: list[SpendLogRow] = []
        for key_id, state in list(self._keys.items()):
            if state.held and (everything or now - state.held_since >= self.refill_seconds):
                row = state.sample
                assert row is not None
                row.requests = state.held
                out.append(row)
                state.held, state.sample = 0, None
            elif not state.held and state.rows + (now - state.updated) / self.refill_seconds >= self.burst:
                del self._keys[key_id]
        return out

    def __len__(self) -> int:
        return len(self._keys)
