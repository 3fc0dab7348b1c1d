"""keystile's upstream HTTP client: pooled keep-alive HTTP/1.1 on asyncio + httptools.

Every proxied LLM call goes through `UpstreamClient.request`, so this is the largest CPU
cost of the hot path. It exists because general-purpose clients cost several times more
CPU per request (measured on uvloop: aiohttp ~6x for a small POST, ~3x for an SSE
stream; httpx far more, see STACK.md). It does only what a gateway needs: HTTP/1.1 to a
few origins, keep-alive pools, bodies as bytes in, streamed bytes out, precise errors.

    client.py      UpstreamClient, Timeouts: URL -> pool, request head, the one retry
    pool.py        HostPool: idle connections per (scheme, host, port), LIFO, TTL, optional cap
    connection.py  Connection: the asyncio.Protocol + httptools parser, writes, timeouts, head cap
    response.py    UpstreamResponse: status, headers, body by read() or async for, body cap
    proxy.py       HTTP(S)_PROXY / NO_PROXY, CONNECT tunnels
    tls.py         the TLS context: system CAs plus any configured CA bundle
    errors.py      the exception tree:

    UpstreamError                  (errors.py)
     ├── UpstreamConnectError      DNS failure, connection refused, TLS handshake/verification failure
     ├── UpstreamTimeout           .phase = "connect" | "first_byte" | "idle"
     ├── UpstreamDisconnected      connection reset or closed before the response (or its body) was complete
     ├── UpstreamProtocolError     malformed HTTP from the upstream
     └── UpstreamTooLarge          response head or whole-read body over its cap

Behaviour worth knowing:
- Headers are sent as given (lowercase names), after the request line, `host` and before
  `content-length`; any host/content-length/transfer-encoding/connection the caller passes
  is dropped. Values must not contain CR/LF (header values forwarded from an HTTP server
  cannot). Keep-alive is implied by HTTP/1.1. A caller that sends the same headers on every
  request may pass them pre-encoded, as bytes from `encode_headers` (or several such blocks
  joined), instead of a list.
- Retries: exactly one, and only when a *reused* pooled connection turns out to have been
  closed by the server (EOF/reset within `connection.STALE_WINDOW` of writing, before any
  response byte): the request is re-sent on a new connection. Nothing else is retried; the
  router decides about retrying LLM calls.
- Compression: keystile asks for `accept-encoding: identity`. A body that arrives with
  `content-encoding: gzip` or `deflate` anyway is decompressed here, and those two headers
  (content-encoding, content-length) are removed from `headers`, so callers always see the
  plain bytes. Other codings (br, zstd) are passed through untouched. Decompression runs in
  bounded steps, so a small compressed body cannot expand past the caps below.
- Size caps: a response head over `max_header_bytes` (default 64 KiB) and a body read whole
  with `read()` over `max_body_bytes` after decompression (default 64 MiB) fail with
  `UpstreamTooLarge` and the connection is dropped. Bodies read with `async for` have no
  total cap: at most about 1 MiB of them waits in memory for the caller.
- Proxies: with `proxies` (`ProxyRules.from_environment()`), each origin's pool is given its
  proxy once, when it is made: https goes through a CONNECT tunnel (TLS inside it, verified
  against the origin's name), http is sent to the proxy in absolute form. Proxy credentials
  go only in `proxy-authorization`.
- Streaming: `async for chunk in resp` yields whatever has arrived since the previous
  step as soon as it is parsed (several small reads may be joined, never held back).
  Reading from the socket pauses while more than 1 MiB is waiting for a slow consumer.
- Timeouts run on the event loop's timers, not `asyncio.wait_for`: `connect` covers
  waiting for a pool slot, TCP and TLS; `first_byte` runs from the request write until
  the response head has arrived (it includes writing a large body); `idle` is the longest
  time the body makes no progress: no bytes from the upstream or, while reading is paused
  for a slow caller, no consumption by the caller.
- Cancelling a task awaiting `request()`, `read()` or `__anext__`, or calling
  `aclose()` on an unfinished response, aborts the connection: the upstream sees the
  disconnect at once and stops generating.
- A client binds to the event loop of its first request; use one client per loop.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import urlsplit

from keystile.upstream.connection import SINGLE_WRITE_MAX, Connection
from keystile.upstream.connection import MAX_HEAD_BYTES
from keystile.upstream.errors import (
    StaleConnection,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from keystile.upstream.pool import HostPool
from keystile.upstream.proxy import ProxyRules
from keystile.upstream.response import MAX_BODY_BYTES, UpstreamResponse

log = logging.getLogger("keystile.upstream")

__all__ = [
    "Timeouts",
    "encode_headers",
    "UpstreamClient",
    "UpstreamResponse",
    "UpstreamError",
    "UpstreamConnectError",
    "UpstreamTimeout",
    "UpstreamDisconnected",
    "UpstreamProtocolError",
    "UpstreamTooLarge",
    "ProxyRules",
]


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect: float = 10.0  # TCP (+TLS) connect, including any wait for a pool slot
    first_byte: float = 600.0  # request written -> response status line + headers received
    idle: float = 600.0  # max gap between body chunks while reading the body (or in consuming them)


_DEFAULT_TIMEOUTS = Timeouts()

# Framing headers are the client's business; a caller's copy would conflict with ours.
_DROPPED_HEADERS = frozenset((b"host", b"content-length", b"transfer-encoding", b"connection"))
_BODYLESS_METHODS = frozenset(("GET", "HEAD", "DELETE", "OPTIONS"))
_MAX_CACHED_URLS = 4096


class UpstreamClient:
    """Pooled keep-alive HTTP/1.1 client; one pool per (scheme, host, port)."""

    __slots__ = (
        "_max_idle",
        "_ttl",
        "_max_connections",
        "_ssl",
        "_proxies",
        "_max_head",
        "_max_body",
        "_loop",
        "_pools",
        "_urls",
        "_closed",
    )

    def __init__(
        self,
        *,
        max_idle_per_host: int = 100,
        idle_ttl: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
        max_connections_per_host: int | None = None,
        proxies: ProxyRules | None = None,
        max_header_bytes: int = MAX_HEAD_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self._max_idle = max_idle_per_host
        self._ttl = idle_ttl
        self._max_connections = max_connections_per_host  # None: no cap, the gateway's limits apply
        self._ssl = ssl_context
        self._proxies = proxies
        self._max_head = max_header_bytes
        self._max_body = max_body_bytes
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pools: dict[tuple[str, str, int], HostPool] = {}
        # url -> (pool, b" /path?query HTTP/1.1\r\nhost: ...\r\n"): the parsed, encoded part
        # of the request head that depends only on the URL.
        self._urls: dict[str, tuple[HostPool, bytes]] = {}
        self._closed = False

    async def request(
        self,
        method: str,
        url: str,
        headers: list[tuple[bytes, bytes]] | bytes,
        body: bytes = b"",
        *,
        timeouts: Timeouts = _DEFAULT_TIMEOUTS,
    ) -> UpstreamResponse:
        """Send a request; returns once the status and headers are in (the body is read lazily)."""
        target = self._urls.get(url)
        if target is None:
            target = self._add_url(url)
        pool, tail = target
        head = _encode_head(method, tail, headers, body)
        loop = self._loop
        assert loop is not None
        conn = pool.take_idle(loop.time())
        if conn is None:
            conn = await pool.open(timeouts.connect)
        resp = await self._exchange(conn, method == "HEAD", head, body, timeouts)
        if resp.status or type(resp._exc) is not StaleConnection:
            return resp
        # The pooled connection was already dead: the one retry, on a new connection.
        conn = await pool.open(timeouts.connect, fresh=True)
        resp = await self._exchange(conn, method == "HEAD", head, body, timeouts)
        if not resp.status:
            raise resp._exc  # type: ignore[misc]
        return resp

    async def _exchange(
        self, conn: Connection, no_body: bool, head: bytes, body: bytes, timeouts: Timeouts
    ) -> UpstreamResponse:
        """Write the request on `conn` and wait for the response head.

        Returns the response with its head, or failed with `StaleConnection` (for the
        caller to retry); raises any other error.
        """
        loop = self._loop
        assert loop is not None
        now = loop.time()
        resp = UpstreamResponse(conn, loop, self._max_body)
        try:
            if len(body) <= SINGLE_WRITE_MAX:
                conn.send(resp, head, body, no_body, timeouts, now)
            else:
                await conn.send_large(resp, head, body, no_body, timeouts, now)
            while not resp.status and resp._exc is None:
                waiter = resp._waiter = loop.create_future()
                await waiter
        except asyncio.CancelledError:
            resp._abandon("the request was cancelled")
            raise
        if resp.status or type(resp._exc) is StaleConnection:
            return resp
        raise resp._exc  # type: ignore[misc]

    async def aclose(self) -> None:
        """Close every pooled connection; connections still in use close when their response ends."""
        self._closed = True
        closing = [conn for pool in self._pools.values() for conn in pool.close()]
        if not closing:
            return
        waits = [asyncio.ensure_future(conn.wait_closed()) for conn in closing]
        _, pending = await asyncio.wait(waits, timeout=1.0)
        if pending:  # a TLS peer that does not answer close_notify: stop being polite
            for conn in closing:
                conn.abort()
            await asyncio.gather(*pending)

    def _add_url(self, url: str) -> tuple[HostPool, bytes]:
        if self._closed:
            raise RuntimeError("the UpstreamClient is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {scheme}://{parts.hostname or ''}")
        host = parts.hostname
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if any(c in target for c in " \r\n"):
            raise ValueError("the URL path or query contains whitespace")
        authority = f"[{host}]" if ":" in host else host
        if parts.port is not None and parts.port != (443 if scheme == "https" else 80):
            authority = f"{authority}:{port}"
        pool = self._pool(scheme, host, port)
        proxy = pool.proxy
        if proxy is not None and scheme == "http":
            # Plain HTTP through a proxy: the absolute URI, and the proxy's credentials on every request.
            tail = f" http://{authority}{target} HTTP/1.1\r\nhost: {authority}\r\n".encode("ascii") + proxy.header_lines()
        else:
            tail = f" {target} HTTP/1.1\r\nhost: {authority}\r\n".encode("ascii")
        entry = (pool, tail)
        if len(self._urls) >= _MAX_CACHED_URLS:
            self._urls.clear()
        self._urls[url] = entry
        return entry

    def _pool(self, scheme: str, host: str, port: int) -> HostPool:
        key = (scheme, host, port)
        pool = self._pools.get(key)
        if pool is None:
            context = None
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = ssl.create_default_context()
                context = self._ssl
            assert self._loop is not None
            proxy = self._proxies.for_origin(scheme, host, port) if self._proxies is not None else None
            pool = self._pools[key] = HostPool(
                self._loop,
                host,
                port,
                context,
                max_idle=self._max_idle,
                idle_ttl=self._ttl,
                max_connections=self._max_connections,
                proxy=proxy,
                max_header_bytes=self._max_head,
            )
            if proxy is not None:
                log.info("upstream %s://%s goes through the proxy %s", scheme, pool.label, proxy.label)
        return pool


def encode_headers(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    """One CRLF-terminated ``name: value`` line per header, leaving out the framing headers the client sets itself."""
    return b"".join(b"%s: %s\r\n" % h for h in headers if h[0] not in _DROPPED_HEADERS)


def _encode_head(method: str, tail: bytes, headers: list[tuple[bytes, bytes]] | bytes, body: bytes) -> bytes:
    """The request line and header block, built with one join."""
    block = headers if type(headers) is bytes else encode_headers(headers)
    if body or method not in _BODYLESS_METHODS:
        return b"".join((method.encode("ascii"), tail, block, b"content-length: %d\r\n\r\n" % len(body)))
    return b"".join((method.encode("ascii"), tail, block, b"\r\n"))
