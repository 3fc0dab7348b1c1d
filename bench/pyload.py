"""A small HTTP/1.1 load generator for machines without ``wrk``: ``python -m bench.pyload SPEC.json``.

N keep-alive connections, each sending its next request the moment the previous response
is complete (closed loop, like wrk), for a fixed duration or a request budget. Raw asyncio
protocols + httptools on uvloop; every latency is kept, so percentiles are exact. It costs
more CPU per request than wrk, so on a shared load core it saturates earlier.
Prints one ``BENCH_RESULT {json}`` line, the same shape as the wrk script's.
"""

from __future__ import annotations

import asyncio
import json
import sys
from array import array
from time import perf_counter

import httptools

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None

RESULT_MARK = "BENCH_RESULT "


class _Run:
    def __init__(self, requests: list[bytes], duration: float, max_requests: int) -> None:
        self.requests = requests
        self.deadline = 0.0
        self.duration = duration
        self.max_requests = max_requests
        self.started = 0
        self.latencies = array("d")
        self.errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}
        self.first = 0.0
        self.last = 0.0
        self.open = 0
        self.all_closed: asyncio.Future | None = None

    def next_request(self) -> bytes | None:
        if perf_counter() >= self.deadline or (self.max_requests and self.started >= self.max_requests):
            return None
        request = self.requests[self.started % len(self.requests)]
        self.started += 1
        return request


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0
        self.busy = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.run.open += 1
        self._send()

    def _send(self) -> None:
        request = self.run.next_request()
        if request is None:
            self.transport.close()
            return
        self.busy = True
        self.sent_at = perf_counter()
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.run.errors["read"] += 1
            self.transport.close()

    def on_message_complete(self) -> None:
        now = perf_counter()
        self.busy = False
        self.run.latencies.append(now - self.sent_at)
        self.run.last = now
        status = self.parser.get_status_code()
        if status >= 400:
            self.run.errors["status"] += 1
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.run.errors["read"] += 1
        self.run.open -= 1
        if self.run.open == 0 and self.run.all_closed is not None and not self.run.all_closed.done():
            self.run.all_closed.set_result(None)


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[index]


async def run(spec: dict) -> dict:
    requests = []
    for r in spec["requests"]:
        body = r["body"].encode()
        head = [f"{r['method']} {r['path']} HTTP/1.1", f"host: {spec['host']}:{spec['port']}", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in r["headers"]]
        requests.append(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    state = _Run(requests, float(spec["duration"]), int(spec.get("max_requests") or 0))
    loop = asyncio.get_running_loop()
    state.all_closed = loop.create_future()
    state.first = perf_counter()
    state.deadline = state.first + state.duration
    for _ in range(int(spec["connections"])):
        try:
            await loop.create_connection(lambda: _Connection(state), spec["host"], spec["port"])
        except OSError:
            state.errors["connect"] += 1
    if state.open:
        try:
            await asyncio.wait_for(state.all_closed, state.duration + 15)
        except asyncio.TimeoutError:
            state.errors["timeout"] += 1
    ordered = sorted(state.latencies)
    us = [x * 1e6 for x in ordered]
    latency = {f"p{q:g}": _percentile(us, q) for q in (50, 75, 90, 99, 99.9)}
    latency.update({"min": us[0] if us else 0.0, "max": us[-1] if us else 0.0, "mean": sum(us) / len(us) if us else 0.0})
    seconds = (state.last or perf_counter()) - state.first
    return {"requests": len(ordered), "seconds": seconds, "latency_us": latency, "errors": state.errors}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.pyload SPEC.json", file=sys.stderr)
        return 2
    with open(args[0]) as f:
        spec = json.load(f)
    factory = uvloop.new_event_loop if uvloop is not None else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(run(spec))
    print(RESULT_MARK + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
