"""UpstreamClient against real local servers: plain TCP servers written here, and TLS with a
self-signed certificate made by `openssl` at test time. Every test runs on asyncio's
default loop and on uvloop, and fails on any warning or loop error it leaves behind
(unclosed transports, tasks destroyed while pending, unretrieved exceptions)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl
import struct
import subprocess
import time
import warnings
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from keystile.upstream import connection
from keystile.upstream.response import HIGH_WATER
from keystile.upstream.client import (
    Timeouts,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamDisconnected,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

uvloop = pytest.importorskip("uvloop")

# -- running a test on a fresh loop, watching for leaks --------------------------------------------


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Callable[[], Awaitable[None]]], None]:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(test: Callable[[], Awaitable[None]]) -> None:
        loop_errors: list[dict] = []
        # Collect what earlier tests (other files, other clients) left behind first, so only
        # leaks made by this test can be reported against it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gc.collect()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with asyncio.Runner(loop_factory=factory) as r:
                r.get_loop().set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
                r.run(asyncio.wait_for(test(), 20))
            gc.collect()
        problems = [str(w.message) for w in caught] + [str(ctx.get("message")) for ctx in loop_errors]
        assert not problems, problems

    return runner


# -- a tiny HTTP/1.1 server ------------------------------------------------------------------


class Request:
    def __init__(self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.method, self.target, self.headers, self.body = method, target, headers, body

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on the connection, or None at EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    line, *rest = head[:-4].split(b"\r\n")
    method, target, _ = line.split(b" ")
    headers = [(k.strip().lower(), v.strip()) for k, v in (h.split(b":", 1) for h in rest)]
    req = Request(method, target, headers, b"")
    req.body = await reader.readexactly(int(req.header(b"content-length") or 0))
    return req


def response(body: bytes = b"ok", status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 %s\r\nContent-Length: %d\r\nContent-Type: text/plain\r\n%s\r\n%s" % (status, len(body), extra, body)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, "Server"], Awaitable[None]]


class Server:
    """Runs `handler` per accepted connection and counts connections and requests."""

    def __init__(self, handler: Handler, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.host = host
        self.ssl_context = ssl_context
        self.accepted = 0
        self.requests: list[Request] = []
        self.eof = asyncio.Event()  # some connection saw the client close it
        self.eof_at = 0.0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._connected, self.host, 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, path: str = "/v1/messages") -> str:
        scheme = "https" if self.ssl_context else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        self.accepted += 1
        try:
            await self.handler(reader, writer, self)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.CancelledError):
            pass  # the client went away, or the test is over (a cancelled task here upsets asyncio.streams)
        finally:
            writer.transport.abort()
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]

    async def next_request(self, reader: asyncio.StreamReader) -> Request | None:
        req = await read_request(reader)
        if req is not None:
            self.requests.append(req)
        return req

    async def wait_eof(self, reader: asyncio.StreamReader) -> None:
        """Block until the client closes the connection; record when."""
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass
        self.eof_at = time.monotonic()
        self.eof.set()


def echo_handler(delay: float = 0.0) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, server: Server) -> None:
        while (req := await server.next_request(reader)) is not None:
            if delay:
                await asyncio.sleep(delay)
            writer.write(response(req.body or req.target))

    return handler


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def idle_count(client: UpstreamClient) -> int:
    return sum(len(pool._idle) for pool in client._pools.values())


POST_HEADERS = [(b"content-type", b"application/json"), (b"accept-encoding", b"identity")]

# -- bodies ------------------------------------------------------------------------------------


def test_content_length_body_and_request_framing(run) -> None:
    async def test() -> None:
        async with Server(echo_handler()) as server, open_client() as client:
            headers = POST_HEADERS + [(b"host", b"evil"), (b"content-length", b"999"), (b"connection", b"close")]
            resp = await client.request("POST", server.url("/v1/messages?beta=true"), headers, b'{"a": 1}')
            assert resp.status == 200
            assert resp.headers[:2] == [(b"content-length", b"8"), (b"content-type", b"text/plain")]
            assert resp.header(b"content-type") == b"text/plain"
            assert resp.header(b"x-missing") is None
            assert await resp.read() == b'{"a": 1}'
            req = server.requests[0]
            assert (req.method, req.target) == (b"POST", b"/v1/messages?beta=true")
            assert req.headers == [
                (b"host", b"127.0.0.1:%d" % server.port),
                (b"content-type", b"application/json"),
                (b"accept-encoding", b"identity"),
                (b"content-length", b"8"),
            ]

    run(test)


def test_ipv6_literal_url(run) -> None:
    async def test() -> None:
        async with Server(echo_handler(), host="::1") as server, open_client() as client:
            resp = await client.request("GET", server.url("/six"), [])
            assert await resp.read() == b"/six"
            assert server.requests[0].header(b"host") == b"[::1]:%d" % server.port

    run(test)


def test_chunked_body_read_whole(run) -> None:
    async def handler(reader, writer, server) -> None:
        while await server.next_request(reader):
            writer.write(CHUNKED_HEAD + chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n") + b"0\r\n\r\n")

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            for _ in range(3):
                resp = await client.request("POST", server.url(), POST_HEADERS, b"{}")
                assert await resp.read() == b"data: 1\n\ndata: 2\n\n"
            assert server.accepted == 1

    run(test)


def test_large_bodies_both_ways(run) -> None:
    """A 32 MiB request body goes out intact (write flow control); a 5 MiB response comes back
    intact whether read whole or streamed slowly (read flow control pauses the socket)."""
    big_request = bytes(range(256)) * (32 * 4096)
    big_response = b"x" * (5 << 20)

    async def handler(reader, writer, server) -> None:
        while (req := await read_request(reader)) is not None:
            if req.target == b"/upload":
                writer.write(response(b"%d %d" % (len(req.body), zlib.crc32(req.body))))
            else:
                writer.write(response(big_response))

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("POST", server.url("/upload"), POST_HEADERS, big_request)
            assert await resp.read() == b"%d %d" % (len(big_request), zlib.crc32(big_request))
            resp = await client.request("GET", server.url("/download"), [])
            assert await resp.read() == big_response
            resp = await client.request("GET", server.url("/download"), [])
            await asyncio.sleep(0.2)  # a stalled consumer: the client stops reading at ~1 MiB
            assert resp._buffered <= HIGH_WATER + (256 << 10)
            received = bytearray()
            async for part in resp:
                received += part
                await asyncio.sleep(0.001)  # a slow consumer
            assert received == big_response
            assert server.accepted == 1

    run(test)


def test_body_until_close_head_204_304_and_informational(run) -> None:
    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            if req.target == b"/head":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
            elif req.target == b"/204":
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif req.target == b"/304":
                writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n")
            elif req.target == b"/103":
                writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + response(b"after hints"))
            elif req.target == b"/until-close":
                writer.write(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
                await asyncio.sleep(0.05)
                writer.write(b"part two")
                await writer.drain()
                return

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("HEAD", server.url("/head"), [])
            assert (resp.status, resp.header(b"content-length"), await resp.read()) == (200, b"1234", b"")
            resp = await client.request("GET", server.url("/204"), [])
            assert (resp.status, await resp.read()) == (204, b"")
            resp = await client.request("GET", server.url("/304"), [])
            assert (resp.status, await resp.read()) == (304, b"")
            resp = await client.request("GET", server.url("/103"), [])
            assert (resp.status, resp.headers[0], await resp.read()) == (200, (b"content-length", b"11"), b"after hints")
            assert server.accepted == 1  # all of those kept the connection
            resp = await client.request("GET", server.url("/until-close"), [])
            assert await resp.read() == b"part one, part two"
            assert idle_count(client) == 0

    run(test)


def test_connection_close_response_is_not_pooled(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        writer.write(response(b"bye", extra=b"Connection: close\r\n"))
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            for _ in range(2):
                resp = await client.request("GET", server.url(), [])
                assert await resp.read() == b"bye"
                assert idle_count(client) == 0
            assert server.accepted == 2

    run(test)


def test_gzip_and_deflate_bodies_are_decompressed(run) -> None:
    text = b'{"type": "message", "content": "' + b"hello " * 500 + b'"}'
    gz = zlib.compressobj(wbits=31)
    gzipped = gz.compress(text) + gz.flush()
    raw = zlib.compressobj(wbits=-15)
    raw_deflated = raw.compress(text) + raw.flush()

    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            if req.target == b"/gzip":
                writer.write(response(gzipped, extra=b"Content-Encoding: gzip\r\n"))
            elif req.target == b"/deflate":
                writer.write(response(zlib.compress(text), extra=b"Content-Encoding: deflate\r\n"))
            elif req.target == b"/raw-deflate":
                writer.write(response(raw_deflated, extra=b"Content-Encoding: deflate\r\n"))
            elif req.target == b"/gzip-chunked":
                head = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
                writer.write(head + chunk(gzipped[:40]))
                await asyncio.sleep(0.02)
                writer.write(chunk(gzipped[40:]) + b"0\r\n\r\n")
            elif req.target == b"/br":
                writer.write(response(b"opaque", extra=b"Content-Encoding: br\r\n"))

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            for path in ("/gzip", "/deflate", "/raw-deflate", "/gzip-chunked"):
                resp = await client.request("GET", server.url(path), [(b"accept-encoding", b"identity")])
                assert await resp.read() == text, path
                assert resp.header(b"content-encoding") is None
                assert resp.header(b"content-length") is None
            resp = await client.request("GET", server.url("/br"), [])
            assert (await resp.read(), resp.header(b"content-encoding")) == (b"opaque", b"br")

    run(test)


# -- streaming ---------------------------------------------------------------------------------


def test_streaming_delivers_each_chunk_before_the_next_is_sent(run) -> None:
    """The server holds chunk two back until the client has seen chunk one (or 2 s pass)."""
    server_waited_in_vain = False

    async def test() -> None:
        client_saw_first = asyncio.Event()

        async def handler(reader, writer, server) -> None:
            nonlocal server_waited_in_vain
            await server.next_request(reader)
            writer.write(CHUNKED_HEAD)
            await asyncio.sleep(0.05)  # the client is already waiting in __anext__
            writer.write(chunk(b"event: one\n\n"))
            try:
                await asyncio.wait_for(client_saw_first.wait(), 2)
            except TimeoutError:
                server_waited_in_vain = True
            writer.write(chunk(b"event: two\n\n") + b"0\r\n\r\n")

        async with Server(handler) as server, open_client() as client:
            resp = await client.request("POST", server.url(), POST_HEADERS, b"{}")
            assert resp.status == 200
            seen = []
            async for part in resp:
                seen.append(part)
                client_saw_first.set()
            assert seen == [b"event: one\n\n", b"event: two\n\n"]
            assert not server_waited_in_vain
            assert idle_count(client) == 1

    run(test)


# -- connection reuse -------------------------------------------------------------------------


def test_sequential_requests_reuse_one_connection(run) -> None:
    async def test() -> None:
        async with Server(echo_handler()) as server, open_client() as client:
            for i in range(1000):
                resp = await client.request("POST", server.url(), POST_HEADERS, b"%d" % i)
                assert await resp.read() == b"%d" % i
            assert server.accepted <= 2
            assert len(server.requests) == 1000

    run(test)


def test_concurrent_requests(run) -> None:
    async def test() -> None:
        async with Server(echo_handler(delay=0.01)) as server, open_client() as client:

            async def one(i: int) -> bytes:
                resp = await client.request("POST", server.url(), POST_HEADERS, b"%d" % i)
                return await resp.read()

            for _ in range(2):
                results = await asyncio.gather(*(one(i) for i in range(100)))
                assert results == [b"%d" % i for i in range(100)]
            assert server.accepted == 100  # the second round reused all of the first round's
            assert idle_count(client) == 100

    run(test)


def test_per_host_connection_cap(run) -> None:
    async def test() -> None:
        async with Server(echo_handler(delay=0.01)) as server, open_client(max_connections_per_host=3) as client:

            async def one(i: int) -> bytes:
                resp = await client.request("POST", server.url(), POST_HEADERS, b"%d" % i)
                return await resp.read()

            results = await asyncio.gather(*(one(i) for i in range(30)))
            assert results == [b"%d" % i for i in range(30)]
            assert server.accepted == 3

    run(test)


def test_idle_connections_beyond_max_idle_are_closed(run) -> None:
    async def test() -> None:
        async with Server(echo_handler(delay=0.01)) as server, open_client(max_idle_per_host=2) as client:

            async def one(i: int) -> bytes:
                return await (await client.request("POST", server.url(), POST_HEADERS, b"%d" % i)).read()

            assert await asyncio.gather(*(one(i) for i in range(10))) == [b"%d" % i for i in range(10)]
            assert server.accepted == 10
            assert idle_count(client) == 2

    run(test)


def test_stale_pooled_connection_is_retried_once_on_a_new_connection(run) -> None:
    """The server closes a kept-alive connection just as the next request arrives on it."""

    async def handler(reader, writer, server) -> None:
        conn_number = server.accepted
        served = 0
        while (req := await server.next_request(reader)) is not None:
            if conn_number == 1 and served == 1:
                return  # close without answering: the keep-alive race
            served += 1
            writer.write(response(req.body))

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            assert await (await client.request("POST", server.url(), POST_HEADERS, b"first")).read() == b"first"
            resp = await client.request("POST", server.url(), POST_HEADERS, b"second")
            assert await resp.read() == b"second"
            assert server.accepted == 2
            assert [r.body for r in server.requests] == [b"first", b"second", b"second"]

    run(test)


def test_pooled_connection_closed_by_server_while_idle_is_dropped(run) -> None:
    async def handler(reader, writer, server) -> None:
        req = await server.next_request(reader)
        writer.write(response(req.body))  # type: ignore[union-attr]
        await writer.drain()
        await asyncio.sleep(0.05)  # keep-alive timeout of a stingy server

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            assert await (await client.request("POST", server.url(), POST_HEADERS, b"a")).read() == b"a"
            assert idle_count(client) == 1
            await asyncio.sleep(0.2)
            assert idle_count(client) == 0
            assert await (await client.request("POST", server.url(), POST_HEADERS, b"b")).read() == b"b"
            assert len(server.requests) == 2  # no request was sent to the dead connection

    run(test)


def test_idle_connections_expire_after_ttl(run) -> None:
    async def test() -> None:
        async with Server(echo_handler()) as server, open_client(idle_ttl=0.1) as client:
            await (await client.request("GET", server.url(), [])).read()
            assert idle_count(client) == 1
            await asyncio.sleep(0.3)
            assert idle_count(client) == 0
            await (await client.request("GET", server.url(), [])).read()
            assert server.accepted == 2

    run(test)


def test_no_retry_after_response_bytes_on_a_reused_connection(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        writer.write(response(b"first"))
        await server.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Len")
        await writer.drain()
        await asyncio.sleep(0.02)
        reset(writer)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            await (await client.request("POST", server.url(), POST_HEADERS, b"1")).read()
            with pytest.raises(UpstreamDisconnected):
                await client.request("POST", server.url(), POST_HEADERS, b"2")
            await asyncio.sleep(0.05)
            assert len(server.requests) == 2 and server.accepted == 1

    run(test)


def test_no_retry_when_a_reused_connection_dies_late(run, monkeypatch: pytest.MonkeyPatch) -> None:
    """No response byte, but the server held the request longer than the keep-alive race allows."""
    monkeypatch.setattr(connection, "STALE_WINDOW", 0.1)

    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        writer.write(response(b"first"))
        await server.next_request(reader)
        await asyncio.sleep(0.3)
        reset(writer)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            await (await client.request("POST", server.url(), POST_HEADERS, b"1")).read()
            with pytest.raises(UpstreamDisconnected):
                await client.request("POST", server.url(), POST_HEADERS, b"2")
            assert len(server.requests) == 2 and server.accepted == 1

    run(test)


def test_first_request_on_new_connection_is_not_retried(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        reset(writer)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            with pytest.raises(UpstreamDisconnected):
                await client.request("POST", server.url(), POST_HEADERS, b"x")
            assert server.accepted == 1

    run(test)


def test_disconnect_mid_body(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this much")
        await writer.drain()
        await asyncio.sleep(0.02)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("GET", server.url(), [])
            with pytest.raises(UpstreamDisconnected):
                await resp.read()

    run(test)


# -- timeouts ----------------------------------------------------------------------------------


def test_connect_timeout(run) -> None:
    """A TCP server that never answers the TLS handshake."""

    async def handler(reader, writer, server) -> None:
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await client.request("GET", f"https://127.0.0.1:{server.port}/", [], timeouts=Timeouts(connect=0.2))
            assert info.value.phase == "connect"
            assert 0.15 < time.monotonic() - started < 1.0

    run(test)


def test_first_byte_timeout(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            started = time.monotonic()
            with pytest.raises(UpstreamTimeout) as info:
                await client.request("POST", server.url(), POST_HEADERS, b"{}", timeouts=Timeouts(first_byte=0.2))
            assert info.value.phase == "first_byte"
            assert 0.15 < time.monotonic() - started < 1.0
            await asyncio.wait_for(server.eof.wait(), 1)  # and the connection was closed

    run(test)


def test_idle_timeout_between_chunks(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        for i in range(3):  # gaps shorter than the idle timeout are fine
            writer.write((CHUNKED_HEAD if i == 0 else b"") + chunk(b"tick"))
            await asyncio.sleep(0.1)
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("POST", server.url(), POST_HEADERS, b"{}", timeouts=Timeouts(idle=0.25))
            received = b""
            with pytest.raises(UpstreamTimeout) as info:
                async for part in resp:
                    received += part
                    last = time.monotonic()
            assert info.value.phase == "idle"
            assert received == b"tick" * 3
            assert 0.2 < time.monotonic() - last < 1.0
            await asyncio.wait_for(server.eof.wait(), 1)

    run(test)


def test_caller_that_stops_consuming_times_out_and_frees_the_connection(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        writer.write(response(b"x" * (5 << 20)))
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("GET", server.url(), [], timeouts=Timeouts(idle=0.2))
            await asyncio.wait_for(server.eof.wait(), 1)  # nobody reads: the connection is dropped
            received = 0
            with pytest.raises(UpstreamTimeout) as info:
                async for part in resp:
                    received += len(part)
            assert info.value.phase == "idle"
            assert 0 < received < 5 << 20  # what was buffered is still delivered first

    run(test)


def test_idle_timeout_while_reading_whole_body(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        if server.requests[-1].target == b"/length":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        else:  # no length: the body would end at EOF, but the timeout's own close is no EOF
            writer.write(b"HTTP/1.1 200 OK\r\n\r\nabc")
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            for path in ("/length", "/until-close"):
                resp = await client.request("GET", server.url(path), [], timeouts=Timeouts(first_byte=5, idle=0.2))
                started = time.monotonic()
                with pytest.raises(UpstreamTimeout) as info:
                    await resp.read()
                assert info.value.phase == "idle"
                assert time.monotonic() - started < 1.0
                await asyncio.sleep(0.05)  # the connection is gone by now: still failed, not "complete"
                with pytest.raises(UpstreamTimeout):
                    await resp.read()

    run(test)


# -- cancellation and early close ------------------------------------------------------------------


def _streaming_then_wait_for_eof() -> Handler:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        writer.write(CHUNKED_HEAD + chunk(b"first"))
        await server.wait_eof(reader)

    return handler


def test_cancel_mid_stream_closes_upstream_connection(run) -> None:
    async def test() -> None:
        async with Server(_streaming_then_wait_for_eof()) as server, open_client() as client:
            got_first = asyncio.Event()

            async def consume() -> None:
                resp = await client.request("POST", server.url(), POST_HEADERS, b"{}")
                async for _ in resp:  # no aclose(): cancelling the read alone must close the connection
                    got_first.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(got_first.wait(), 1)
            cancelled_at = time.monotonic()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(server.eof.wait(), 1)
            assert server.eof_at - cancelled_at < 1.0
            assert idle_count(client) == 0

    run(test)


def test_cancel_while_waiting_for_headers_closes_upstream_connection(run) -> None:
    async def handler(reader, writer, server) -> None:
        await server.next_request(reader)
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            task = asyncio.create_task(client.request("POST", server.url(), POST_HEADERS, b"{}"))
            while not server.requests:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.wait_for(server.eof.wait(), 1)
            assert idle_count(client) == 0

    run(test)


def test_aclose_on_half_read_body_closes_instead_of_pooling(run) -> None:
    async def test() -> None:
        async with Server(_streaming_then_wait_for_eof()) as server, open_client() as client:
            resp = await client.request("POST", server.url(), POST_HEADERS, b"{}")
            assert await resp.__anext__() == b"first"
            await resp.aclose()
            await resp.aclose()  # idempotent
            await asyncio.wait_for(server.eof.wait(), 1)
            assert idle_count(client) == 0
            with pytest.raises(UpstreamError):
                await resp.read()

    run(test)


def test_aclose_after_full_read_keeps_connection(run) -> None:
    async def test() -> None:
        async with Server(echo_handler()) as server, open_client() as client:
            async with await client.request("POST", server.url(), POST_HEADERS, b"x") as resp:
                assert await resp.read() == b"x"
            assert idle_count(client) == 1

    run(test)


# -- errors ------------------------------------------------------------------------------------


def test_connection_refused(run) -> None:
    async def test() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        async with open_client() as client:
            with pytest.raises(UpstreamConnectError) as info:
                await client.request("GET", f"http://127.0.0.1:{port}/", [])
            assert str(port) in str(info.value)

    run(test)


def test_malformed_responses(run) -> None:
    bad = {
        b"/garbage": b"HELLO THERE\r\n\r\n",
        b"/status": b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
        b"/chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        b"/gzip": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!",
    }

    async def handler(reader, writer, server) -> None:
        req = await server.next_request(reader)
        writer.write(bad[req.target])  # type: ignore[union-attr]
        await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            for path in bad:
                with pytest.raises(UpstreamProtocolError):
                    resp = await client.request("GET", server.url(path.decode()), [])
                    await resp.read()
            assert idle_count(client) == 0

    run(test)


# -- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_with_trusted_self_signed_certificate(run, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)

    async def test() -> None:
        async with Server(echo_handler(), ssl_context=server_context) as server:
            async with open_client(ssl_context=ssl.create_default_context(cafile=str(cert))) as client:
                for path in ("/a", "/b"):
                    resp = await client.request("GET", server.url(path), [])
                    assert await resp.read() == path.encode()
                resp = await client.request("GET", f"https://localhost:{server.port}/c", [])
                assert await resp.read() == b"/c"
                assert server.accepted == 2  # one per host name
                upload = bytes(range(256)) * (8 * 4096)  # 8 MiB: sliced writes through the TLS transport
                resp = await client.request("POST", server.url(), POST_HEADERS, upload)
                assert await resp.read() == upload
            async with open_client() as default_client:  # system CAs: the self-signed cert is refused
                with pytest.raises(UpstreamConnectError):
                    await default_client.request("GET", server.url(), [])

    run(test)


# -- helpers -----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def open_client(**options: Any) -> AsyncIterator[UpstreamClient]:
    """An UpstreamClient closed at the end of the block."""
    client = UpstreamClient(**options)
    try:
        yield client
    finally:
        await client.aclose()
