"""The key cache while the database is down: cached keys within the grace period, 503 for the rest."""

from __future__ import annotations

import asyncio

import pytest

from keystile.auth import Authenticator, KeyCache, hash_key
from keystile.credentials import resolve_credentials
from keystile.errors import ErrorKind, GatewayError
from keystile.metrics import Metrics
from keystile.store.database import DatabaseUnavailable
from keystile.store.health import StoreHealth
from keystile.store.records import KeyRecord

GOOD = "sk-ks-good-key-000000000000000000"
OTHER = "sk-ks-other-key-00000000000000000"


class FlakyStore:
    """A store whose database can be switched off."""

    def __init__(self) -> None:
        self.keys = {hash_key(GOOD): KeyRecord(token_hash=hash_key(GOOD)), hash_key(OTHER): KeyRecord(token_hash=hash_key(OTHER))}
        self.down = False
        self.reads = 0

    async def get_key(self, token_hash: str) -> KeyRecord | None:
        self.reads += 1
        if self.down:
            raise DatabaseUnavailable("connection refused")
        return self.keys.get(token_hash)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(grace: float = 300.0) -> tuple[FlakyStore, Clock, KeyCache, StoreHealth, Metrics]:
    store, clock, metrics = FlakyStore(), Clock(), Metrics()
    health = StoreHealth(metrics, clock)
    return store, clock, KeyCache(store, ttl=60.0, clock=clock, grace=grace, health=health), health, metrics  # type: ignore[arg-type]


def test_an_expired_cached_key_is_served_within_the_grace_period():
    async def main() -> None:
        store, clock, cache, health, metrics = make()
        assert (await cache.get(hash_key(GOOD))).key is not None
        store.down = True
        clock.now += 61  # expired
        assert (await cache.get(hash_key(GOOD))).key is not None
        assert health.down and b'keystile_degraded{service="database"} 1.0' in metrics.render()
        reads = store.reads
        clock.now += 0.5
        await cache.get(hash_key(GOOD))
        assert store.reads == reads  # backing off: no second wait on a database that just failed
        clock.now += 300  # past expiry + grace
        with pytest.raises(GatewayError) as refused:
            await cache.get(hash_key(GOOD))
        assert refused.value.kind is ErrorKind.UNAVAILABLE and refused.value.status == 503
        store.down = False
        clock.now += 2
        assert (await cache.get(hash_key(GOOD))).key is not None
        assert not health.down and b'keystile_degraded{service="database"} 0.0' in metrics.render()

    asyncio.run(main())


def test_unknown_keys_are_503_and_a_cached_key_in_a_later_header_still_authenticates():
    async def main() -> None:
        store, clock, cache, _, _ = make()
        auth = Authenticator(cache, None, lambda: clock.now)
        await cache.get(hash_key(GOOD))
        store.down = True
        with pytest.raises(GatewayError) as refused:
            await auth.authenticate(resolve_credentials([(b"x-api-key", OTHER.encode())]))
        assert refused.value.kind is ErrorKind.UNAVAILABLE
        both = resolve_credentials([(b"authorization", f"Bearer {OTHER}".encode()), (b"x-api-key", GOOD.encode())])
        identity = await auth.authenticate(both)
        assert identity.token_hash == hash_key(GOOD)

    asyncio.run(main())


def test_an_invalidation_during_a_lookup_is_not_undone_by_it():
    async def main() -> None:
        store, _, cache, _, _ = make()
        started = asyncio.Event()
        release = asyncio.Event()
        original = store.get_key

        async def slow_get_key(token_hash: str) -> KeyRecord | None:
            record = await original(token_hash)
            started.set()
            await release.wait()
            return record

        store.get_key = slow_get_key  # type: ignore[method-assign]
        lookup = asyncio.create_task(cache.get(hash_key(GOOD)))
        await started.wait()
        cache.invalidate(hash_key(GOOD))  # the key was blocked while we were reading it
        release.set()
        await lookup
        store.get_key = original  # type: ignore[method-assign]
        reads = store.reads
        await cache.get(hash_key(GOOD))
        assert store.reads == reads + 1  # read again, not served from the stale lookup

    asyncio.run(main())
