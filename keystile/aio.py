"""Small asyncio helpers shared by the gateway's background tasks."""

from __future__ import annotations

import asyncio


async def stop_tasks(*tasks: asyncio.Task | None) -> None:
    """Cancel background tasks and wait for them to end, whatever they ended with.

    For shutdown paths: a loop task is cancelled, and an error it died of earlier must not
    stop the rest of the shutdown. ``None`` (a task never started) is skipped.
    """
    started = [task for task in tasks if task is not None]
    for task in started:
        task.cancel()
    for task in started:
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
