"""Streams as a client sees them: time to first byte, and whether events arrive one by one.

A plain blocking socket and httptools, on one keep-alive connection, with the clock read
the moment ``recv`` returns — nothing between the wire and the timestamp.
"""

from __future__ import annotations

import socket
import statistics
from dataclasses import dataclass, field
from time import perf_counter

import httptools

from bench.scenarios import HttpRequest
from bench.services import HOST


@dataclass(slots=True)
class StreamTiming:
    status: int = 0
    head: float = 0.0  # seconds from the request's last byte to the response head
    first_event: float = 0.0  # ... to the first body byte (the first SSE event)
    total: float = 0.0  # ... to the end of the stream
    events: list[float] = field(default_factory=list)  # arrival time of each complete SSE event
    overhead_ms: float | None = None  # keystile's own x-keystile-overhead-ms, when present


class _Parser:
    """httptools callbacks: collects the head, the body's arrival times and complete events."""

    def __init__(self) -> None:
        self.timing = StreamTiming()
        self.now = 0.0
        self.sent = 0.0
        self.buffer = b""
        self.done = False
        self.headers: dict[bytes, bytes] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.timing.head = self.now - self.sent

    def on_body(self, body: bytes) -> None:
        if not self.timing.first_event:
            self.timing.first_event = self.now - self.sent
        self.buffer += body.replace(b"\r\n", b"\n")
        while b"\n\n" in self.buffer:
            event, _, self.buffer = self.buffer.partition(b"\n\n")
            if event.strip():
                self.timing.events.append(self.now - self.sent)

    def on_message_complete(self) -> None:
        self.timing.total = self.now - self.sent
        self.done = True


class StreamClient:
    """One keep-alive connection that sends streaming requests one after another."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def stream(self, request: HttpRequest) -> StreamTiming:
        callbacks = _Parser()
        parser = httptools.HttpResponseParser(callbacks)
        self.sock.sendall(request.raw(HOST, self.port))
        callbacks.sent = perf_counter()
        while not callbacks.done:
            data = self.sock.recv(65536)
            callbacks.now = perf_counter()
            if not data:
                raise ConnectionError("the server closed the connection mid-response")
            parser.feed_data(data)
        timing = callbacks.timing
        timing.status = parser.get_status_code()
        overhead = callbacks.headers.get(b"x-keystile-overhead-ms")
        if overhead is not None:
            timing.overhead_ms = float(overhead)
        return timing

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "StreamClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[index]


def time_to_first_byte(port: int, request: HttpRequest, count: int, warmup: int = 5) -> dict:
    """``count`` sequential streams; TTFB (to the first event) and time to the head, in ms."""
    with StreamClient(port) as client:
        for _ in range(warmup):
            client.stream(request)
        timings = [client.stream(request) for _ in range(count)]
    bad = [t.status for t in timings if t.status != 200]
    first = [t.first_event * 1000 for t in timings]
    head = [t.head * 1000 for t in timings]
    total = [t.total * 1000 for t in timings]
    overhead = [t.overhead_ms for t in timings if t.overhead_ms is not None]
    return {
        "streams": count,
        "non_200": len(bad),
        "events_per_stream": statistics.median(len(t.events) for t in timings) if timings else 0,
        "ttfb_ms": {"p50": percentile(first, 50), "p99": percentile(first, 99), "min": min(first, default=0.0), "max": max(first, default=0.0)},
        "head_ms": {"p50": percentile(head, 50), "p99": percentile(head, 99)},
        "total_ms": {"p50": percentile(total, 50), "p99": percentile(total, 99)},
        "keystile_overhead_header_ms": {"p50": percentile(overhead, 50), "p99": percentile(overhead, 99)} if overhead else None,
    }


def pacing(port: int, request: HttpRequest, delay: float, streams: int) -> dict:
    """Against an upstream that sends one event every ``delay`` s: did each arrive on its own?

    A buffering proxy delivers events in bursts — several events within a millisecond of
    each other after a long silence. Passing needs the first event to arrive before the
    upstream sends the second, and no event to arrive less than ``delay / 10`` after the
    previous one. (Scheduling noise shifts single events by a few ms; it does not bunch
    them.)
    """
    runs = []
    with StreamClient(port, timeout=max(10.0, delay * 100)) as client:
        for _ in range(streams):
            timing = client.stream(request)
            gaps = [b - a for a, b in zip(timing.events, timing.events[1:])]
            runs.append({
                "status": timing.status,
                "events": len(timing.events),
                "first_event_ms": timing.first_event * 1000,
                "gaps_ms": [round(g * 1000, 2) for g in gaps],
                "separate": bool(gaps) and timing.status == 200 and min(gaps) >= delay / 10 and timing.first_event < delay,
            })
    all_gaps = [g for r in runs for g in r["gaps_ms"]]
    return {
        "upstream_event_delay_ms": delay * 1000,
        "streams": runs,
        "min_gap_ms": min(all_gaps, default=0.0),
        "median_gap_ms": statistics.median(all_gaps) if all_gaps else 0.0,
        "max_gap_ms": max(all_gaps, default=0.0),
        "passed": bool(runs) and all(r["separate"] for r in runs),
    }
