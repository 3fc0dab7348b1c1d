"""Keep-alive connections to one upstream origin (scheme, host, port), reused last-in first-out.

LIFO keeps a few connections hot and lets the rest age out: an idle connection is closed
after `idle_ttl`, and dropped at once when the server closes it (`Connection.connection_lost`).
A pool whose origin goes through a proxy (decided once, when the pool is made) opens its
connections to the proxy: through a CONNECT tunnel for https, straight to it for http
(the client then writes absolute-form request targets).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque

from keystile.upstream.connection import MAX_HEAD_BYTES, Connection
from keystile.upstream.errors import UpstreamConnectError, UpstreamTimeout
from keystile.upstream.proxy import Proxy, open_tunnel


class HostPool:
    """Idle connections to one origin, plus an optional cap on how many may be open at once."""

    __slots__ = (
        "label",
        "proxy",
        "max_header_bytes",
        "_loop",
        "_host",
        "_port",
        "_ssl",
        "_server_hostname",
        "_idle",
        "_max_idle",
        "_ttl",
        "_limit",
        "_open",
        "_waiters",
        "_sweeper",
        "_closed",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        *,
        max_idle: int,
        idle_ttl: float,
        max_connections: int | None,
        proxy: Proxy | None = None,
        max_header_bytes: int = MAX_HEAD_BYTES,
    ) -> None:
        self.label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # for error messages
        self.proxy = proxy
        self.max_header_bytes = max_header_bytes  # read by the pool's connections
        self._loop = loop
        self._host = host
        self._port = port
        self._ssl = ssl_context
        self._server_hostname = host if ssl_context is not None else None
        self._idle: list[Connection] = []  # oldest first; reuse pops the newest
        self._max_idle = max_idle
        self._ttl = idle_ttl
        self._limit = max_connections
        self._open = 0  # connections open or being opened, idle ones included
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    # -- getting a connection ---------------------------------------------------------------

    def take_idle(self, now: float) -> Connection | None:
        """The most recently used idle connection still alive and fresh, if any."""
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport.is_closing():  # type: ignore[union-attr]
                continue
            if conn.idle_since < now - self._ttl:
                conn.close()
                continue
            return conn
        return None

    async def open(self, timeout: float, *, fresh: bool = False) -> Connection:
        """A new connection; with a cap, wait for a free slot (or a released connection) first.

        `fresh` (the stale-connection retry) skips the cap and never takes an idle connection.
        The whole wait, TCP connect and TLS handshake count against `timeout`.
        """
        try:
            async with asyncio.timeout(timeout):
                if self._limit is not None and not fresh:
                    conn = await self._wait_for_slot()
                    if conn is not None:
                        return conn
                return await self._connect()
        except TimeoutError:
            raise UpstreamTimeout("connect", f"connecting to {self.label} took more than {timeout:g} s") from None

    async def _connect(self) -> Connection:
        if self._closed:
            raise RuntimeError("the UpstreamClient is closed")
        conn = Connection(self, self._loop)
        self._open += 1
        try:
            if self.proxy is None:
                await self._loop.create_connection(
                    lambda: conn, self._host, self._port, ssl=self._ssl, server_hostname=self._server_hostname
                )
            elif self._ssl is not None:
                await self._connect_tunnelled(conn, self.proxy)
            else:
                await self._loop.create_connection(lambda: conn, self.proxy.host, self.proxy.port)
        except BaseException as exc:
            if conn.transport is None:  # else connection_lost does the bookkeeping
                self._open -= 1
                self._wake_waiter(None)
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                where = self.label if self.proxy is None else f"{self.label} via the proxy {self.proxy.label}"
                raise UpstreamConnectError(f"cannot connect to {where}: {exc}") from exc
            raise
        return conn

    async def _connect_tunnelled(self, conn: Connection, proxy: Proxy) -> None:
        """TLS to the origin inside a CONNECT tunnel through `proxy`; `conn` gets the TLS transport."""
        raw = await open_tunnel(self._loop, proxy, self._host, self._port)
        try:
            transport = await self._loop.start_tls(raw, conn, self._ssl, server_hostname=self._server_hostname)  # type: ignore[arg-type]
        except BaseException:
            raw.abort()
            raise
        if transport is None:  # the proxy hung up during the handshake
            raw.abort()
            raise ConnectionResetError("the tunnel closed during the TLS handshake")
        conn.connection_made(transport)

    async def _wait_for_slot(self) -> Connection | None:
        """Wait until a connection may be opened (None) or an idle one is handed over."""
        assert self._limit is not None
        while self._open >= self._limit and not self._closed:
            waiter: asyncio.Future[Connection | None] = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except asyncio.CancelledError:
                self._pass_on(waiter)
                raise
            if conn is not None and not conn.closed and not conn.transport.is_closing():  # type: ignore[union-attr]
                return conn
        return None

    def _pass_on(self, waiter: asyncio.Future[Connection | None]) -> None:
        """A cancelled waiter gives away what it was handed: a connection or a slot."""
        if not waiter.done() or waiter.cancelled():
            return
        conn = waiter.result()
        if conn is not None:
            self.release(conn)
        else:
            self._wake_waiter(None)

    def _wake_waiter(self, conn: Connection | None) -> bool:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    # -- giving it back ---------------------------------------------------------------------

    def release(self, conn: Connection) -> None:
        """Take back a connection whose last response ended cleanly."""
        if self._closed or conn.closed:
            conn.close()
            return
        if self._waiters and self._wake_waiter(conn):
            return
        if len(self._idle) >= self._max_idle:
            conn.close()
            return
        conn.idle_since = conn.last_rx
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(conn.idle_since + self._ttl, self._sweep)

    def on_lost(self, conn: Connection) -> None:
        """`conn` is gone (either side closed it)."""
        self._open -= 1
        if self._idle:
            try:
                self._idle.remove(conn)
            except ValueError:
                pass
        if self._waiters:
            self._wake_waiter(None)

    def _sweep(self) -> None:
        """Close connections idle for longer than the TTL (they are at the front)."""
        self._sweeper = None
        idle = self._idle
        expiry = self._loop.time() - self._ttl
        while idle and idle[0].idle_since <= expiry:
            idle.pop(0).close()
        if idle:
            self._sweeper = self._loop.call_at(idle[0].idle_since + self._ttl, self._sweep)

    # -- shutdown ---------------------------------------------------------------------------

    def close(self) -> list[Connection]:
        """Close every idle connection and stop pooling; returns the closed connections."""
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        while self._waiters:  # let them fail in _connect: "the UpstreamClient is closed"
            self._wake_waiter(None)
        return idle
