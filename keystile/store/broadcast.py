"""Tells every instance at once that keys, users or teams changed: Redis pub/sub.

The instance that made a change publishes the key's hash (or ``*`` for "anything may have
changed") with the store's revision counter after the change; every other instance drops
that entry from its key cache when the message arrives, milliseconds later, and — when the
revision follows the last one it knew — knows it missed nothing else. Pub/sub delivers only to whoever is listening, so a message
sent while an instance is cut off from Redis is lost: the store's revision counter, polled
every half second, stays the fallback that catches up.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Callable

import redis.asyncio as aioredis

from keystile.aio import stop_tasks
from keystile.store.redis_link import REDIS_FAILURES, RedisLink

log = logging.getLogger("keystile.redis")

EVERYTHING = "*"
RESUBSCRIBE_DELAY = 0.5


class ChangeBroadcast:
    def __init__(self, link: RedisLink, on_change: Callable[[str | None, int], None]) -> None:
        self.link = link
        self.on_change = on_change
        """Called with (a key hash or None for everything, the revision) when another instance changed something."""
        self.channel = link.key("auth-changes")
        self.instance = uuid.uuid4().hex[:12]
        # Its own connection without a read timeout: a subscriber mostly waits.
        self._client = aioredis.Redis.from_url(link.url, socket_connect_timeout=1.0, health_check_interval=10)
        self._task: asyncio.Task | None = None
        self.subscribed = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="keystile-auth-broadcast")

    async def publish(self, token_hash: str | None, revision: int) -> None:
        if not self.link.up:
            return  # the others poll the store's revision counter
        try:
            await self.link.client.publish(self.channel, f"{self.instance} {revision} {token_hash or EVERYTHING}")
        except REDIS_FAILURES as exc:
            self.link.failed(exc)

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        self._deliver(message.get("data"))
            except asyncio.CancelledError:
                raise
            except REDIS_FAILURES as exc:
                self.subscribed.clear()
                log.debug("key-change subscription lost (%s); retrying", exc)
            finally:
                try:
                    await pubsub.aclose()
                except REDIS_FAILURES:
                    pass
            await asyncio.sleep(RESUBSCRIBE_DELAY)

    def _deliver(self, data: object) -> None:
        if not isinstance(data, (bytes, str)):
            return
        text = data.decode() if isinstance(data, bytes) else data
        parts = text.split(" ")
        if len(parts) != 3 or parts[0] == self.instance or not parts[1].isdigit():
            return
        self.on_change(None if parts[2] == EVERYTHING else parts[2], int(parts[1]))

    async def close(self) -> None:
        await stop_tasks(self._task)
        try:
            await self._client.aclose()
        except REDIS_FAILURES:
            pass
