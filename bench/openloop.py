"""An open-loop, constant-rate HTTP/1.1 client (wrk2's model): ``python -m bench.openloop SPEC.json``.

A closed-loop client (wrk, ``bench.pyload``) sends the next request only when the previous answer
is back, so while the server stalls it sends nothing and records one slow request where a real
stream of users would have met many: the stall is mostly left out of the percentiles
("coordinated omission"). Here every request has an *intended send time* fixed in advance —
connection ``c`` of ``N`` sends request ``c + kN`` at ``t0 + (c + kN) / rate`` — and its latency
is measured from that time to the last byte of the answer (and, for a stream, to its first body
byte). When the connection is still busy at the intended time, the request waits and the wait
counts: a 5 ms stall at 1,000 requests/s shows up in five requests, not one.

The client's own lateness is measured too: for each request, the time from when it could have
been sent (its intended time, or the previous answer's end if that came later) to when it was.
It is the same whether the server is the mock or keystile, so it cancels in "keystile minus
direct" at the same rate; the report shows it so a late client can be told from a slow server.
Timers: asyncio on ``select()`` (microsecond timeouts; uvloop's and epoll's are whole
milliseconds) with the process's timer slack at 1 µs; the garbage collector is off while it runs.
Latencies go into ``bench.histogram`` (0.1 % precision). Prints one ``BENCH_RESULT {json}`` line.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import gc
import json
import math
import resource
import selectors
import sys
from dataclasses import dataclass

import httptools

from bench.histogram import Histogram

RESULT_MARK = "BENCH_RESULT "
_PR_SET_TIMERSLACK = 29


@dataclass(frozen=True, slots=True)
class OpenLoopSpec:
    host: str
    port: int
    requests: tuple[bytes, ...]  # raw requests on the wire, sent in rotation
    rate: float  # requests per second, all connections together
    count: int  # measured requests
    connections: int = 1
    warmup: float = 0.0  # seconds of the same schedule before the measured requests (not recorded)
    max_lag: float = 5.0  # stop (rate not sustained) when a request waits longer than this to be sent
    stream: bool = False  # also record the time to the first body byte

    def to_json(self) -> dict:
        return {"host": self.host, "port": self.port, "requests": [r.decode("latin-1") for r in self.requests],
                "rate": self.rate, "count": self.count, "connections": self.connections, "warmup": self.warmup,
                "max_lag": self.max_lag, "stream": self.stream}

    @classmethod
    def from_json(cls, data: dict) -> OpenLoopSpec:
        return cls(data["host"], int(data["port"]), tuple(r.encode("latin-1") for r in data["requests"]),
                   float(data["rate"]), int(data["count"]), int(data["connections"]), float(data["warmup"]),
                   float(data["max_lag"]), bool(data["stream"]))


class _Run:
    def __init__(self, spec: OpenLoopSpec, loop: asyncio.AbstractEventLoop) -> None:
        self.spec = spec
        self.loop = loop
        self.warmup_count = int(spec.warmup * spec.rate)
        self.total = self.warmup_count + spec.count
        self.t0 = 0.0
        self.latency = Histogram()
        self.ttfb = Histogram()
        self.lateness = Histogram()
        self.errors = {"connect": 0, "read": 0, "status": 0, "unsent": 0}
        self.sustained = True
        self.max_lag_seen = 0.0
        self.first_measured_at = 0.0
        self.last_done_at = 0.0
        self.active = 0
        self.finished: asyncio.Future = loop.create_future()

    def intended(self, index: int) -> float:
        return self.t0 + index / self.spec.rate

    def connection_done(self) -> None:
        self.active -= 1
        if self.active <= 0 and not self.finished.done():
            self.finished.set_result(None)

    def give_up(self) -> None:
        """The schedule fell more than ``max_lag`` behind: the server cannot keep this rate."""
        self.sustained = False
        if not self.finished.done():
            self.finished.set_result(None)


class _Connection(asyncio.Protocol):
    """One keep-alive connection with its own schedule: requests ``number``, ``number + N``, ..."""

    def __init__(self, run: _Run, number: int) -> None:
        self.run = run
        self.index = number  # the next request to become due
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.due: collections.deque[int] = collections.deque()
        self.busy = False
        self.current = -1
        self.current_intended = 0.0
        self.first_byte = 0.0
        self.idle_since = 0.0
        self.closed = False

    # -- schedule

    def start(self) -> None:
        self.idle_since = self.run.t0
        self._arm()

    def _arm(self) -> None:
        if self.index < self.run.total:
            self.run.loop.call_at(self.run.intended(self.index), self._due)
        elif not self.busy and not self.due:
            self._finish()

    def _due(self) -> None:
        if self.closed or self.run.finished.done():
            return
        self.due.append(self.index)
        self.index += self.run.spec.connections
        lag = self.run.loop.time() - self.run.intended(self.due[0])
        if lag > self.run.max_lag_seen:
            self.run.max_lag_seen = lag
        if lag > self.run.spec.max_lag:
            self.run.give_up()
            return
        if not self.busy:
            self._send()
        self._arm()

    def _send(self) -> None:
        index = self.due.popleft()
        now = self.run.loop.time()
        intended = self.run.intended(index)
        if index >= self.run.warmup_count:
            self.run.lateness.record(int((now - max(intended, self.idle_since)) * 1e9))
        self.busy = True
        self.current = index
        self.current_intended = intended
        self.first_byte = 0.0
        self.transport.write(self.run.spec.requests[index % len(self.run.spec.requests)])

    def _finish(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()
            self.run.connection_done()

    # -- asyncio.Protocol and httptools callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.run.errors["read"] += 1
            self._lost()

    def on_body(self, body: bytes) -> None:
        if not self.first_byte:
            self.first_byte = self.run.loop.time()

    def on_message_complete(self) -> None:
        now = self.run.loop.time()
        run = self.run
        if self.current >= run.warmup_count:
            if not run.first_measured_at:
                run.first_measured_at = self.current_intended
            run.latency.record(int((now - self.current_intended) * 1e9))
            if run.spec.stream:
                run.ttfb.record(int(((self.first_byte or now) - self.current_intended) * 1e9))
            if self.parser.get_status_code() >= 400:
                run.errors["status"] += 1
            run.last_done_at = now
        self.busy = False
        self.idle_since = now
        if self.due:
            self._send()
        elif self.index >= run.total:
            self._finish()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.run.errors["read"] += 1
            self._lost()

    def _lost(self) -> None:
        # The request in flight counts as a read error; the ones after it were never sent.
        self.run.errors["unsent"] += len(range(self.index, self.run.total, self.run.spec.connections)) + len(self.due)
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        self.run.connection_done()


def _precise_timers() -> None:
    """Wake-ups within a microsecond of the asked time instead of the default 50 µs slack (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_TIMERSLACK, 1000, 0, 0, 0)
    except (OSError, AttributeError):
        pass


async def run(spec: OpenLoopSpec) -> dict:
    loop = asyncio.get_running_loop()
    state = _Run(spec, loop)
    connections = [_Connection(state, c) for c in range(spec.connections)]
    for conn in connections:
        try:
            await loop.create_connection(lambda conn=conn: conn, spec.host, spec.port)
        except OSError:
            state.errors["connect"] += 1
    live = [c for c in connections if c.transport is not None]
    state.active = len(live)
    gc.collect()
    gc.freeze()
    gc.disable()  # a collection pause in the client would read as server latency
    usage_before = resource.getrusage(resource.RUSAGE_SELF)
    state.t0 = loop.time() + 0.05
    for conn in live:
        conn.start()
    bound = state.total / spec.rate + spec.max_lag + 15.0
    if live:
        try:
            await asyncio.wait_for(asyncio.shield(state.finished), bound)
        except asyncio.TimeoutError:
            state.sustained = False
    usage_after = resource.getrusage(resource.RUSAGE_SELF)
    gc.enable()
    for conn in live:
        if not conn.closed:
            conn.closed = True
            conn.transport.close()
    cpu = (usage_after.ru_utime + usage_after.ru_stime) - (usage_before.ru_utime + usage_before.ru_stime)
    measured = state.latency.count
    span = (state.last_done_at - state.first_measured_at) if measured else 0.0
    wall = loop.time() - state.t0
    result = {
        "rate_target": spec.rate,
        "connections": spec.connections,
        "requests": measured,
        "requests_scheduled": spec.count,
        "seconds": span,
        "rate_achieved": (measured - 1) / span if measured > 1 and span > 0 else 0.0,
        "sustained": state.sustained and measured == spec.count,
        "max_lag_ms": state.max_lag_seen * 1000,
        "errors": state.errors,
        "latency_us": state.latency.summary(),
        "latency_histogram": state.latency.to_json(),
        "client_lateness_us": state.lateness.summary(),
        "client_cpu_us_per_request": 1e6 * cpu / max(1, measured + state.warmup_count),
        "client_cpu_percent": 100.0 * cpu / wall if wall > 0 else 0.0,
    }
    if spec.stream:
        result["ttfb_us"] = state.ttfb.summary()
        result["ttfb_histogram"] = state.ttfb.to_json()
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.openloop SPEC.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        spec = OpenLoopSpec.from_json(json.load(f))
    if spec.rate <= 0 or spec.count <= 0 or spec.connections <= 0 or not math.isfinite(spec.rate):
        print("bench.openloop: rate, count and connections must be positive", file=sys.stderr)
        return 2
    _precise_timers()
    with asyncio.Runner(loop_factory=lambda: asyncio.SelectorEventLoop(selectors.SelectSelector())) as runner:
        result = runner.run(run(spec))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
