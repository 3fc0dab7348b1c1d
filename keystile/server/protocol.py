"""The HTTP connection layer's bounds, enforced before the application sees a request.

uvicorn's httptools protocol reads a header block of any size into memory, waits forever for
a request line, a header or a body byte, and accepts connections until the process runs out
of file descriptors (then the kernel resets new ones). ``BoundedHttpToolsProtocol`` adds, per
connection: a cap on the request line + headers counted as the parser hands them over (431 as
soon as it is passed, whatever the route), a deadline for the header block, a minimum rate for
the body (408), and quiet closing of a connection that never sends a request. ``ConnectionTable``
caps the connections of a worker: past the cap the oldest idle connection makes room, and when
none is idle the newcomer gets a 503 after its request line instead of a reset.

A request costs one length sum per parser callback and, in the common case, no timer: a
connection gets one deadline when it opens, a request one only when its header block or body
arrives in more than one piece.
"""

from __future__ import annotations

import asyncio
import functools
import resource
from dataclasses import dataclass
from typing import Any, Callable

import httptools
import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from keystile.apiformat import ApiFormat
from keystile.config.model import ServerSettings
from keystile.errors import ErrorKind, error_body, error_headers

FD_RESERVE = 64
"""File descriptors kept for everything that is not a client connection: the listening socket,
the database, Redis, logs, the metrics directory."""
REFUSED_HEAD_SECONDS = 1.0
"""A connection over the cap has this long to send its request line and headers (then it is
answered 503); past it, it is closed."""
HEAD_SYNTAX_SLACK = 1024
"""Raw bytes of a header block allowed past ``max_header_bytes`` before the parser has handed it
over: the request line's method and version and the separators the count leaves out."""
LINGER_SECONDS = 2.0
LINGER_BYTES = 1 << 20
"""After a refusal keystile drops what still arrives and closes this long after its answer (or
once this much more came), so the client reads the answer instead of a reset caused by the rest
of its request arriving at a closed socket — while a flood costs no more than this."""
_HEAD, _BODY = 0, 1


@dataclass(frozen=True, slots=True)
class HttpBounds:
    """The limits one worker enforces (from ``server:``, with the connection cap fitted to the fd limit)."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    body_min_rate: int
    max_connections: int
    """Connections served at once; the one after this evicts an idle one or is answered 503."""
    hard_connections: int
    """Connections open at once, the refused ones included; past this a new one is closed at once."""


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (workers inherit it); returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    unlimited = 1 << 20  # what "unlimited" is taken to mean
    if soft == resource.RLIM_INFINITY:
        return unlimited
    target = unlimited if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # e.g. macOS caps the soft limit below an unlimited hard one
            pass
    return soft


def http_bounds(server: ServerSettings, fd_limit: int) -> HttpBounds:
    """``server``'s limits, with the connection cap lowered to what ``fd_limit`` descriptors can serve.

    A client connection may hold an upstream connection too, so half of the descriptors past
    ``FD_RESERVE`` go to clients; refused connections (briefly open before their 503) may use the rest.
    """
    usable = max(2, fd_limit - FD_RESERVE)
    return HttpBounds(
        max_header_bytes=server.max_header_bytes,
        header_timeout=server.header_timeout,
        body_timeout=server.body_timeout,
        body_min_rate=server.body_min_rate,
        max_connections=max(1, min(server.max_connections, usable // 2)),
        hard_connections=usable,
    )


class ConnectionTable:
    """One worker's bounds and its connections waiting for their next request, oldest first.

    Each worker process unpickles its own copy (uvicorn spawns workers with their config).
    """

    def __init__(self, bounds: HttpBounds) -> None:
        self.bounds = bounds
        self.idle: dict[BoundedHttpToolsProtocol, None] = {}

    def evict_idle(self) -> bool:
        """Close the connection that has waited longest without sending anything; False if none waits."""
        for connection in self.idle:
            del self.idle[connection]
            connection.idle = False
            connection.transport.close()
            return True
        return False

    def protocol_factory(self) -> Callable[..., asyncio.Protocol]:
        """What uvicorn's ``http=`` takes: a protocol class bound to this table."""
        return functools.partial(BoundedHttpToolsProtocol, table=self)


class _Refusal(Exception):
    """Raised from a parser callback to stop parsing; the connection has been answered."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above; everything else is uvicorn's."""

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any], _loop: Any = None, *,
                 table: ConnectionTable) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.table = table
        self.max_head = table.bounds.max_header_bytes
        self.phase = _HEAD
        self.head_size = 0
        """Request line + header bytes parsed so far (each header counted as name + value + 4)."""
        self.head_received = 0
        """Bytes received while the header block is incomplete: bounds what the parser buffers
        inside one header it has not handed over yet."""
        self.body_received = 0
        self.body_mark = 0
        self.deadline: asyncio.TimerHandle | None = None
        self.idle = False
        self.refused = False
        self.answered = False

    # --- connection events ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        table = self.table
        bounds = table.bounds
        count = len(self.connections)
        if count > bounds.max_connections and not table.evict_idle():
            if count > bounds.hard_connections:
                transport.close()  # no descriptors to spare for an answer
                return
            self.refused = True
            self._arm(REFUSED_HEAD_SECONDS)
            return
        self.idle = True
        table.idle[self] = None
        self._arm(bounds.header_timeout)  # a connection that never sends a request is closed

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._busy()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.answered:  # lingering after a refusal: the rest of the request is dropped
            self.head_received += len(data)
            if self.head_received > LINGER_BYTES:
                self.transport.close()
            return
        if self.idle:  # (checked here: this runs on every read)
            self._busy()
        self._unset_keepalive_if_required()
        if self.phase == _HEAD:
            self.head_received += len(data)
        else:
            self.body_received += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError:
            if not self.answered:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            return
        if self.phase == _HEAD:
            if self.head_received > self.max_head + HEAD_SYNTAX_SLACK:
                self._refuse_head_size()
            elif self.deadline is None and self.head_received:  # (0: a request ended, the next not begun)
                self._arm(self.table.bounds.header_timeout)
        elif self.deadline is None:  # a body still to come, arriving in pieces
            self.body_mark = self.body_received
            self._arm(self.table.bounds.body_timeout)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.timeout_keep_alive_task is not None and self.phase == _HEAD and not self.head_received:
            self.idle = True
            self.table.idle[self] = None

    # --- parser callbacks ----------------------------------------------------------------------

    def on_url(self, url: bytes) -> None:
        self.url += url
        self.head_size += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        size = self.head_size + len(name) + len(value) + 4
        self.head_size = size
        if size > self.max_head:
            self._refuse_head_size()
            raise _Refusal
        # As uvicorn's own: llhttp keeps trailing whitespace, which RFC 9110 excludes from the value.
        name = name.lower()
        value = value.rstrip(b" \t")
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._disarm()
        if self.head_size > self.max_head:
            self._refuse_head_size()
            raise _Refusal
        if self.refused:
            self._answer(
                ErrorKind.UNAVAILABLE,
                f"keystile is serving as many connections as it may ({self.table.bounds.max_connections}); retry shortly.",
                extra=b"retry-after: 1\r\n",
            )
            raise _Refusal
        self.phase = _BODY
        self.head_size = self.head_received = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()
        self.phase = _HEAD
        self.head_size = self.head_received = 0

    # --- deadlines -----------------------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self.deadline = self.loop.call_later(seconds, self._deadline_passed)

    def _disarm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    def _busy(self) -> None:
        """The connection is no longer idle: it cannot be evicted to make room for another."""
        if self.idle:
            self.idle = False
            self.table.idle.pop(self, None)

    def _deadline_passed(self) -> None:
        self.deadline = None
        if self.transport.is_closing():
            return
        bounds = self.table.bounds
        cycle = self.cycle
        if self.phase == _HEAD:
            if cycle is not None and not cycle.response_complete:
                self._arm(bounds.header_timeout)  # a pipelined request waits while this answer goes out
            elif not self.head_received or self.refused:
                self.transport.close()  # never sent a request (or over the cap and silent): nothing to answer
            else:
                self._answer(ErrorKind.REQUEST_TIMEOUT, f"The request headers did not arrive within {bounds.header_timeout:g} s.")
            return
        waiting = self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue)
        if waiting or self.body_received - self.body_mark >= bounds.body_min_rate * bounds.body_timeout:
            self.body_mark = self.body_received
            self._arm(bounds.body_timeout)
            return
        self._answer(
            ErrorKind.REQUEST_TIMEOUT,
            f"The request body arrived slower than {bounds.body_min_rate} bytes/s over {bounds.body_timeout:g} s.",
        )

    # --- refusing ------------------------------------------------------------------------------

    def _refuse_head_size(self) -> None:
        self._answer(
            ErrorKind.HEADERS_TOO_LARGE,
            f"The request line and headers exceed the {self.max_head}-byte limit.",
        )

    def _answer(self, kind: ErrorKind, message: str, extra: bytes = b"") -> None:
        """Answer ``kind`` in the client's format, stop reading, and close shortly after."""
        if self.answered:
            return
        self.answered = True
        self.head_received = 0  # from here on: bytes dropped while lingering
        self._disarm()
        self._busy()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started or self.phase == _HEAD:
                self.transport.close()  # an answer is (or is about to be) on the wire: a second one would corrupt it
                return
            cycle.disconnected = True  # the application stops waiting for this body
            cycle.message_event.set()
        fmt = self._error_format()
        body = orjson.dumps(error_body(fmt, kind, message))
        head = [STATUS_LINE[kind.status]]
        for name, value in [*self.server_state.default_headers, *error_headers(fmt, kind.status)]:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(), b"\r\n",
            extra, b"connection: close\r\n\r\n", body,
        ]
        transport = self.transport
        transport.write(b"".join(head))
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _error_format(self) -> ApiFormat:
        """Anthropic's error shape for ``/v1/messages…`` or an ``anthropic-version`` header, AWS's for
        a Bedrock path, Anthropic's for a Vertex ``rawPredict`` one, Google's for a Gemini path or
        ``x-goog-api-key``, else OpenAI's."""
        url = getattr(self, "url", b"")
        if url.startswith(b"/v1/messages"):
            return ApiFormat.ANTHROPIC
        if b"/invoke" in url:
            return ApiFormat.BEDROCK
        if b"Predict" in url:
            return ApiFormat.VERTEX
        if b"Content" in url or b"countTokens" in url or url.startswith(b"/v1beta"):
            return ApiFormat.GEMINI
        for name, _ in self.headers or ():
            if name == b"anthropic-version":
                return ApiFormat.ANTHROPIC
            if name == b"x-goog-api-key":
                return ApiFormat.GEMINI
        return ApiFormat.OPENAI
