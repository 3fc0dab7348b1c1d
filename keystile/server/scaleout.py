"""What several keystile instances share through Redis, attached to a ``Gateway`` when ``redis_url`` is set.

Rate-limit counters (``limits.redis_counters``), budget reservations
(``limits.redis_budgets``) and the key-cache broadcast (``store.broadcast``) all use one
``RedisLink``. Their keys are namespaced by a cluster id kept in the database, so the
instances of one deployment (one database) share state, and another deployment pointed at
the same Redis never sees it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from keystile.limits.ratelimit import LocalCounters
from keystile.limits.redis_budgets import RedisBudgets
from keystile.limits.redis_counters import FailoverCounters, RedisCounters
from keystile.store.broadcast import ChangeBroadcast
from keystile.store.redis_link import RedisLink
from keystile.store.repository import Store

if TYPE_CHECKING:
    from keystile.server.app import Gateway

log = logging.getLogger("keystile")

CLUSTER_META = "cluster_id"


async def cluster_id(store: Store) -> str:
    """The id every instance on this database shares (created by whichever starts first)."""
    existing = await store.get_meta(CLUSTER_META)
    if existing:
        return existing
    await store.insert_meta_if_absent(CLUSTER_META, uuid.uuid4().hex[:16])
    stored = await store.get_meta(CLUSTER_META)
    assert stored is not None
    return stored


@dataclass(slots=True)
class SharedState:
    link: RedisLink
    counters: FailoverCounters
    budgets: RedisBudgets
    broadcast: ChangeBroadcast

    async def close(self) -> None:
        await self.broadcast.close()
        await self.counters.close()
        await self.link.close()


async def connect_shared_state(gateway: "Gateway", url: str) -> SharedState:
    """Connect (or start degraded, if Redis is down) and hand the gateway's stages their shared versions."""
    assert gateway.store is not None
    link = RedisLink(url, gateway.metrics, prefix=f"keystile:{await cluster_id(gateway.store)}:")
    await link.start()
    counters = FailoverCounters(RedisCounters(link, gateway.clock.now), LocalCounters(), link)
    budgets = RedisBudgets(link)
    broadcast = ChangeBroadcast(link, gateway.changed_elsewhere)
    broadcast.start()
    gateway.authorizer.counters = counters
    gateway.authorizer.shared_budgets = budgets
    return SharedState(link, counters, budgets, broadcast)
