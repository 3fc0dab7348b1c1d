"""Rate limits shared by every instance: the ``Counters`` interface on Redis, with a local fallback.

``RedisCounters`` keeps the same exact sliding minute as ``LocalCounters`` — a sorted set of
request times per scope, a sorted set of (time, tokens) entries with a running sum — and
admits a request with one Lua script, so the check of every limit and the recording in all
of them happen atomically, all-or-nothing, across instances. Times are the ``now`` each
instance passes (its wall clock; run NTP), so a request counts in the same minute everywhere.

Parallel-request slots are members of a sorted set scored by a lease expiry (``LEASE``
seconds ahead). The instance holding a slot renews the lease every ``LEASE / 3`` seconds
while the request runs; an instance that crashes stops renewing, and its slots free
themselves within ``LEASE`` seconds instead of being held forever.

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
from keystile.limits.ratelimit import WINDOW, Admission, LocalCounters, Quota, RateCheck, Refusal
from keystile.store.redis_link import REDIS_FAILURES, RedisLink

log = logging.getLogger("keystile.ratelimit")

LEASE = 30.0
"""Seconds a parallel-request slot survives without its holder renewing it."""
SLOT_MARK = "\x00redis\x00"
"""Prefix of the slots RedisCounters hands out (local slots are plain scope names)."""

# KEYS: four per check (requests, token entries, token sum, parallel slots).
# ARGV: now, window, lease expiry, unique id, then rpm, tpm, parallel per check ('' = no limit).
# Returns {1, rpm_limit, rpm_remaining, rpm_reset, tpm_limit, tpm_remaining, tpm_reset} or
# {0, check index (1-based), 'rpm'|'tpm'|'parallel', retry_after}; numbers as strings.
_ADMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local id = ARGV[4]
local edge = now - window
local ttl = math.ceil((window + 2 * (expiry - now)) * 1000)
local n = #KEYS / 4
local q = {'', '', '', '', '', ''}
local best_rpm, best_tpm = nil, nil

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
  local req, tok, sum, par = KEYS[4*i-3], KEYS[4*i-2], KEYS[4*i-1], KEYS[4*i]
  local rpm = tonumber(ARGV[4 + 3*i - 2])
  local tpm = tonumber(ARGV[4 + 3*i - 1])
  local parallel = tonumber(ARGV[4 + 3*i])
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
    local remaining = tpm - total
    if best_tpm == nil or remaining < best_tpm then
      best_tpm = remaining
      local start = now
      if first[2] then start = tonumber(first[2]) end
      q[4], q[5], q[6] = tostring(tpm), tostring(remaining), tostring(start + window - now)
    end
  end
end

for i = 1, n do
  if ARGV[4 + 3*i - 2] ~= '' then
    redis.call('ZADD', KEYS[4*i-3], now, id)
    redis.call('PEXPIRE', KEYS[4*i-3], ttl)
  end
  if ARGV[4 + 3*i] ~= '' then
    redis.call('ZADD', KEYS[4*i], expiry, id)
    redis.call('PEXPIRE', KEYS[4*i], ttl)
  end
end
return {1, q[1], q[2], q[3], q[4], q[5], q[6]}
"""

# KEYS: two per scope (token entries, token sum). ARGV: now, window, tokens, unique id.
_ADD_TOKENS = """
local ttl = math.ceil(tonumber(ARGV[2]) * 2000)
for i = 1, #KEYS / 2 do
  local tok, sum = KEYS[2*i-1], KEYS[2*i]
  redis.call('ZADD', tok, ARGV[1], ARGV[4] .. ':' .. ARGV[3])
  redis.call('PEXPIRE', tok, ttl)
  if redis.call('EXISTS', sum) == 1 then
    redis.call('INCRBY', sum, ARGV[3])
    redis.call('PEXPIRE', sum, ttl)
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
        self._renewer: asyncio.Task | None = None

    def _keys(self, scope: str) -> list[str]:
        return [self.link.key("rl", scope, part) for part in ("r", "t", "ts", "p")]

    async def admit(self, checks: Sequence[RateCheck], now: float) -> Admission:
        keys: list[str] = []
        args: list[object] = [repr(now), repr(WINDOW), repr(now + LEASE), uuid.uuid4().hex]
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
        if slots:
            self._ensure_renewer()
        return Admission(None, quota, tuple(slots))

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

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        if tokens <= 0 or not scopes:
            return
        keys: list[str] = []
        for scope in scopes:
            keys += self._keys(scope)[1:3]
        await self._add_tokens(keys=keys, args=[repr(now), repr(WINDOW), str(int(tokens)), uuid.uuid4().hex])

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew(), name="keystile-slot-leases")

    async def _renew(self) -> None:
        """Push the lease of every held slot forward while its request runs."""
        while self._held:
            await asyncio.sleep(LEASE / 3)
            if not self._held or not self.link.up:
                continue
            expiry = self.clock() + LEASE
            try:
                async with self.link.client.pipeline(transaction=False) as pipe:
                    for key, member in list(self._held.values()):
                        pipe.zadd(key, {member: expiry}, xx=True)
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

    async def admit(self, checks: Sequence[RateCheck], now: float) -> Admission:
        if self.link.up:
            try:
                return await self.shared.admit(checks, now)
            except REDIS_FAILURES as exc:
                self.link.failed(exc)
        return self.local.admit_now(checks, now)

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

    async def add_tokens(self, scopes: Sequence[str], tokens: int, now: float) -> None:
        if self.link.up:
            try:
                await self.shared.add_tokens(scopes, tokens, now)
                return
            except REDIS_FAILURES as exc:
                self.link.failed(exc)
        self.local.add_tokens_now(scopes, tokens, now)

    async def close(self) -> None:
        await self.shared.close()
