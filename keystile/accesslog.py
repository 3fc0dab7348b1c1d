"""The access log: one JSON line per request — who, which model and deployment, what came of it.

A request adds its line to an in-memory batch (a dict and an ``orjson.dumps``, about a
microsecond); the batch goes to the ``keystile.access`` logger four times a second, whose
writer thread puts it on stderr. So the request path never waits on a write, and a full
pipe never stalls the event loop. Lines carry the key's alias and the first characters of
its hash, never the key; the client's model string is cut to 200 characters; the query
string (where a Gemini client may put its key) is never logged.

Turn it off with ``server.access_log: false``.
"""

from __future__ import annotations

import asyncio
import logging
import time

import orjson

from keystile.logs import ACCESS_LOGGER, redact

log = logging.getLogger(ACCESS_LOGGER)
FLUSH_SECONDS = 0.25
_MAX_TEXT = 200
_MAX_PENDING = 10_000  # lines kept if the writer falls behind; past that, counted and dropped


def _cap(text: str | None) -> str | None:
    """Client-chosen text, cut to 200 characters, with anything shaped like a key masked."""
    if text is None:
        return None
    if len(text) > _MAX_TEXT:
        text = text[:_MAX_TEXT] + "…"
    if "sk-" in text or "earer" in text:
        text = redact(text)
    return text


class AccessLog:
    """Collects one line per request and hands them to the logger in batches."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.pending: list[bytes] = []
        self.dropped = 0
        self._task: asyncio.Task | None = None

    def request(
        self,
        *,
        request_id: str | None,
        route: str,
        status: int,
        latency: float,
        key_alias: str | None = None,
        key_hash: str | None = None,
        model: str | None = None,
        group: str | None = None,
        deployment: str | None = None,
        attempts: int = 0,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost: float = 0.0,
        stream: bool = False,
        error: str | None = None,
    ) -> None:
        if not self.enabled:
            return
        if len(self.pending) >= _MAX_PENDING:
            self.dropped += 1
            return
        line = {
            "ts": round(time.time(), 3),
            "request_id": request_id,
            "route": route,
            "status": status,
            "latency_ms": round(latency * 1000, 3),
            "key_alias": _cap(key_alias),
            "key": key_hash[:12] if key_hash else None,
            "model": _cap(model),
            "group": group,
            "deployment": deployment,
            "attempts": attempts,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cost": cost,
            "stream": stream,
        }
        if error is not None:
            line["error"] = _cap(error)
        self.pending.append(orjson.dumps(line))

    def flush(self) -> None:
        if not self.pending:
            return
        lines, self.pending = self.pending, []
        if self.dropped:
            log.warning("access log fell behind: %d lines dropped", self.dropped)
            self.dropped = 0
        log.info(b"\n".join(lines).decode())

    def start(self) -> None:
        if self.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="keystile-access-log")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            self.flush()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self.flush()
