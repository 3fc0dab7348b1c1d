"""Authenticate: turn credential candidates into an identity, from an in-process cache.

The master key is compared in constant time (as SHA-256 digests, so a generated master key
whose raw value was never stored works the same way). Virtual keys are looked up by the
SHA-256 of the full key string through ``KeyCache`` — positive and negative entries with a
TTL, single-flight on a miss — so a request costs a database round-trip only the first
time a key is seen. Changes made through keystile invalidate at once; changes made by other
processes arrive through the store's revision counter (or Redis pub/sub) within a second.

While the database is unreachable a cached key whose entry has expired is still served, up
to ``grace`` seconds past its expiry (``store_outage_grace``); a key that is not cached is
refused with 503, since keystile cannot tell whether it is valid.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

from keystile.credentials import (
    QUERY_KEY_SOURCE,
    Candidate,
    Credentials,
    UpstreamCredentialKind,
    mask,
    upstream_credential_kind,
)
from keystile.errors import ErrorKind, GatewayError
from keystile.store.database import DatabaseUnavailable
from keystile.store.health import StoreHealth
from keystile.store.records import KeyRecord, TeamRecord, UserRecord
from keystile.store.repository import Store

KEY_PREFIX = "sk-ks-"
NEGATIVE_TTL = 5.0
MAX_NEGATIVE_ENTRIES = 100_000


def hash_key(raw: str) -> str:
    """SHA-256 hex of the full key string — the same scheme LiteLLM uses, so its hashes import."""
    return hashlib.sha256(raw.encode()).hexdigest()


def generate_key() -> str:
    """``sk-ks-`` + 32 URL-safe characters (192 bits of randomness)."""
    return KEY_PREFIX + secrets.token_urlsafe(24)


CUSTOM_KEY_MIN_CHARS = 16
CUSTOM_KEY_MAX_CHARS = 256


def custom_key_problem(raw: str, master_key_hash: str | None) -> str | None:
    """Why ``raw`` cannot be a key chosen by an admin (``/key/generate`` ``key``, ``/key/regenerate``
    ``new_key``), or None when it can.

    A key must be something a client can send and keystile will accept: printable ASCII
    without whitespace (HTTP header values; a non-ASCII key never authenticates), long enough
    not to be guessed, and never the master key or a provider's credential (both of which
    would be taken as something else).
    """
    if not CUSTOM_KEY_MIN_CHARS <= len(raw) <= CUSTOM_KEY_MAX_CHARS:
        return f"a custom key needs {CUSTOM_KEY_MIN_CHARS} to {CUSTOM_KEY_MAX_CHARS} characters, this one has {len(raw)}"
    if not all("!" <= c <= "~" for c in raw):
        return "a custom key may hold only printable ASCII characters, without spaces"
    if upstream_credential_kind(raw) is not None:
        return "this looks like an Anthropic credential and would never be accepted as a gateway key"
    if master_key_hash is not None and hmac.compare_digest(hash_key(raw), master_key_hash):
        return "a key cannot be the master key"
    return None


@dataclass(slots=True)
class Identity:
    """Who is calling, once authenticated."""

    token_hash: str
    """What budgets, rate limits, spend and log rows are kept under: a virtual key's stable
    ``KeyRecord.key_id`` (unchanged when it is regenerated), or the master key's hash. Named
    for what it was before keys had a stable id — the two are equal until a key is regenerated;
    read it as ``key_id``."""
    source: str
    """The header the gateway key came from."""
    is_master: bool = False
    key: KeyRecord | None = None
    user: UserRecord | None = None
    team: TeamRecord | None = None
    memo: dict = field(default_factory=dict)
    """Per-model admission facts derived from these records; shared by every request with the
    same cache entry, so they are worked out once and dropped when the entry is."""

    @property
    def key_id(self) -> str:
        return self.token_hash

    @property
    def alias(self) -> str | None:
        return self.key.key_alias if self.key else ("master" if self.is_master else None)


@dataclass(slots=True)
class CachedKey:
    key: KeyRecord | None
    user: UserRecord | None
    team: TeamRecord | None
    expires: float
    memo: dict = field(default_factory=dict)
    identities: dict = field(default_factory=dict)
    """header name → the ``Identity`` for this key sent in it: built once per cache entry."""

    def identity(self, token_hash: str, source: str) -> Identity:
        identity = self.identities.get(source)
        if identity is None:
            key_id = self.key.id if self.key is not None else token_hash
            identity = self.identities[source] = Identity(
                key_id, source, key=self.key, user=self.user, team=self.team, memo=self.memo
            )
        return identity


class KeyCache:
    """hash → key with its user and team, or a remembered miss; bounded and TTL'd."""

    def __init__(
        self,
        store: Store,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        *,
        grace: float = 0.0,
        health: StoreHealth | None = None,
    ) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.grace = grace
        self.health = health
        self._entries: dict[str, CachedKey] = {}
        self._negatives = 0
        self._inflight: dict[str, asyncio.Future[CachedKey]] = {}
        self._generation = 0
        self.lookups = 0

    def invalidate(self, token_hash: str | None = None) -> None:
        self._generation += 1  # a lookup already under way must not cache what it read before the change
        if token_hash is None:
            self._entries.clear()
            self._negatives = 0
        else:
            self._entries.pop(token_hash, None)

    async def get(self, token_hash: str) -> CachedKey:
        entry = self._entries.get(token_hash)
        if entry is not None and entry.expires > self.clock():
            return entry
        pending = self._inflight.get(token_hash)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CachedKey] = asyncio.get_running_loop().create_future()
        self._inflight[token_hash] = future
        try:
            entry = await self._fetch(token_hash, entry)
            future.set_result(entry)
            return entry
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._inflight[token_hash]

    async def _fetch(self, token_hash: str, stale: CachedKey | None) -> CachedKey:
        """Load from the store; while it is unreachable, the expired entry within the grace period, else 503."""
        health = self.health
        if health is None or not health.backing_off():
            try:
                entry = await self._load(token_hash)
            except DatabaseUnavailable as exc:
                if health is not None:
                    health.failed(exc)
            else:
                if health is not None:
                    health.ok()
                return entry
        if stale is not None and stale.key is not None and self.clock() < stale.expires + self.grace:
            return stale
        raise GatewayError(
            ErrorKind.UNAVAILABLE, "keystile cannot reach its database to check this key right now; retry shortly."
        )

    async def _load(self, token_hash: str) -> CachedKey:
        self.lookups += 1
        generation = self._generation
        key = await self.store.get_key(token_hash)
        now = self.clock()
        if key is None:
            if self._negatives >= MAX_NEGATIVE_ENTRIES:
                self._entries = {h: e for h, e in self._entries.items() if e.key is not None}
                self._negatives = 0
            self._negatives += 1
            entry = CachedKey(None, None, None, now + NEGATIVE_TTL)
        else:
            user = await self.store.get_user(key.user_id) if key.user_id else None
            team = await self.store.get_team(key.team_id) if key.team_id else None
            entry = CachedKey(key, user, team, now + self.ttl)
        if generation == self._generation:
            self._entries[token_hash] = entry
        return entry

    def cached(self) -> list[CachedKey]:
        return [e for e in self._entries.values() if e.key is not None]


class Authenticator:
    def __init__(self, cache: KeyCache, master_key_hash: str | None, wall_clock: Callable[[], float]) -> None:
        self.cache = cache
        self.master_key_hash = master_key_hash
        self.wall_clock = wall_clock
        self._master: dict[str, Identity] = {}  # header name → the master key's identity

    def is_master(self, token_hash: str) -> bool:
        return self.master_key_hash is not None and hmac.compare_digest(token_hash, self.master_key_hash)

    async def authenticate(self, credentials: Credentials) -> Identity:
        """The first candidate, in precedence order, that is the master key or a usable virtual key."""
        refusals: list[str] = []
        unavailable: GatewayError | None = None
        cache = self.cache
        for candidate in credentials.candidates:
            token_hash = hash_key(candidate.value)
            if self.is_master(token_hash):
                return self._master_identity(token_hash, candidate.source)
            try:
                entry = await cache.get(token_hash)
            except GatewayError as error:  # the store is down and this key is not cached: try the next one
                if error.kind is not ErrorKind.UNAVAILABLE:
                    raise
                unavailable = error
                continue
            reason = self._refusal(entry)
            if reason is None:
                return entry.identity(token_hash, candidate.source)
            refusals.append(f"{_describe(candidate)} {reason}")
        if unavailable is not None:
            raise unavailable
        raise GatewayError(ErrorKind.AUTHENTICATION, self._message(credentials, refusals))

    def _master_identity(self, token_hash: str, source: str) -> Identity:
        identity = self._master.get(source)
        if identity is None or identity.token_hash != token_hash:
            identity = self._master[source] = Identity(token_hash, source, is_master=True)
        return identity

    def _refusal(self, entry: CachedKey) -> str | None:
        key = entry.key
        if key is None:
            return "is not a valid keystile key"
        if key.blocked:
            return "is blocked"
        if key.expires_at is not None and key.expires_at <= self.wall_clock():
            expired = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.expires_at))
            return f"expired at {expired}"
        if entry.team is not None and entry.team.blocked:
            return f"belongs to team {entry.team.team_id!r}, which is blocked"
        return None

    @staticmethod
    def _message(credentials: Credentials, refusals: list[str]) -> str:
        looked = ", ".join(credentials.examined) if credentials.examined else "none present"
        upstream = credentials.upstream
        note = ""
        if upstream is not None:
            what = "an Anthropic OAuth token" if upstream.kind is UpstreamCredentialKind.ANTHROPIC_OAUTH else "an Anthropic API key"
            note = f" The {upstream.source} header holds {what}, which is never accepted as a gateway key."
        if not refusals:
            return (
                f"No gateway key found (headers examined: {looked}).{note} Send your keystile key in "
                "x-api-key or Authorization: Bearer."
            )
        return f"Invalid gateway key: {'; '.join(refusals)} (headers examined: {looked}).{note}"


def _describe(candidate: Candidate) -> str:
    source = "the key query parameter" if candidate.source == QUERY_KEY_SOURCE else candidate.source
    return f"{mask(candidate.value)} (from {source})"
