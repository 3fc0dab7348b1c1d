"""Plain ASGI plumbing: read a bounded body, send JSON or bytes, watch for a vanished client.

Raw ASGI on the hot path costs ~2 µs per request where a framework costs 15–130 µs
(STACK.md), so requests and responses are handled with these few functions.
"""

from __future__ import annotations

import asyncio
import weakref
from functools import partial
from typing import Any, Awaitable, Callable, Iterable, MutableMapping

import orjson

from keystile.apiformat import ApiFormat
from keystile.errors import ErrorKind, GatewayError, error_headers

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS: Headers = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class ClientDisconnected(Exception):
    """The client went away while its body was being read."""


async def read_body(receive: Receive, limit: int, declared: int | None = None) -> bytes:
    """The whole request body, refusing with 413 as soon as it passes ``limit`` bytes.

    With a ``content-length`` (``declared``), the body is complete once that many bytes are
    in: some servers (granian) still follow with an empty ``more_body: False`` message, and
    waiting for it costs a round trip to the server's thread before the request can go on.
    It is left for the next ``receive`` (``DisconnectWatch`` skips such messages).
    """
    if declared is not None and declared > limit:
        raise GatewayError(ErrorKind.REQUEST_TOO_LARGE, f"Request body of {declared} bytes exceeds the {limit}-byte limit.")
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnected()
    body = message.get("body", b"")
    if not message.get("more_body") or len(body) == declared:
        if len(body) > limit:
            raise GatewayError(ErrorKind.REQUEST_TOO_LARGE, f"Request body exceeds the {limit}-byte limit.")
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise GatewayError(ErrorKind.REQUEST_TOO_LARGE, f"Request body exceeds the {limit}-byte limit.")
        parts.append(chunk)
        if not message.get("more_body") or size == declared:
            return b"".join(parts)


async def send_bytes(send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, payload: Any, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    await send_bytes(send, status, orjson.dumps(payload), [JSON_TYPE, *headers])


# Statuses a client may retry (timeouts, conflicts, rate limits); every other 4xx keystile
# itself answers will fail the same way again. Saying so stops SDKs and Claude Code from
# retrying a wrong key for minutes (the Anthropic and OpenAI SDKs honour x-should-retry).
_RETRYABLE_4XX = frozenset({408, 409, 429})
_NO_RETRY = (b"x-should-retry", b"false")


async def send_error(send: Send, fmt: ApiFormat, error: GatewayError, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    """A gateway-originated error in ``fmt``'s shape; a 4xx that retrying cannot fix says ``x-should-retry: false``."""
    extra = [(name.encode(), value.encode()) for name, value in error.headers]
    status = error.status
    if 400 <= status < 500 and status not in _RETRYABLE_4XX:
        extra.append(_NO_RETRY)
    extra += error_headers(fmt, status)
    await send_bytes(send, status, error.render(fmt), [JSON_TYPE, *extra, *headers])


def header_value(headers: Headers, name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def headers_size(headers: Headers) -> int:
    return sum(len(k) + len(v) + 4 for k, v in headers)


class DisconnectWatch:
    """Cancels the request's task the moment the client disconnects.

    Some servers keep accepting ``send`` after the peer is gone, so the only reliable
    signal is ``http.disconnect`` from ``receive``. Once the body has been read, the next
    ``receive`` resolves only on disconnect: a done-callback on it (or, where ``receive``
    returns a plain coroutine, a side task) cancels the request, so a vanished client stops
    the upstream call at once, streaming or not. (uvicorn's ``receive`` is a coroutine, so
    the watch costs one small task per request there; granian's returns a future.)

    The callback reaches the watch through a weak reference. granian's futures are invisible
    to the garbage collector, so a cycle through one (watch → future → bound-method callback
    → watch) is never collected: it leaked the future's native state, ~100 bytes per request.
    Call ``stop`` before the last byte of the answer goes out: servers (uvicorn, granian)
    report a finished request to a waiting ``receive`` as a disconnect.
    """

    __slots__ = ("disconnected", "_pending", "_target", "_receive", "_rearms", "_callback", "__weakref__")

    def __init__(self, receive: Receive) -> None:
        self.disconnected = False
        self._target = asyncio.current_task()
        self._receive = receive
        self._rearms = 0
        self._callback = partial(_watch_resolved, weakref.ref(self))
        self._arm()

    def _arm(self) -> None:
        pending = self._receive()
        if not asyncio.isfuture(pending):
            pending = asyncio.ensure_future(pending)
        self._pending: asyncio.Future | None = pending
        pending.add_done_callback(self._callback)

    def _resolved(self, pending: asyncio.Future) -> None:
        if pending.cancelled() or pending is not self._pending:
            return
        try:
            message = pending.result()
        except Exception:  # the server tore the connection down: same as a disconnect
            message = {"type": "http.disconnect"}
        if message.get("type") == "http.disconnect":
            self.disconnected = True
            if self._target is not None:
                self._target.cancel()
        elif self._rearms < 8:  # a stray empty body message: keep listening
            self._rearms += 1
            self._arm()

    def stop(self) -> None:
        pending = self._pending
        if pending is None:
            return
        self._pending = None
        if not pending.done():
            pending.remove_done_callback(self._callback)
            pending.cancel()


def _watch_resolved(ref: "weakref.ref[DisconnectWatch]", pending: asyncio.Future) -> None:
    watch = ref()
    if watch is not None:
        watch._resolved(pending)
