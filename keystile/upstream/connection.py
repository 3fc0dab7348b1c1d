"""One keep-alive HTTP/1.1 connection to an upstream: an asyncio.Protocol with an httptools parser.

It writes requests, parses responses with `httptools.HttpResponseParser` and drives the
current `UpstreamResponse` from the parser callbacks; at a clean end of a keep-alive
response it hands itself back to its `HostPool`, otherwise it closes. One exchange at a
time, no pipelining.

Timeouts use one loop timer per connection that is not cancelled when a response ends:
it fires at the earliest deadline that may apply, then either times the exchange out or
re-arms for the current deadline (or goes quiet if the connection is idle). A busy
connection therefore costs no timer operations per request, only a float store.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import httptools

from keystile.upstream.errors import (
    StaleConnection,
    UpstreamDisconnected,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamTooLarge,
)
from keystile.upstream.response import HEADERS_IN, READING_BODY

if TYPE_CHECKING:
    from keystile.upstream.client import Timeouts
    from keystile.upstream.pool import HostPool
    from keystile.upstream.response import UpstreamResponse

# A reused connection that dies within this long after the request was written, before any
# response byte, was closed by the server while idle (the keep-alive race), not by a
# server that received the request and then failed: that request is safe to send again.
STALE_WINDOW = 1.0

# Bodies up to this size go out in one write together with the head; larger ones are
# written in slices of WRITE_SLICE, waiting for the transport's buffer to drain in between.
SINGLE_WRITE_MAX = 64 * 1024
WRITE_SLICE = 1 << 20

# The default cap on a response head (status line and headers; 1xx heads before it count
# too): a larger one fails the exchange with `UpstreamTooLarge` instead of reaching the caller.
MAX_HEAD_BYTES = 64 * 1024

# Timers may fire a little early (uvloop rounds to milliseconds): a deadline this close
# counts as reached rather than re-arming for a few microseconds.
TIMER_SLACK = 0.005

_PARSER_ERRORS = (httptools.HttpParserError, httptools.HttpParserUpgrade)


class Connection(asyncio.Protocol):
    """A pooled connection; `pool` is the `HostPool` it belongs to."""

    __slots__ = (
        "pool",
        "transport",
        "served",
        "idle_since",
        "last_rx",
        "reading_paused",
        "closed",
        "_loop",
        "_parser",
        "_resp",
        "_headers",
        "_encoding",
        "_rx",
        "_sent_at",
        "_timeouts",
        "_first_byte_due",
        "_timer",
        "_timer_due",
        "_no_body",
        "_complete",
        "_keep_alive",
        "_informational",
        "_head_bytes",
        "_writing",
        "_must_close",
        "_write_paused",
        "_drain_waiter",
        "_lost_waiter",
    )

    def __init__(self, pool: HostPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.served = 0  # requests sent on this connection, the current one included
        self.idle_since = 0.0
        self.last_rx = 0.0  # loop time of the last bytes received
        self.reading_paused = False
        self.closed = False
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._resp: UpstreamResponse | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._encoding: bytes | None = None
        self._rx = False  # any byte of the current response received
        self._sent_at = 0.0
        self._timeouts: Timeouts | None = None
        self._first_byte_due = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._no_body = False  # response to HEAD
        self._complete = False
        self._keep_alive = False
        self._informational = False
        self._head_bytes = 0  # bytes received while the head was incomplete (some may be body)
        self._writing = False  # a large body is still being written
        self._must_close = False
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._lost_waiter: asyncio.Future[None] | None = None

    # -- sending ----------------------------------------------------------------------------

    def send(
        self, resp: UpstreamResponse, head: bytes, body: bytes, no_body: bool, timeouts: Timeouts, now: float
    ) -> None:
        """Start an exchange with a small body: one write of head and body."""
        self._start(resp, no_body, timeouts, now)
        self.transport.write(head + body if body else head)  # type: ignore[union-attr]

    async def send_large(
        self, resp: UpstreamResponse, head: bytes, body: bytes, no_body: bool, timeouts: Timeouts, now: float
    ) -> None:
        """Start an exchange with a large body, respecting the transport's write flow control.

        Stops early if the connection dies or the upstream answers before the body is out
        (that connection is then closed after the response instead of being pooled).
        """
        self._start(resp, no_body, timeouts, now)
        transport = self.transport
        assert transport is not None
        transport.write(head)
        view = memoryview(body)
        self._writing = True
        try:
            for start in range(0, len(view), WRITE_SLICE):
                if self.closed or self._must_close:
                    return
                transport.write(view[start : start + WRITE_SLICE])
                if self._write_paused:
                    await self._drain()
        finally:
            self._writing = False

    def _start(self, resp: UpstreamResponse, no_body: bool, timeouts: Timeouts, now: float) -> None:
        self._resp = resp
        self._headers = []
        self._encoding = None
        self._rx = False
        self._head_bytes = 0
        self._sent_at = now
        self._no_body = no_body
        self.served += 1
        self._timeouts = timeouts
        self._first_byte_due = now + timeouts.first_byte
        # One timer serves the whole exchange, and the next ones on this connection: it is set
        # for the earliest moment either timeout could expire, and when it fires ``_on_timer``
        # works out what is really due and sets it again. A timer still pending from an earlier
        # exchange that fires no later is kept — arming and cancelling a timer per request (and
        # again when the head came in) was 4.5 % of the worker's time with 5,000 streams open.
        wake = now + min(timeouts.first_byte, timeouts.idle)
        if self._timer is None or self._timer_due > wake + TIMER_SLACK:
            self._arm_timer(wake)

    # -- timeouts ---------------------------------------------------------------------------

    def _arm_timer(self, due: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._on_timer)

    def _start_idle_clock(self, resp: UpstreamResponse) -> None:
        """The head is in and the body is not: from now on the idle timeout applies."""
        resp._phase = READING_BODY
        due = self.last_rx + self._timeouts.idle  # type: ignore[union-attr]
        if self._timer_due > due + TIMER_SLACK:
            self._arm_timer(due)

    def _on_timer(self) -> None:
        self._timer = None
        resp = self._resp
        if resp is None or self.closed:
            return  # idle connection: the next exchange arms the timer again
        timeouts = self._timeouts
        assert timeouts is not None
        now = self._loop.time()
        if not resp.status:
            due, phase, seconds = self._first_byte_due, "first_byte", timeouts.first_byte
        else:
            # last_rx also moves when a paused read resumes, so a caller that stops
            # consuming a body for `idle` seconds times out too (and frees the connection).
            due, phase, seconds = self.last_rx + timeouts.idle, "idle", timeouts.idle
        if due > now + TIMER_SLACK:
            self._arm_timer(due)
            return
        what = "no response" if phase == "first_byte" else "no body data"
        resp._fail(UpstreamTimeout(phase, f"{what} from {self.pool.label} for {seconds:g} s"))  # type: ignore[arg-type]
        self.abort()

    async def _drain(self) -> None:
        waiter = self._drain_waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._drain_waiter = None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def _wake_drain(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- receiving --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_rx = self._loop.time()
        resp = self._resp
        if resp is None:
            # Bytes on an idle connection (a 408, garbage): it cannot carry a request any more.
            self.abort()
            return
        self._rx = True
        if not resp.status:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except _PARSER_ERRORS as exc:
            self._protocol_error(resp, exc)
            return
        if self._complete:
            self._end_exchange()
        elif resp.status:
            if resp._phase == HEADERS_IN:
                self._start_idle_clock(resp)
        elif self._head_bytes > self.pool.max_header_bytes:
            # Still no complete head, and the parser holds more than the cap of it.
            self._too_large(resp)

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._headers.append((name, value))
        if name == b"content-encoding":
            self._encoding = value

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            # 1xx (100 Continue, 103 Early Hints): informational, the real response follows.
            self._informational = True
            self._headers = []
            self._encoding = None
            return
        if self._head_bytes > self.pool.max_header_bytes:
            # The reads that brought the head were larger than the cap (they may hold body
            # bytes too): measure the head itself. Usual heads never get here.
            limit = self.pool.max_header_bytes
            if sum(len(name) + len(value) + 4 for name, value in self._headers) > limit:
                raise UpstreamTooLarge("headers", limit)
        if self._writing:
            self._must_close = True  # answered before the request body was fully written
        resp = self._resp
        assert resp is not None
        resp._on_headers(status, self._headers, None if self._no_body else self._encoding)
        if self._no_body:
            # llhttp cannot be told this answers a HEAD; finish here, reset the parser after.
            self._keep_alive = self._parser.should_keep_alive()
            self._complete = True
            resp._on_complete()

    def on_body(self, body: bytes) -> None:
        if not self._complete:
            self._resp._on_body(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._complete:  # HEAD: already finished in on_headers_complete
            return
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True
        self._resp._on_complete()  # type: ignore[union-attr]

    def _end_exchange(self) -> None:
        self._resp = None
        self._complete = False
        if self._no_body:
            self._parser = httptools.HttpResponseParser(self)
        if self._keep_alive and not self._must_close and not self.closed:
            if self.reading_paused:
                self.resume_reading()
            self.pool.release(self)
        else:
            self.close()

    def _too_large(self, resp: UpstreamResponse) -> None:
        resp._fail(UpstreamTooLarge("headers", self.pool.max_header_bytes))
        self.abort()

    def _protocol_error(self, resp: UpstreamResponse, exc: Exception) -> None:
        cause = exc.__context__ if isinstance(exc, httptools.HttpParserCallbackError) else exc
        if isinstance(cause, UpstreamTooLarge):
            self._too_large(resp)
            return
        err = UpstreamProtocolError(f"malformed response from {self.pool.label}: {cause or exc}")
        err.__cause__ = cause or exc
        resp._fail(err)
        self.abort()

    # -- flow control -----------------------------------------------------------------------

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.closed:
            self.reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        if self.reading_paused:
            self.reading_paused = False
            self.last_rx = self._loop.time()  # the idle clock restarts when we read again
            if not self.closed and not self.transport.is_closing():  # type: ignore[union-attr]
                self.transport.resume_reading()  # type: ignore[union-attr]

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once; the upstream sees the disconnect immediately."""
        self._must_close = True  # never pooled, even if the parser still completes a message
        if self.transport is not None and not self.closed:
            self.transport.abort()

    async def wait_closed(self) -> None:
        if not self.closed:
            waiter = self._lost_waiter = self._loop.create_future()
            await waiter

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        resp = self._resp
        if resp is not None:
            self._resp = None
            self._fail_lost(resp, exc)
        self._wake_drain()
        self.pool.on_lost(self)
        waiter = self._lost_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail_lost(self, resp: UpstreamResponse, exc: Exception | None) -> None:
        label = self.pool.label
        detail = f": {exc}" if exc is not None else ""
        if resp.status:
            if exc is None and self._reads_until_close():
                resp._on_complete()
            else:
                resp._fail(UpstreamDisconnected(f"{label} closed the connection before the response body was complete{detail}"))
        elif not self._rx and self.served > 1 and self._loop.time() - self._sent_at < STALE_WINDOW:
            resp._fail(StaleConnection(f"{label} closed a pooled connection before responding{detail}"))
        else:
            resp._fail(UpstreamDisconnected(f"{label} closed the connection before sending a response{detail}"))

    def _reads_until_close(self) -> bool:
        """The response has no length and is not chunked: its body ends when the connection does."""
        for name, _ in self._headers:
            if name == b"content-length" or name == b"transfer-encoding":
                return False
        return True
