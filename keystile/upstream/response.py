"""The caller's side of one upstream HTTP exchange: status, headers and a lazily read body.

`Connection` (connection.py) feeds an `UpstreamResponse` through its `_on_*` methods as
bytes arrive (and enforces the timeouts); the caller reads the body with `read()` or
`async for`. The response decides when reading must pause for a slow consumer, and holds
the body cap: a body read whole may not grow past `max_body` bytes. A stream has no total
cap (it is not held in memory), only the `HIGH_WATER` mark of what may wait for its reader.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from keystile.upstream.errors import UpstreamDisconnected, UpstreamError, UpstreamProtocolError, UpstreamTooLarge

if TYPE_CHECKING:
    from keystile.upstream.connection import Connection

# Stop reading from the socket when this much body is buffered and the caller is not
# consuming it (streaming only: read() wants the whole body anyway).
HIGH_WATER = 1 << 20

# A compressed body is inflated at most this much at a time, so one small compressed chunk
# can never expand into more memory than the caps allow before they are checked.
INFLATE_STEP = 256 * 1024

# The default cap on a body read whole, after decompression.
MAX_BODY_BYTES = 64 * 1024 * 1024

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
        "_max_body",
        "_check_at",
    )

    def __init__(self, conn: Connection, loop: asyncio.AbstractEventLoop, max_body: int = MAX_BODY_BYTES) -> None:
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
        self._max_body = max_body
        # Below this many buffered bytes nothing needs checking (neither the cap nor flow control).
        self._check_at = min(HIGH_WATER, max_body)

    # -- caller API ---------------------------------------------------------------------

    def header(self, name: bytes) -> bytes | None:
        """The first value of header `name` (lowercase), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read(self) -> bytes:
        """The rest of the body, once it has all arrived (at most `max_body` bytes, else `UpstreamTooLarge`)."""
        self._read_all = True
        if self._buffered > self._max_body:
            self._fail_body(UpstreamTooLarge("body", self._max_body))
        elif self._inflater is not None and self._inflater.pending:
            self._inflate()
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
        inflater = self._inflater
        while not chunks:
            if self._exc is not None:
                raise self._exc
            if self._done:
                raise StopAsyncIteration
            if inflater is not None and inflater.pending:
                conn = self._conn
                if conn is not None:  # the reader is taking data: not idle, even with reading paused
                    conn.last_rx = self._loop.time()
                self._inflate()
                continue
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
        if conn is not None and conn.reading_paused and (inflater is None or not inflater.pending):
            # (compressed input still waiting to be inflated is read before more is fetched)
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
            self._inflater.push(data)
            self._inflate()
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._waiter is not None:
            self._wake()
        if self._buffered > self._check_at:
            self._over_check_mark()

    def _take(self, data: bytes) -> None:
        """`_on_body` for decompressed bytes."""
        self._chunks.append(data)
        self._buffered += len(data)
        if self._waiter is not None:
            self._wake()
        if self._buffered > self._check_at:
            self._over_check_mark()

    def _over_check_mark(self) -> None:
        """Much is buffered: over the cap for a body read whole, or time to pause a stream."""
        if self._read_all:
            if self._buffered > self._max_body:
                self._fail_body(UpstreamTooLarge("body", self._max_body))
        elif self._buffered > HIGH_WATER and self._conn is not None:
            self._conn.pause_reading()

    def _inflate(self) -> None:
        """Decompress what has arrived, `INFLATE_STEP` bytes at a time.

        A body read whole is inflated as it arrives, so the cap stops a decompression bomb
        one step past `max_body`. A stream is inflated up to `HIGH_WATER` buffered bytes; the
        rest waits, still compressed, until the reader has taken what is buffered (reading
        from the socket stays paused meanwhile).
        """
        inflater = self._inflater
        assert inflater is not None
        try:
            while inflater.pending:
                if not self._read_all and self._buffered >= HIGH_WATER:
                    if self._conn is not None:
                        self._conn.pause_reading()
                    return
                out = inflater.pull(INFLATE_STEP)
                if out:
                    self._take(out)
                    if self._exc is not None:
                        return
            if inflater.input_ended and not self._done and self._exc is None:
                inflater.finish()
                self._done = True
                self._wake()
        except zlib.error as exc:
            self._fail_body(UpstreamProtocolError(f"bad compressed body: {exc}"))

    def _on_complete(self) -> None:
        if self._phase == FINISHED:  # already failed (timed out, abandoned): stays failed
            return
        self._finish()
        inflater = self._inflater
        if inflater is not None:
            inflater.input_ended = True
            self._inflate()  # done now, or once a stream's reader has taken the rest
            return
        self._done = True
        self._wake()

    def _fail(self, exc: UpstreamError) -> None:
        if self._phase == FINISHED:
            return
        self._finish()
        self._exc = exc
        self._wake()

    def _fail_body(self, exc: UpstreamError) -> None:
        """The body is unacceptable (too large, undecodable): drop what is buffered and the
        connection. Also after the last byte arrived, while a stream's tail is still inflating."""
        conn = self._conn
        self._chunks.clear()
        self._buffered = 0
        self._finish()
        self._exc = exc
        self._wake()
        if conn is not None:
            conn.abort()

    def _finish(self) -> None:
        self._phase = FINISHED
        self._conn = None


class _Inflater:
    """zlib decoding for a `content-encoding: gzip|deflate` body the upstream sent unasked.

    Compressed bytes are `push`ed as they arrive and `pull`ed out decompressed, at most
    `limit` bytes at a time: what a pull cannot return yet stays compressed (`pending`).
    """

    __slots__ = ("_obj", "_gzip", "_fed", "_input", "_more", "input_ended")

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._obj: Any = zlib.decompressobj(16 + zlib.MAX_WBITS if gzip else zlib.MAX_WBITS)
        self._fed = False
        self._input = b""  # compressed bytes not yet given to zlib (or that it could not take yet)
        self._more = False  # the last pull was cut at its limit: zlib may hold more output
        self.input_ended = False  # the whole compressed body has been pushed

    @classmethod
    def for_encoding(cls, encoding: bytes) -> _Inflater | None:
        coding = encoding.strip().lower()
        if coding in (b"gzip", b"x-gzip"):
            return cls(gzip=True)
        if coding == b"deflate":
            return cls(gzip=False)
        return None  # identity, or a coding zlib cannot undo (br, zstd): passed through as is

    @property
    def pending(self) -> bool:
        return bool(self._input) or self._more

    def push(self, data: bytes) -> None:
        self._input = self._input + data if self._input else data

    def pull(self, limit: int) -> bytes:
        """Up to `limit` decompressed bytes of what has been pushed (raises zlib.error)."""
        data, self._input = self._input, b""
        obj = self._obj
        try:
            out = obj.decompress(data, limit)
        except zlib.error:
            if self._gzip or self._fed:
                raise
            # Some servers send raw deflate (no zlib header) under "deflate".
            obj = self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = obj.decompress(data, limit)
        self._fed = True
        if obj.eof:
            self._more = False
            rest = obj.unused_data
            if rest and self._gzip:
                # Concatenated gzip members decode to the concatenation of their contents.
                self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._input = rest
        else:
            self._input = obj.unconsumed_tail
            self._more = len(out) >= limit
        return out

    def finish(self) -> None:
        """The compressed body has ended and everything pending was pulled: was it complete?"""
        if self._fed and not self._obj.eof:
            raise zlib.error("compressed body is truncated")
