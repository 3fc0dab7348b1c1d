"""The caller's side of one upstream HTTP exchange: status, headers and a lazily read body.

`Connection` (connection.py) feeds an `UpstreamResponse` through its `_on_*` methods as
bytes arrive (and enforces the timeouts); the caller reads the body with `read()` or
`async for`. The response decides when reading must pause for a slow consumer.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from keystile.upstream.errors import UpstreamDisconnected, UpstreamError, UpstreamProtocolError

if TYPE_CHECKING:
    from keystile.upstream.connection import Connection

# Stop reading from the socket when this much body is buffered and the caller is not
# consuming it (streaming only: read() wants the whole body anyway).
HIGH_WATER = 1 << 20

# Exchange phases, in order.
WAITING_HEADERS = 0  # the first_byte timeout applies
HEADERS_IN = 1  # head parsed; Connection switches to the idle timeout once the read is done
READING_BODY = 2  # the idle timeout applies
FINISHED = 3  # body complete or failed


class UpstreamResponse:
    """Status and headers of an upstream response, with its body still on the wire.

    Always finish with `read()`, a complete `async for`, or `aclose()` (cheap, idempotent,
    meant for a `finally`): a response abandoned half-read holds its connection until the
    idle timeout.
    """

    __slots__ = (
        "status",
        "headers",
        "_conn",
        "_loop",
        "_phase",
        "_chunks",
        "_buffered",
        "_done",
        "_exc",
        "_waiter",
        "_inflater",
        "_read_all",
    )

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._conn: Connection | None = conn
        self._loop = loop
        self._phase = WAITING_HEADERS
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._done = False
        self._exc: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._inflater: _Inflater | None = None
        self._read_all = False

    # -- caller API ---------------------------------------------------------------------

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lowercase), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self) -> bytes:
        """The rest of the body, once it has all arrived."""
        self._read_all = True
        conn = self._conn
        if conn is not None and conn.reading_paused:
            conn.resume_reading()
        while not self._done:
            if self._exc is not None:
                raise self._exc
            await self._wait()
        chunks = self._chunks
        if not chunks:
            return b""
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        return data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        """Everything that arrived since the last call (never empty), as soon as it arrives."""
        chunks = self._chunks
        while not chunks:
            if self._exc is not None:
                raise self._exc
            if self._done:
                raise StopAsyncIteration
            waiter = self._waiter = self._loop.create_future()
            try:
                await waiter
            except asyncio.CancelledError:
                self._abandon("the request was cancelled")
                raise
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._buffered = 0
        conn = self._conn
        if conn is not None and conn.reading_paused:
            conn.resume_reading()
        return data

    async def aclose(self) -> None:
        """Done with this response. A connection whose body is not complete is closed, not pooled."""
        self._abandon("the response was closed before its body was complete")

    async def __aenter__(self) -> UpstreamResponse:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._abandon("the response was closed before its body was complete")

    def __repr__(self) -> str:
        return f"<UpstreamResponse {self.status}>"

    # -- waiting ------------------------------------------------------------------------

    async def _wait(self) -> None:
        """Sleep until the connection reports progress; a cancelled caller closes the connection."""
        waiter = self._waiter = self._loop.create_future()
        try:
            await waiter
        except asyncio.CancelledError:
            self._waiter = None
            self._abandon("the request was cancelled")
            raise

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _abandon(self, reason: str) -> None:
        conn = self._conn
        if conn is not None:
            self._fail(UpstreamDisconnected(reason))
            conn.abort()

    # -- driven by Connection -------------------------------------------------------------

    def _on_headers(self, status: int, headers: list[tuple[bytes, bytes]], encoding: bytes | None) -> None:
        if encoding is not None:
            inflater = _Inflater.for_encoding(encoding)
            if inflater is not None:
                self._inflater = inflater
                headers = [h for h in headers if h[0] != b"content-encoding" and h[0] != b"content-length"]
        self.status = status
        self.headers = headers
        self._phase = HEADERS_IN
        self._wake()

    def _on_body(self, data: bytes) -> None:
        if self._inflater is not None:
            data = self._inflater.feed(data)
            if not data:
                return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._waiter is not None:
            self._wake()
        if self._buffered > HIGH_WATER and not self._read_all and self._conn is not None:
            self._conn.pause_reading()

    def _on_complete(self) -> None:
        if self._phase == FINISHED:  # already failed (timed out, abandoned): stays failed
            return
        if self._inflater is not None:
            try:
                tail = self._inflater.finish()
            except zlib.error as exc:
                self._fail(UpstreamProtocolError(f"bad compressed body: {exc}"))
                return
            if tail:
                self._chunks.append(tail)
        self._finish()
        self._done = True
        self._wake()

    def _fail(self, exc: UpstreamError) -> None:
        if self._phase == FINISHED:
            return
        self._finish()
        self._exc = exc
        self._wake()

    def _finish(self) -> None:
        self._phase = FINISHED
        self._conn = None


class _Inflater:
    """zlib decoding for a `content-encoding: gzip|deflate` body the upstream sent unasked."""

    __slots__ = ("_obj", "_gzip", "_fed")

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._obj: Any = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._fed = False

    @classmethod
    def for_encoding(cls, encoding: bytes) -> _Inflater | None:
        coding = encoding.strip().lower()
        if coding in (b"gzip", b"x-gzip"):
            return cls(gzip=True)
        if coding == b"deflate":
            return cls(gzip=False)
        return None  # identity, or a coding zlib cannot undo (br, zstd): passed through as is

    def feed(self, data: bytes) -> bytes:
        try:
            out = self._obj.decompress(data)
        except zlib.error:
            if self._gzip or self._fed:
                raise
            # Some servers send raw deflate (no zlib header) under "deflate".
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._obj.decompress(data)
        self._fed = True
        while self._gzip and self._obj.eof and self._obj.unused_data:
            # Concatenated gzip members decode to the concatenation of their contents.
            rest = self._obj.unused_data
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out += self._obj.decompress(rest)
        return out

    def finish(self) -> bytes:
        tail = self._obj.flush()
        if self._fed and not self._obj.eof:
            raise zlib.error("compressed body is truncated")
        return tail
