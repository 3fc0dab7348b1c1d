"""Rate limits shared by every instance: the ``Counters`` interface on Redis, with a local fallback.

``RedisCounters`` keeps the same exact sliding minute as ``LocalCounters`` — a sorted set of
request times per scope, a sorted set of (time, tokens) entries with a running sum — and
admits a request with one Lua script, so the check of every limit and the recording in all
of them happen atomically, all-or-nothing, across instances. Times are the ``now`` each
instance passes (its wall clock; run NTP), so a request counts in the same minute everywhere.

Parallel-request slots are members of a sorted set scored by a lease expiry (``LEASE``
seconds ahead). The instance holding a slot renews the lease every ``LEASE / 3`` seconds
while the request runs; an instance that crashes stops renewing, and its slots free
themselves within ``LEASE`` seconds instead of being held forever. Tokens held for a
request in flight (``limits.reservation``) are leased the same way: one ``id:tokens`` member
per tpm scope, counted with the window by every instance, removed by ``add_tokens`` when the
request reports its real tokens.

``FailoverCounters`` is what the gateway uses: Redis while it answers, this instance's
``LocalCounters`` while it does not (each instance then enforces every limit on its own),
and Redis again as soon as the link's probe sees it back.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Callable, Sequence

from keystile.aio import stop_tasks
from keystile.limits.ratelimit import LOCAL_HOLD, WINDOW, Admission, LocalCounters, Quota, RateCheck, Refusal
from keystile.store.redis_link import REDIS_FAILURES, RedisLink

log = logging.getLogger("keystile.ratelimit")

LEASE = 30.0
"""Seconds a parallel-request slot survives without its holder renewing it."""
SLOT_MARK = "\x00redis\x00"
"""Prefix of the slots and token holds RedisCounters hands out (local ones are plain names)."""

# KEYS: five per check (requests, token entries, token sum, parallel slots, held tokens).
# ARGV: now, window, lease expiry, unique id, tokens to hold, then rpm, tpm, parallel per check
# ('' = no limit). Returns {1, rpm_limit, rpm_remaining, rpm_reset, tpm_limit, tpm_remaining,
# tpm_reset} or {0, check index (1-based), 'rpm'|'tpm'|'parallel', retry_after}; numbers as strings.
_ADMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local id = ARGV[4]
local hold = tonumber(ARGV[5])
local edge = now - window
local ttl = math.ceil((window + 2 * (expiry - now)) * 1000)
local n = #KEYS / 5
local q = {'', '', '', '', '', ''}
local best_rpm, best_tpm = nil, nil

local function held_sum(held)
  redis.call('ZREMRANGEBYSCORE', held, '-inf', now)
  local total = 0
  for _, member in ipairs(redis.call('ZRANGE', held, 0, -1)) do
    total = total + tonumber(string.match(member, ':(%d+)$'))
  end
  return total
end

local function token_sum(tok, sum)
  local old = redis.call('ZRANGEBYSCORE', tok, '-inf', edge)
  local total = redis.call('GET', sum)
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', tok, '-inf', edge)
  end
  if total then
    total = tonumber(total)
    for _, member in ipairs(old) do
      total = total - tonumber(string.match(member, ':(%d+)$'))
    end
  end
  if (not total) or total < 0 then  -- the sum was lost (eviction): recount the window
    total = 0
    for _, member in ipairs(redis.call('ZRANGE', tok, 0, -1)) do
      total = total + tonumber(string.match(member, ':(%d+)$'))
    end
  end
  redis.call('SET', sum, total, 'PX', ttl)
  return total
end

for i = 1, n do
  local req, tok, sum, par, held = KEYS[5*i-4], KEYS[5*i-3], KEYS[5*i-2], KEYS[5*i-1], KEYS[5*i]
  local rpm = tonumber(ARGV[5 + 3*i - 2])
  local tpm = tonumber(ARGV[5 + 3*i - 1])
  local parallel = tonumber(ARGV[5 + 3*i])
  if parallel then
    redis.call('ZREMRANGEBYSCORE', par, '-inf', now)
    if redis.call('ZCARD', par) >= parallel then
      return {0, i, 'parallel', '1'}
    end
  end
  if rpm then
    redis.call('ZREMRANGEBYSCORE', req, '-inf', edge)
    local count = redis.call('ZCARD', req)
    if count >= rpm then
      local nth = redis.call('ZRANGE', req, count - rpm, count - rpm, 'WITHSCORES')
      return {0, i, 'rpm', tostring(math.max(tonumber(nth[2]) + window - now, 0.001))}
    end
    local remaining = rpm - count - 1
    if best_rpm == nil or remaining < best_rpm then
      best_rpm = remaining
      local first = redis.call('ZRANGE', req, 0, 0, 'WITHSCORES')
      local start = now
      if first[2] then start = tonumber(first[2]) end
      q[1], q[2], q[3] = tostring(rpm), tostring(remaining), tostring(start + window - now)
    end
  end
  if tpm then
    local total = token_sum(tok, sum)
    local first = redis.call('ZRANGE', tok, 0, 0, 'WITHSCORES')
    if total >= tpm then
      -- retry when enough counted tokens have left the window for the sum to be under the limit
      local retry = 1.0
      local entries = redis.call('ZRANGE', tok, 0, -1, 'WITHSCORES')
      local left = total
      for j = 1, #entries, 2 do
        left = left - tonumber(string.match(entries[j], ':(%d+)$'))
        retry = tonumber(entries[j + 1]) + window - now
        if left < tpm then break end
      end
      return {0, i, 'tpm', tostring(math.max(retry, 0.001))}
    end
    local in_flight = held_sum(held)
    if in_flight > 0 and total + in_flight >= tpm then
      return {0, i, 'tpm', '1'}  -- held by requests still running
    end
    local remaining = math.max(tpm - total - in_flight - hold, 0)
    if best_tpm == nil or remaining < best_tpm then
      best_tpm = remaining
      local start = now
      if first[2] then start = tonumber(first[2]) end
      q[4], q[5], q[6] = tostring(tpm), tostring(remaining), tostring(start + window - now)
    end
  end
end

for i = 1, n do
  if ARGV[5 + 3*i - 2] ~= '' then
    redis.call('ZADD', KEYS[5*i-4], now, id)
    redis.call('PEXPIRE', KEYS[5*i-4], ttl)
  end
  if ARGV[5 + 3*i] ~= '' then
    redis.call('ZADD', KEYS[5*i-1], expiry, id)
    redis.call('PEXPIRE', KEYS[5*i-1], ttl)
  end
  if hold > 0 and ARGV[5 + 3*i - 1] ~= '' then
    redis.call('ZADD', KEYS[5*i], expiry, id .. ':' .. ARGV[5])
    redis.call('PEXPIRE', KEYS[5*i], ttl)
  end
end
return {1, q[1], q[2], q[3], q[4], q[5], q[6]}
"""

# KEYS: three per scope (token entries, token sum, held tokens). ARGV: now, window, tokens,
# unique id, the held member to drop ('' = none).
_ADD_TOKENS = """
local ttl = math.ceil(tonumber(ARGV[2]) * 2000)
local tokens = tonumber(ARGV[3])
for i = 1, #KEYS / 3 do
  local tok, sum, held = KEYS[3*i-2], KEYS[3*i-1], KEYS[3*i]
  if ARGV[5] ~= '' then
    redis.call('ZREM', held, ARGV[5])
  end
  if tokens > 0 then
    redis.call('ZADD', tok, ARGV[1], ARGV[4] .. ':' .. ARGV[3])
    redis.call('PEXPIRE', tok, ttl)
    if redis.call('EXISTS', sum) == 1 then
      redis.call('INCRBY', sum, ARGV[3])
      redis.call('PEXPIRE', sum, ttl)
    end
  end
end
return 1
"""


def _int_or_none(value: bytes | str) -> int | None:
    return int(value) if value not in (b"", "") else None


def _float(value: bytes | str) -> float:
    return float(value) if value not in (b"", "") else 0.0


class RedisCounters:
    """Exact sliding-minute counters and leased parallel slots, shared through Redis."""

    def __init__(self, link: RedisLink, clock: Callable[[], float]) -> None:
        self.link = link
        self.clock = clock
        self._admit = link.client.register_script(_ADMIT)
        self._add_tokens = link.client.register_script(_ADD_TOKENS)
        self._held: dict[str, tuple[str, str]] = {}
        """Slots this instance holds: slot → (sorted-set key, member); renewed until released."""
        self._holds: dict[str, tuple[list[str], str]] = {}
        """Tokens this instance holds: hold → (sorted-set keys, member); renewed until settled."""
        self._renewer: asyncio.Task | None = None

    def _keys(self, scope: str) -> list[str]:
        return [self.link.key("rl", scope, part) for part in ("r", "t", "ts", "p", "th")]

    async def admit(self, checks: Sequence[RateCheck], now: float, hold: int = 0) -> Admission:
        keys: list[str] = []
        hold = max(int(hold), 0)
        args: list[object] = [repr(now), repr(WINDOW), repr(now + LEASE), uuid.uuid4().hex, str(hold)]
        for check in checks:
            keys += self._keys(check.scope)
            args += [_arg(check.rpm), _arg(check.tpm), _arg(check.parallel)]
        result = await self._admit(keys=keys, args=args)
        if int(result[0]) == 0:
            check = checks[int(result[1]) - 1]
            kind = result[2].decode() if isinstance(result[2], bytes) else str(result[2])
            return Admission(Refusal(check, kind, float(result[3])))
        quota = Quota(
            rpm_limit=_int_or_none(result[1]),
            rpm_remaining=_int_or_none(result[2]),
            rpm_reset=_float(result[3]),
            tpm_limit=_int_or_none(result[4]),
            tpm_remaining=_int_or_none(result[5]),
            tpm_reset=_float(result[6]),
        )
        member = args[3]
        slots = []
        for check in checks:
            if check.parallel is not None:
                slot = f"{SLOT_MARK}{member}\x00{check.scope}"
                self._held[slot] = (self._keys(check.scope)[3], str(member))
                slots.append(slot)
        held_keys = [self._keys(check.scope)[4] for check in checks if check.tpm is not None] if hold else []
        token_hold = None
        if held_keys:
            token_hold = f"{SLOT_MARK}{member}:{hold}"
            self._holds[token_hold] = (held_keys, f"{member}:{hold}")
        if slots or token_hold:
            self._ensure_renewer()
        return Admission(None, quota, tuple(slots), token_hold)

    async def release(self, slots: Sequence[str]) -> None:
        held = [self._held.pop(slot) for slot in slots if slot in self._held]
        if held:
            async with self.link.client.pipeline(transaction=False) as pipe:
                for key, member in held:
                    pipe.zrem(key, member)
                await pipe.execute()

    def forget_slots(self, slots: Sequence[str]) -> None:
        """Stop renewing slots that could not be released (Redis down): their leases run out."""
        for slot in slots:
            self._held.pop(slot, None)

    def forget_hold(self, hold: str) -> None:
        """Stop renewing held tokens that could not be dropped (Redis down): their lease runs out."""
        self._holds.pop(hold, None)

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float, hold: str | None = None, held: int = 0) -> None:
        """Count ``tokens`` in every scope's window and drop the tokens ``hold`` held there, in one script."""
        member = ""
        if hold is not None and hold in self._holds:
            member = self._holds[hold][1]
        if (tokens <= 0 and not member) or not scopes:
            return
        keys: list[str] = []
        for scope in scopes:
            keys += self._keys(scope)[1:3]
            keys.append(self._keys(scope)[4])
        await self._add_tokens(keys=keys, args=[repr(now), repr(WINDOW), str(max(int(tokens), 0)), uuid.uuid4().hex, member])
        if member:
            self._holds.pop(hold, None)  # type: ignore[arg-type]

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew(), name="keystile-slot-leases")

    async def _renew(self) -> None:
        """Push the lease of every held slot and held tokens forward while their request runs."""
        while self._held or self._holds:
            await asyncio.sleep(LEASE / 3)
            if not (self._held or self._holds) or not self.link.up:
                continue
            expiry = self.clock() + LEASE
            ttl = int((WINDOW + 2 * LEASE) * 1000)  # the set outlives its newest lease, as when admitted
            try:
                async with self.link.client.pipeline(transaction=False) as pipe:
                    for key, member in list(self._held.values()):
                        pipe.zadd(key, {member: expiry}, xx=True)
                        pipe.pexpire(key, ttl)
                    for keys, member in list(self._holds.values()):
                        for key in keys:
                            pipe.zadd(key, {member: expiry}, xx=True)
                            pipe.pexpire(key, ttl)
                    await pipe.execute()
            except REDIS_FAILURES as exc:
                self.link.failed(exc)

    async def close(self) -> None:
        await stop_tasks(self._renewer)


def _arg(limit: int | None) -> str:
    return "" if limit is None else str(int(limit))


class FailoverCounters:
    """Redis while the link is up; this instance's own counters while it is down."""

    def __init__(self, shared: RedisCounters, local: LocalCounters, link: RedisLink) -> None:
        self.shared = shared
        self.local = local
        self.link = link

    async def admit(self, checks: Sequence[RateCheck], now: float, hold: int = 0) -> Admission:
        if self.link.up:
            try:
                return await self.shared.admit(checks, now, hold)
            except REDIS_FAILURES as exc:
                self.link.failed(exc)
        return self.local.admit_now(checks, now, hold)

    async def release(self, slots: Sequence[str]) -> None:
        shared = [s for s in slots if s.startswith(SLOT_MARK)]
        local = [s for s in slots if not s.startswith(SLOT_MARK)]
        if local:
            self.local.release_now(local)
        if shared:
            if self.link.up:
                try:
                    await self.shared.release(shared)
                    return
                except REDIS_FAILURES as exc:
                    self.link.failed(exc)
            self.shared.forget_slots(shared)

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float, hold: str | None = None, held: int = 0) -> None:
        """Tokens go where the shared count is (Redis while it answers); a hold is dropped where it was made."""
        shared_hold = hold if hold is not None and hold.startswith(SLOT_MARK) else None
        if hold == LOCAL_HOLD:
            self.local.add_tokens_now(scopes, 0, now, held)  # admitted while Redis was down
        if self.link.up:
            try:
                await self.shared.add_tokens(scopes, tokens, now, shared_hold)
                return
            except REDIS_FAILURES as exc:
                self.link.failed(exc)
        if shared_hold is not None:
            self.shared.forget_hold(shared_hold)
        self.local.add_tokens_now(scopes, tokens, now)

    async def close(self) -> None:
        await self.shared.close()
