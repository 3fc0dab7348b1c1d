"""Budgets shared by every instance: current-period spend and in-flight reservations in Redis.

The ``Ledger`` stays where spend is counted for the store (written in batches by
``accounting.spend``); what Redis adds is one figure every instance sees at once. Per
budgeted entity (key, user, team) Redis holds a hash — ``spend`` this period and the
period's ``reset_at`` — and a sorted set of the reservations of requests in flight, scored
by a lease expiry.

Admission (one Lua script, atomic across the key, its user and its team): a new period
resets the spend; ``spend >= max_budget`` refuses (400, as on one instance); ``spend +
reserved >= max_budget`` refuses with 429 (the rest is held by requests still running:
retry shortly); otherwise every entity records a reservation of the request's worst-case
cost (``limits.reservation``). When the request ends its reservation is swapped for the
real cost. So a request is admitted only while the budget has room after the worst case of
everything already running, whichever instance runs it, and the budget is overspent by at
most one request's worst case.

Where the figure comes from: the first instance to see an entity (or the first after Redis
lost its data) seeds it from its ``Ledger`` — the store's total plus what it has not
written yet. After that Redis is authoritative. While Redis is down every instance checks
budgets against its own ``Ledger`` (which learns the others' spend from the store about
once a second); costs it could not add to Redis are added when Redis returns, and admin
changes to spend are replayed then too.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Sequence

from keystile.limits.budgets import Entity, Ledger
from keystile.store.redis_link import REDIS_FAILURES, RedisLink

log = logging.getLogger("keystile.budgets")

RESERVATION_LEASE = 900.0
"""Seconds a reservation is held if its request never reports back (its instance died)."""
IDLE_TTL_MS = 86_400_000
"""An entity untouched for a day is dropped from Redis; the next request reseeds it from the store."""

# KEYS: two per entity (hash, reservations). ARGV: now, lease expiry, reservation member
# (``id|amount``), then per entity: max_budget, reset_at ('' = lifetime budget), the ledger's
# spend (seed for a missing hash). Returns {1} or {0|2, entity index, spend, reserved}
# (0: spent, 2: held by requests in flight).
_RESERVE = """
local now = tonumber(ARGV[1])
local expiry = tonumber(ARGV[2])
local member = ARGV[3]
local n = #KEYS / 2
for i = 1, n do
  local h, z = KEYS[2*i-1], KEYS[2*i]
  local max = tonumber(ARGV[3 + 3*i - 2])
  local reset = ARGV[3 + 3*i - 1]
  local seed = ARGV[3 + 3*i]
  local stored = redis.call('HGET', h, 'reset_at')
  if not stored then
    redis.call('HSET', h, 'spend', seed, 'reset_at', reset)
  elseif stored ~= reset and (stored == '' or reset == '' or tonumber(reset) > tonumber(stored)) then
    redis.call('HSET', h, 'spend', seed, 'reset_at', reset)  -- a new period (or a changed duration)
  end
  local spend = tonumber(redis.call('HGET', h, 'spend'))
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  local reserved = 0
  for _, member in ipairs(redis.call('ZRANGE', z, 0, -1)) do
    reserved = reserved + tonumber(string.match(member, '|(.*)$'))
  end
  if spend >= max then
    return {0, i, tostring(spend), tostring(reserved)}
  end
  if spend + reserved >= max then
    return {2, i, tostring(spend), tostring(reserved)}
  end
end
for i = 1, n do
  redis.call('ZADD', KEYS[2*i], expiry, member)
  redis.call('PEXPIRE', KEYS[2*i], math.ceil((expiry - now) * 1000))
  redis.call('PEXPIRE', KEYS[2*i-1], IDLE_TTL_MS)
end
return {1}
""".replace("IDLE_TTL_MS", str(IDLE_TTL_MS))

# KEYS: two per entity (hash, reservations). ARGV: cost, the reservation member.
_SETTLE = """
local cost = tonumber(ARGV[1])
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2*i-1], KEYS[2*i]
  redis.call('ZREM', z, ARGV[2])
  if cost > 0 and redis.call('EXISTS', h) == 1 then
    redis.call('HINCRBYFLOAT', h, 'spend', cost)
  end
end
return 1
"""

# KEYS: one hash. ARGV: amount, reset_at the amount belongs to. Adds only within that period.
_ADD_MISSED = """
if redis.call('HGET', KEYS[1], 'reset_at') == ARGV[2] then
  redis.call('HINCRBYFLOAT', KEYS[1], 'spend', ARGV[1])
end
return 1
"""


@dataclass(slots=True)
class SharedHold:
    """A request's reservation in the shared budgets of ``entities``, until ``settle``."""

    entities: tuple[Entity, ...]
    member: str
    reset_ats: tuple[str, ...]
    refused = False


@dataclass(frozen=True, slots=True)
class SharedRefusal:
    entity: Entity
    spend: float
    reserved: float
    limit: float
    refused = True

    @property
    def held(self) -> bool:
        """True: spend is under the limit, but requests in flight have reserved the rest."""
        return self.spend < self.limit


def _reset_arg(reset_at: float | None) -> str:
    return "" if reset_at is None else repr(float(reset_at))


class RedisBudgets:
    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._reserve = link.client.register_script(_RESERVE)
        self._settle = link.client.register_script(_SETTLE)
        self._add_missed = link.client.register_script(_ADD_MISSED)
        self._missed: dict[tuple[Entity, str], float] = {}
        """Costs Redis did not get while it was down: (entity, period) → USD, added on recovery."""
        self._changes: dict[Entity, dict[str, float | None]] = {}
        """Admin changes made while Redis was down, replayed when it returns."""
        link.on_recover(self._replay)

    def _keys(self, entity: Entity) -> list[str]:
        kind, ident = entity
        return [self.link.key("budget", kind, ident), self.link.key("budget", kind, ident, "held")]

    async def reserve(
        self, ledger: Ledger, entities: Sequence[Entity], now: float, amount: float = 0.0
    ) -> SharedHold | SharedRefusal | None:
        """Reserve ``amount`` USD in every budgeted entity's budget, if each has room after what
        requests in flight hold; None when there is nothing to reserve or Redis is down."""
        budgeted = [(e, ledger.states[e]) for e in entities if e in ledger.states and ledger.states[e].max_budget is not None]
        if not budgeted or not self.link.up:
            return None
        member = f"{uuid.uuid4().hex}|{max(float(amount), 0.0)!r}"
        keys: list[str] = []
        args: list[str] = [repr(now), repr(now + RESERVATION_LEASE), member]
        resets: list[str] = []
        for entity, state in budgeted:
            keys += self._keys(entity)
            reset = _reset_arg(state.reset_at)
            resets.append(reset)
            args += [repr(float(state.max_budget)), reset, repr(float(state.spend))]  # type: ignore[arg-type]
        try:
            result = await self._reserve(keys=keys, args=args)
        except REDIS_FAILURES as exc:
            self.link.failed(exc)
            return None
        status = int(result[0])
        if status != 1:
            entity, state = budgeted[int(result[1]) - 1]
            return SharedRefusal(entity, float(result[2]), float(result[3]), float(state.max_budget))  # type: ignore[arg-type]
        return SharedHold(tuple(e for e, _ in budgeted), member, tuple(resets))

    async def settle(self, reservation: SharedHold, cost: float) -> None:
        """The request ended: its reservations go, its cost joins the shared spend."""
        keys: list[str] = []
        for entity in reservation.entities:
            keys += self._keys(entity)
        if self.link.up:
            try:
                await self._settle(keys=keys, args=[repr(float(cost)), reservation.member])
                return
            except REDIS_FAILURES as exc:
                self.link.failed(exc)
        if cost > 0:
            for entity, reset in zip(reservation.entities, reservation.reset_ats):
                self._missed[(entity, reset)] = self._missed.get((entity, reset), 0.0) + cost

    async def admin_change(self, entity: Entity, fields: dict[str, float | None]) -> None:
        """An admin set ``spend`` and/or started a new period (``reset_at``): Redis takes the new figures."""
        if "spend" in fields:
            for key in [k for k in self._missed if k[0] == entity]:
                del self._missed[key]  # costs from before the reset no longer count
        mapping = {name: (_reset_arg(value) if name == "reset_at" else repr(float(value or 0.0))) for name, value in fields.items()}
        if self.link.up:
            try:
                key = self._keys(entity)[0]
                if await self.link.client.exists(key):  # absent: the next request seeds it from the store
                    await self.link.client.hset(key, mapping=mapping)
                return
            except REDIS_FAILURES as exc:
                self.link.failed(exc)
        self._changes.setdefault(entity, {}).update(fields)

    async def _replay(self) -> None:
        """Redis is back: apply what happened while it was away (admin changes first, then costs)."""
        changes, self._changes = self._changes, {}
        for entity, fields in changes.items():
            await self.admin_change(entity, fields)
        missed, self._missed = self._missed, {}
        items = list(missed.items())
        for done, ((entity, reset), amount) in enumerate(items):
            try:
                await self._add_missed(keys=[self._keys(entity)[0]], args=[repr(amount), reset])
            except REDIS_FAILURES:
                for key, value in items[done:]:  # down again: keep the rest for the next recovery
                    self._missed[key] = self._missed.get(key, 0.0) + value
                raise
        if items:
            log.info("added the spend of %d budgets made while Redis was unreachable", len(items))
