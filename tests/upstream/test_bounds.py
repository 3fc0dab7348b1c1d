"""UpstreamClient's size caps: the response head, a body read whole (after decompression), and
decompression that never runs ahead of the caps or of a stream's reader. Real local servers,
on asyncio and uvloop, leak-checked (the `run` fixture of test_client)."""

from __future__ import annotations

import asyncio
import tracemalloc
import zlib

import pytest

from keystile.upstream.client import UpstreamClient, UpstreamProtocolError, UpstreamTooLarge
from tests.upstream.test_client import CHUNKED_HEAD, Server, chunk, idle_count, open_client, response, run  # noqa: F401

MiB = 1 << 20


def gzip_of_zeros(size: int) -> bytes:
    """A gzip body that inflates to `size` zero bytes (about 1/1000 of that on the wire), built in steps."""
    gz = zlib.compressobj(wbits=31)
    block = bytes(MiB)
    parts = [gz.compress(block) for _ in range(size // MiB)]
    parts.append(gz.flush())
    return b"".join(parts)


def test_head_over_the_cap_fails_and_is_not_pooled(run) -> None:
    """One header of 200 KB (the adversarial review's case), sent with its body in one write,
    and a head that never ends: both fail at the 64 KiB default; a head just under passes."""
    big = b"X-Request-Id: " + b"a" * 200_000 + b"\r\n"
    under = b"X-Request-Id: " + b"b" * 60_000 + b"\r\n"

    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            if req.target == b"/big":
                writer.write(response(b"{}", extra=big))
            elif req.target == b"/under":
                writer.write(response(b"{}", extra=under))
            elif req.target == b"/endless":
                writer.write(b"HTTP/1.1 200 OK\r\n")
                for _ in range(200):
                    writer.write(b"X-Filler: " + b"f" * 1000 + b"\r\n")
                    await writer.drain()
                await server.wait_eof(reader)

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("GET", server.url("/under"), [])
            assert len(resp.header(b"x-request-id") or b"") == 60_000
            assert await resp.read() == b"{}"
            for path in ("/big", "/endless"):
                with pytest.raises(UpstreamTooLarge) as caught:
                    await client.request("GET", server.url(path), [])
                assert (caught.value.part, caught.value.limit) == ("headers", 64 * 1024)
            await asyncio.sleep(0.05)
            assert idle_count(client) <= 1  # only the /under connection may be pooled

    run(test)


def test_head_cap_is_configurable(run) -> None:
    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            writer.write(response(b"ok", extra=b"X-Note: " + b"n" * 3000 + b"\r\n"))

    async def test() -> None:
        async with Server(handler) as server, open_client(max_header_bytes=2048) as client:
            with pytest.raises(UpstreamTooLarge):
                await client.request("GET", server.url("/"), [])

    run(test)


def test_body_read_whole_over_the_cap_fails_but_a_stream_has_no_total_cap(run) -> None:
    body = bytes(range(256)) * (12 * 1024)  # 3 MiB

    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            if req.target == b"/length":
                writer.write(response(body))
            else:
                writer.write(CHUNKED_HEAD)
                for start in range(0, len(body), 256 * 1024):
                    writer.write(chunk(body[start : start + 256 * 1024]))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")

    async def test() -> None:
        async with Server(handler) as server, open_client(max_body_bytes=2 * MiB) as client:
            for path in ("/length", "/chunked"):
                resp = await client.request("GET", server.url(path), [])
                with pytest.raises(UpstreamTooLarge) as caught:
                    await resp.read()
                assert (caught.value.part, caught.value.limit) == ("body", 2 * MiB), path
                resp = await client.request("GET", server.url(path), [])
                received = b"".join([piece async for piece in resp])
                assert received == body, path

            # Exactly at the cap is allowed.
            async with open_client(max_body_bytes=len(body)) as exact:
                resp = await exact.request("GET", server.url("/length"), [])
                assert await resp.read() == body

    run(test)


def test_gzip_bomb_read_whole_stops_at_the_cap_without_inflating_the_rest(run) -> None:
    """200 KB of gzip that would inflate to 200 MB: the read fails one step past the cap, and
    the memory it took stays near the cap (it took 485 MB before)."""
    bomb = gzip_of_zeros(200 * MiB)
    assert len(bomb) < 300_000

    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            writer.write(response(bomb, extra=b"Content-Encoding: gzip\r\n"))

    async def test() -> None:
        async with Server(handler) as server, open_client(max_body_bytes=4 * MiB) as client:
            tracemalloc.start()
            try:
                resp = await client.request("GET", server.url("/"), [])
                with pytest.raises(UpstreamTooLarge):
                    await resp.read()
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 6 * MiB + 3 * len(bomb), peak  # the cap, one inflate step, the compressed body

    run(test)


def test_gzip_bomb_streamed_is_inflated_as_the_reader_goes(run) -> None:
    """A compressed stream has no total cap, but never more than about 1 MiB of it (the flow
    control mark) is inflated ahead of the reader, whatever one compressed chunk expands to."""
    size = 64 * MiB
    bomb = gzip_of_zeros(size)

    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            head = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nContent-Encoding: gzip\r\n\r\n")
            writer.write(head + chunk(bomb) + b"0\r\n\r\n")

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("GET", server.url("/"), [])
            total = 0
            largest = 0
            tracemalloc.start()
            try:
                async for piece in resp:
                    total += len(piece)
                    largest = max(largest, len(piece))
                    assert not any(piece[:: 4096]), "zeros expected"
                    await asyncio.sleep(0)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert total == size
            assert largest <= 2 * MiB  # the 1 MiB mark plus one inflate step
            assert peak < 4 * MiB + 3 * len(bomb), peak
            # The body is complete: the connection went back to the pool.
            assert idle_count(client) == 1

    run(test)


def test_truncated_and_concatenated_gzip(run) -> None:
    text = b'{"a": "' + b"x" * 100_000 + b'"}'
    whole = zlib.compressobj(wbits=31)
    gzipped = whole.compress(text) + whole.flush()
    half = len(text) // 2
    first, second = zlib.compressobj(wbits=31), zlib.compressobj(wbits=31)
    two_members = first.compress(text[:half]) + first.flush() + second.compress(text[half:]) + second.flush()

    async def handler(reader, writer, server) -> None:
        while (req := await server.next_request(reader)) is not None:
            body = gzipped[:-20] if req.target == b"/truncated" else two_members
            writer.write(response(body, extra=b"Content-Encoding: gzip\r\n"))

    async def test() -> None:
        async with Server(handler) as server, open_client() as client:
            resp = await client.request("GET", server.url("/members"), [])
            assert await resp.read() == text
            resp = await client.request("GET", server.url("/members"), [])
            assert b"".join([piece async for piece in resp]) == text
            for read_whole in (True, False):
                resp = await client.request("GET", server.url("/truncated"), [])
                with pytest.raises(UpstreamProtocolError, match="truncated"):
                    if read_whole:
                        await resp.read()
                    else:
                        async for _ in resp:
                            pass

    run(test)


def test_client_defaults() -> None:
    client = UpstreamClient()
    assert (client._max_head, client._max_body) == (64 * 1024, 64 * MiB)
