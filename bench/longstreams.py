"""Many long streams at once, as a team's agents hold them: ``python -m bench.longstreams SPEC.json``.

Opens ``count`` keep-alive connections (at most ``connect_parallel`` connects in flight, so no
listen queue overflows), then sends one streaming request on each, all in the same instant, and
follows every stream to its end: its duration from its own send to its last byte, its time to
the first body byte, the events it carried. One process on uvloop (thousands of sockets are past
``select()``); its file-descriptor limit is raised to the hard limit first. Prints one
``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time
from dataclasses import dataclass

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

RESULT_MARK = "BENCH_RESULT "


@dataclass(frozen=True, slots=True)
class StreamsSpec:
    host: str
    port: int
    request: bytes
    count: int
    timeout: float = 60.0  # seconds from the send until a stream still open counts as incomplete
    connect_parallel: int = 256

    def to_json(self) -> dict:
        return {"host": self.host, "port": self.port, "request": self.request.decode("latin-1"), "count": self.count,
                "timeout": self.timeout, "connect_parallel": self.connect_parallel}

    @classmethod
    def from_json(cls, data: dict) -> StreamsSpec:
        return cls(data["host"], int(data["port"]), data["request"].encode("latin-1"), int(data["count"]),
                   float(data["timeout"]), int(data["connect_parallel"]))


class _Stream(asyncio.Protocol):
    __slots__ = ("parser", "transport", "sent", "first", "done", "events", "status", "lost", "finished", "_tail")

    def __init__(self, finished) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sent = self.first = self.done = 0.0
        self.events = 0
        self.status = 0
        self.lost = False
        self.finished = finished
        self._tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> None:
        self.sent = time.monotonic()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._end(lost=True)

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        if not self.first:
            self.first = time.monotonic()
        # SSE events end with a blank line; one may straddle two reads.
        chunk = self._tail + body.replace(b"\r\n", b"\n")
        self.events += chunk.count(b"\n\n")
        self._tail = chunk[-1:] if chunk.endswith(b"\n") and not chunk.endswith(b"\n\n") else b""

    def on_message_complete(self) -> None:
        self.done = time.monotonic()
        self._end(lost=False)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done:
            self._end(lost=True)

    def _end(self, lost: bool) -> None:
        if lost and not self.done:
            self.lost = True
        self.finished(self)
        self.finished = _ignore


def _ignore(stream: _Stream) -> None:
    pass


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered) + 0.5) - 1))]

    return {"p50": at(50), "p90": at(90), "p99": at(99), "min": ordered[0], "max": ordered[-1]}


async def run(spec: StreamsSpec) -> dict:
    loop = asyncio.get_running_loop()
    pending = spec.count
    all_done = loop.create_future()

    def finished(stream: _Stream) -> None:
        nonlocal pending
        if stream.sent:
            pending -= 1
            if pending == 0 and not all_done.done():
                all_done.set_result(None)

    gate = asyncio.Semaphore(spec.connect_parallel)
    connect_errors: dict[str, int] = {}

    async def connect() -> _Stream | None:
        async with gate:
            stream = _Stream(finished)
            try:
                await loop.create_connection(lambda: stream, spec.host, spec.port)
            except OSError as exc:
                name = type(exc).__name__
                connect_errors[name] = connect_errors.get(name, 0) + 1
                return None
            return stream

    connect_started = time.monotonic()
    streams = [s for s in await asyncio.gather(*(connect() for _ in range(spec.count))) if s is not None]
    connect_seconds = time.monotonic() - connect_started
    pending = len(streams)
    gc.collect()
    gc.disable()
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    for stream in streams:
        if stream.transport is not None and not stream.transport.is_closing():
            stream.send(spec.request)
        else:
            stream.lost = True
            pending -= 1
    sent_in = time.monotonic() - started
    if pending > 0:
        try:
            await asyncio.wait_for(all_done, spec.timeout)
        except asyncio.TimeoutError:
            pass
    ended = time.monotonic()
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    gc.enable()
    for stream in streams:
        if stream.transport is not None:
            stream.transport.close()
    completed = [s for s in streams if s.done and not s.lost and 200 <= s.status < 300]
    statuses: dict[str, int] = {}
    for s in streams:
        if s.done and not 200 <= s.status < 300:
            statuses[str(s.status)] = statuses.get(str(s.status), 0) + 1
    cpu = (usage_after.ru_utime + usage_after.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    last_done = max((s.done for s in completed), default=started)
    return {
        "streams": spec.count,
        "connected": len(streams),
        "connect_errors": connect_errors,
        "connect_seconds": connect_seconds,
        "completed": len(completed),
        "failed_status": statuses,
        "lost": sum(1 for s in streams if s.lost),
        "incomplete": sum(1 for s in streams if s.sent and not s.done and not s.lost),
        "send_spread_ms": 1000 * sent_in,
        "duration_s": _percentiles([s.done - s.sent for s in completed]),
        "ttfb_s": _percentiles([s.first - s.sent for s in completed if s.first]),
        "events_per_stream": _percentiles([float(s.events) for s in completed]),
        "all_done_after_s": last_done - started,
        "waited_s": ended - started,
        "client_cpu_s": cpu,
        "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.longstreams SPEC.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        spec = StreamsSpec.from_json(json.load(f))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    factory = uvloop.new_event_loop if uvloop is not None else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(run(spec))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
