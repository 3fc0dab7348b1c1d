"""DisconnectWatch: cancels the request on ``http.disconnect``, ignores stray body messages,
and never ties itself to the server's future in a reference cycle (granian's futures are
invisible to the garbage collector, so such a cycle leaked memory on every request)."""

from __future__ import annotations

import asyncio
import gc
import weakref

from keystile.server.http import DisconnectWatch


class FakeServer:
    """``receive`` hands out futures the test resolves, as granian's does."""

    def __init__(self) -> None:
        self.pending: list[asyncio.Future] = []

    def receive(self) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future


def test_disconnect_cancels_the_request_and_stray_body_messages_do_not() -> None:
    async def run() -> None:
        server = FakeServer()

        async def request() -> None:
            watch = DisconnectWatch(server.receive)
            try:
                await asyncio.sleep(10)
            finally:
                assert watch.disconnected
                watch.stop()

        task = asyncio.ensure_future(request())
        await asyncio.sleep(0)
        server.pending[-1].set_result({"type": "http.request", "body": b"", "more_body": False})
        await asyncio.sleep(0)
        assert not task.done() and len(server.pending) == 2  # listening again
        server.pending[-1].set_result({"type": "http.disconnect"})
        await asyncio.gather(task, return_exceptions=True)
        assert task.cancelled()

    asyncio.run(run())


def test_after_stop_a_late_disconnect_is_ignored() -> None:
    async def run() -> None:
        server = FakeServer()
        outcome = []

        async def request() -> None:
            watch = DisconnectWatch(server.receive)
            watch.stop()
            await asyncio.sleep(0.01)
            outcome.append(watch.disconnected)

        task = asyncio.ensure_future(request())
        await asyncio.sleep(0)
        assert server.pending[0].cancelled()  # stop cancels the waiting receive
        await task
        assert outcome == [False]

    asyncio.run(run())


class Probe(DisconnectWatch):
    """A plain subclass: weak-referenceable whatever the base class's slots."""


def test_the_watch_is_freed_without_the_garbage_collector() -> None:
    """Whether or not ``stop`` ran, nothing the server holds keeps the watch alive."""

    async def run() -> None:
        server = FakeServer()
        for stop in (True, False):
            watch = Probe(server.receive)
            ref = weakref.ref(watch)
            if stop:
                watch.stop()
            del watch
            assert ref() is None, f"a reference cycle keeps the watch alive (stop={stop})"
        # The server resolving a future whose watch is gone is harmless.
        server.pending[-1].set_result({"type": "http.disconnect"})
        await asyncio.sleep(0)

    gc.disable()
    try:
        asyncio.run(run())
    finally:
        gc.enable()
