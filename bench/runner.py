"""The benchmark's phases, in order, against one mock upstream and one keystile.

    start:   mock upstream, paced mock, keystile (startup time), a virtual key with limits
    load:    closed loop, per scenario and connection count, direct to the mock then through keystile
    latency: open loop at one connection and a constant rate, per surface, direct then through keystile
    ttfb:    sequential streams, direct then through keystile
    pacing:  streams from an upstream that waits between events
    search:  the highest rate at which keystile's added p99 stays under each bound, per worker count
    soak:    many requests through keystile while its RSS is sampled
    streams: thousands of concurrent long streams through one worker, its RSS before, at peak, after
    restarts: more startup-time samples
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench import procfs, streams
from bench.load import LoadGenerator, LoadResult, LoadSpec, run_child, run_open_loop
from bench.longstreams import StreamsSpec
from bench.openloop import OpenLoopSpec
from bench.scenarios import (AGENT_MODEL, AGENT_UPSTREAM_MODEL, LATENCY_SCENARIOS, PACED_MODELS, ROUTED_MODEL,
                             SCENARIOS, STREAM_SCENARIOS, THROUGHPUT_SCENARIOS)
from bench.search import Step, search_rates
from bench.services import (BENCH_KEY_LIMITS, HOST, FloorServer, Gateway, MockUpstream, Pinning, gateway_config,
                            new_master_key)

MB = 1024 * 1024
ADDED_QUANTILES = ("p50", "p90", "p99", "p99.9", "max")
RSS_RETURN_MB = 10.0
"""After the long streams, the worker's RSS counts as back near its baseline within this much."""


@dataclass
class Options:
    mode: str = "full"  # full | quick | smoke | profile
    duration: float = 4.0
    warmup: float = 1.0
    connections: tuple[int, ...] = (64,)
    scenarios: tuple[str, ...] = THROUGHPUT_SCENARIOS
    # open loop at one connection: the added latency distribution
    latency_scenarios: tuple[str, ...] = LATENCY_SCENARIOS
    latency_rate: float = 1000.0
    latency_requests: int = 20_000
    latency_floor_requests: int = 10_000  # the floor app is a reference, not a target: half the requests
    latency_warmup: float = 0.5
    latency_max_lag: float = 1.0
    # throughput at a latency bound
    search_workers: tuple[int, ...] = (1, 2)
    search_bounds_ms: tuple[float, ...] = (1.0, 5.0)
    search_connections: int = 32
    search_seconds: float = 1.5
    search_warmup: float = 0.5
    search_start: float = 500.0
    search_ceiling: float = 64_000.0
    search_budget: float = 30.0
    search_refine: int = 2
    # many long streams at once
    long_streams: int = 5000
    long_stream_pauses: int = 3
    long_stream_gap: float = 0.3
    long_stream_settle: float = 10.0
    ttfb_streams: int = 200
    pacing_streams: int = 2
    pacing_delay: float = 0.05
    soak_requests: int = 100_000
    soak_connections: int = 64
    soak_timeout: float = 300.0
    rss_interval: float = 2.0
    startup_runs: int = 3
    upstream_latency_ms: float = 0.0
    coalesce_stream: bool = False
    workers: int = 1
    floor: bool = True
    wait_quiet: float = 0.0  # seconds to wait, before each measured run, for other work to stop
    profile_seconds: int = 10
    profile_rate: int = 250


# --- measuring one load run ----------------------------------------------------------------------


@dataclass(slots=True)
class _Snapshot:
    at: float
    workers: dict[int, float]
    main: float
    mocks: float
    reaped: float
    cores: procfs.CoreTimes
    rss: dict[int, int]
    scraped: dict[str, float]
    """keystile's /metrics figures (``Gateway.scrape``); empty for the floor app."""
    threads: dict[int, tuple[str, float]]


class Bench:
    def __init__(self, options: Options, pinning: Pinning, loadgen: LoadGenerator, workdir: Path) -> None:
        self.o = options
        self.pinning = pinning
        self.loadgen = loadgen
        self.workdir = workdir
        self.mock: MockUpstream | None = None
        self.paced: MockUpstream | None = None
        self.gateway: Gateway | None = None
        self.floor: FloorServer | None = None
        self.config: Path | None = None
        self.master_key = new_master_key()
        self.key = ""

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> dict:
        o = self.o
        self.mock = MockUpstream(self.workdir, "mock", self.pinning, o.upstream_latency_ms, o.coalesce_stream)
        self.paced = MockUpstream(self.workdir, "mock-paced", self.pinning)
        self.paced.set_faults([
            {"match": {"model": AGENT_UPSTREAM_MODEL},
             "action": {"type": "event_delay", "seconds": o.long_stream_gap, "pauses": o.long_stream_pauses}},
            {"action": {"type": "event_delay", "seconds": o.pacing_delay}},
        ])
        self.config = gateway_config(self.workdir, self.mock.url, self.paced.url, self.master_key,
                                     max_connections=max(20_000, 4 * o.long_streams))
        self.gateway = Gateway(self.workdir, self.config, self.pinning, self.master_key, o.workers)
        self.key = self.gateway.create_key(BENCH_KEY_LIMITS)
        self._check_answers()
        if o.floor and ("messages" in o.scenarios or "messages" in o.latency_scenarios):
            self.floor = FloorServer(self.workdir, self.pinning)
        return {"seconds": self.gateway.startup_seconds, "fresh_database": True}

    def stop(self) -> None:
        for service in (self.floor, self.gateway, self.mock, self.paced):
            if service is not None:
                service.stop()

    def _check_answers(self) -> None:
        """One request of each kind the run uses, both ways, must succeed before anything is timed."""
        o = self.o
        names = {*o.scenarios, *o.latency_scenarios, *STREAM_SCENARIOS}
        for scenario in (SCENARIOS[name] for name in names):
            for port, request in ((self.mock.port, scenario.direct()), (self.gateway.port, scenario.through_gateway(self.key))):
                with streams.StreamClient(port) as client:
                    timing = client.stream(request)
                if timing.status != 200:
                    raise RuntimeError(f"{scenario.name} on port {port} answered {timing.status}; see {self.workdir}")

    # --- snapshots ------------------------------------------------------------------------

    def _snapshot(self, server: Gateway | FloorServer) -> _Snapshot:
        """``server``: the HTTP server whose cost is measured (keystile, or the floor app)."""
        workers = server.refresh_workers() if isinstance(server, Gateway) else server.worker_pids
        mocks = sum(procfs.cpu_seconds(m.pid) for m in (self.mock, self.paced))
        return _Snapshot(
            at=time.perf_counter(),
            workers={pid: procfs.cpu_seconds(pid) for pid in workers},
            main=procfs.cpu_seconds(server.pid),
            mocks=mocks,
            reaped=procfs.reaped_children_cpu(),
            cores=procfs.core_times(),
            rss={pid: procfs.rss_bytes(pid) for pid in workers},
            scraped=server.scrape() if isinstance(server, Gateway) else {},
            threads={tid: v for pid in workers for tid, v in procfs.thread_cpu(pid).items()},
        )

    def _our_pids(self) -> list[int]:
        pids = []
        for service in (self.gateway, self.floor, self.mock, self.paced):
            if service is not None:
                pids.append(service.pid)
                pids.extend(getattr(service, "worker_pids", ()))
        return pids

    def other_load(self, seconds: float = 1.0) -> float:
        """CPU used by processes outside the benchmark over ``seconds``, in cores."""
        pids = self._our_pids()

        def ours() -> float:
            total = 0.0
            for pid in pids:
                try:
                    total += procfs.cpu_seconds(pid)
                except OSError:
                    pass
            return total

        before, mine = procfs.core_times(), ours() + procfs.reaped_children_cpu()
        time.sleep(seconds)
        after, mine_after = procfs.core_times(), ours() + procfs.reaped_children_cpu()
        busy = (after.busy["cpu"] - before.busy["cpu"]) / procfs.CLOCK_TICKS
        return max(0.0, busy - (mine_after - mine)) / seconds

    def wait_until_quiet(self) -> dict | None:
        """With ``--wait-quiet S``: wait up to S seconds for other processes to use < 15% of a core."""
        if self.o.wait_quiet <= 0:
            return None
        started = time.monotonic()
        while True:
            other = self.other_load(1.0)
            waited = time.monotonic() - started
            if other < 0.15 or waited >= self.o.wait_quiet:
                return {"waited_s": round(waited, 1), "other_cores": round(other, 2), "quiet": other < 0.15}

    def measure(self, spec: LoadSpec, server: Gateway | FloorServer | None = None) -> tuple[LoadResult, dict]:
        return self.measured(server or self.gateway, lambda: self.loadgen.run(spec), lambda r: r.requests)

    def measured(self, server: Gateway | FloorServer, run, requests_of) -> tuple[object, dict]:
        """``run()`` with the costs around it: the server's CPU and RSS, the load side's CPU, other processes'."""
        quiet = self.wait_until_quiet()
        before = self._snapshot(server)
        result = run()
        after = self._snapshot(server)
        wall = after.at - before.at
        worker_cpu = sum(after.workers.get(pid, 0.0) - before.workers.get(pid, 0.0) for pid in after.workers)
        main_cpu = after.main - before.main
        mock_cpu = after.mocks - before.mocks
        loadgen_cpu = after.reaped - before.reaped
        ticks = procfs.CLOCK_TICKS

        def core_busy(names: tuple[int, ...] | None) -> float | None:
            if not names:
                return None
            busy = sum(after.cores.busy[f"cpu{n}"] - before.cores.busy[f"cpu{n}"] for n in names)
            total = sum(after.cores.total[f"cpu{n}"] - before.cores.total[f"cpu{n}"] for n in names)
            return 100.0 * busy / total if total else None

        machine_busy = (after.cores.busy["cpu"] - before.cores.busy["cpu"]) / ticks
        ours = worker_cpu + main_cpu + mock_cpu + loadgen_cpu
        scraped = {name: value - before.scraped.get(name, 0.0) for name, value in after.scraped.items()}
        overhead_sum = scraped.get("overhead_sum", 0.0)
        overhead_count = scraped.get("overhead_count", 0.0)
        n = max(requests_of(result), 1)
        threads = []
        for tid, (name, seconds) in after.threads.items():
            used = seconds - before.threads.get(tid, (name, 0.0))[1]
            threads.append({"tid": tid, "name": name, "cpu_percent": round(100.0 * used / wall, 1),
                            "us_per_request": round(1e6 * used / n, 1)})
        threads.sort(key=lambda t: -t["cpu_percent"])
        costs = {
            "wall_seconds": wall,
            "gateway_worker_cpu_s": worker_cpu,
            "gateway_main_cpu_s": main_cpu,
            "gateway_cpu_us_per_request": 1e6 * worker_cpu / n,
            "gateway_cpu_percent": 100.0 * worker_cpu / wall,
            "mock_cpu_us_per_request": 1e6 * mock_cpu / n,
            "mock_cpu_percent": 100.0 * mock_cpu / wall,
            "loadgen_cpu_percent": 100.0 * loadgen_cpu / wall,
            "load_side_cpu_percent": 100.0 * (mock_cpu + loadgen_cpu) / wall,
            "gateway_core_busy_percent": core_busy(getattr(server, "cores", None) or self.pinning.gateway),
            "load_core_busy_percent": core_busy(tuple(sorted({*(self.pinning.load or ()), *(self.pinning.clients or ())}))),
            "other_processes_cpu_percent": max(0.0, 100.0 * (machine_busy - ours) / wall),
            "rss_before_mb": sum(before.rss.values()) / MB,
            "rss_after_mb": sum(after.rss.values()) / MB,
            "keystile_overhead_mean_us": 1e6 * overhead_sum / overhead_count if overhead_count else None,
            # Database round trips during the run (the metric scrapes themselves make none).
            "store_reads": scraped.get("store_read") if scraped else None,
            "store_writes": scraped.get("store_write") if scraped else None,
            "gateway_worker_threads": threads,
            "quiet_wait": quiet,
        }
        return result, costs

    # --- phases ---------------------------------------------------------------------------

    def load_runs(self, progress) -> list[dict]:
        o = self.o
        runs = []
        for name in o.scenarios:
            scenario = SCENARIOS[name]
            for connections in o.connections:
                targets = [("direct", self.mock.port, scenario.direct(), self.gateway)]
                if name == "messages" and self.floor is not None:
                    targets.append(("floor", self.floor.port, scenario.direct(), self.floor))
                targets.append(("keystile", self.gateway.port, scenario.through_gateway(self.key), self.gateway))
                if name == "messages":  # the same request to a three-deployment group: what routing costs
                    targets.append(("routed", self.gateway.port, scenario.through_gateway(self.key, ROUTED_MODEL), self.gateway))
                for via, port, request, server in targets:
                    spec = LoadSpec(port, (request,), connections, o.duration)
                    if o.warmup > 0:
                        self.loadgen.run(replace(spec, duration=o.warmup))
                    result, costs = self.measure(spec, server)
                    run = {"scenario": name, "connections": connections, "via": via, **result.to_json(), **costs}
                    runs.append(run)
                    progress(run)
        return runs

    def latency(self, progress) -> dict:
        """Open loop at ``latency_rate`` on one connection: each scenario direct, on the floor app (the
        first scenario), through keystile; the added distribution is keystile's minus direct's."""
        o = self.o
        out = {}
        for name in o.latency_scenarios:
            scenario = SCENARIOS[name]
            metric = "ttfb_us" if scenario.stream else "latency_us"
            targets = [("direct", self.mock.port, scenario.direct(), self.gateway)]
            if name == o.latency_scenarios[0] and self.floor is not None and not scenario.stream:
                targets.append(("floor", self.floor.port, scenario.direct(), self.floor))
            targets.append(("keystile", self.gateway.port, scenario.through_gateway(self.key), self.gateway))
            entry: dict = {"scenario": name, "description": scenario.description, "metric": metric}
            for via, port, request, server in targets:
                count = min(o.latency_requests, o.latency_floor_requests) if via == "floor" else o.latency_requests
                spec = OpenLoopSpec(HOST, port, (request.raw(HOST, port),), o.latency_rate, count,
                                    connections=1, warmup=o.latency_warmup, max_lag=o.latency_max_lag,
                                    stream=scenario.stream)
                result, costs = self.measured(server, lambda spec=spec: run_open_loop(self.pinning, self.workdir, spec),
                                              lambda r: r["requests"])
                entry[via] = {**result, **costs}
                progress(name, via, entry[via], metric)
            entry["added_ms"] = added_ms(entry["direct"][metric], entry["keystile"][metric])
            out[name] = entry
        return out

    def search(self, progress) -> dict:
        """Per worker count: the highest rate at which keystile's added p99 stays under each bound."""
        o = self.o
        scenario = SCENARIOS["messages"]
        direct_cache: dict[float, dict] = {}
        out = {"scenario": "messages", "connections": o.search_connections, "bounds_ms": list(o.search_bounds_ms),
               "step_seconds": o.search_seconds, "workers": {}}
        for workers in o.search_workers:
            own = workers == o.workers
            gateway = self.gateway if own else Gateway(self.workdir, self.config, self.pinning, self.master_key, workers,
                                                       name=f"keystile-{workers}-workers")
            try:
                def measure(rate: float, gateway: Gateway = gateway, workers: int = workers) -> Step:
                    direct = direct_cache.get(rate)
                    if direct is None:
                        direct = direct_cache[rate] = self._open_loop(self.mock.port, scenario.direct(), rate)
                    through, costs = self.measured(
                        gateway, lambda: self._open_loop(gateway.port, scenario.through_gateway(self.key), rate),
                        lambda r: r["requests"])
                    step = Step(rate, (through["latency_us"]["p99"] - direct["latency_us"]["p99"]) / 1000.0,
                                through["sustained"] and direct["sustained"], sum(through["errors"].values()),
                                {"direct_p99_ms": direct["latency_us"]["p99"] / 1000.0,
                                 "keystile_p50_ms": through["latency_us"]["p50"] / 1000.0,
                                 "keystile_p99_ms": through["latency_us"]["p99"] / 1000.0,
                                 "rate_achieved": through["rate_achieved"], "max_lag_ms": through["max_lag_ms"],
                                 "gateway_cpu_percent": costs["gateway_cpu_percent"],
                                 "client_cpu_percent": through["client_cpu_percent"],
                                 "other_processes_cpu_percent": costs["other_processes_cpu_percent"]})
                    progress(workers, step)
                    return step

                found = search_rates(measure, o.search_bounds_ms, start=o.search_start, ceiling=o.search_ceiling,
                                     budget=o.search_budget, refine=o.search_refine)
                found["gateway_cpus"] = gateway.cores
                out["workers"][str(workers)] = found
            finally:
                if not own:
                    gateway.stop()
        return out

    def _open_loop(self, port: int, request, rate: float) -> dict:
        o = self.o
        spec = OpenLoopSpec(HOST, port, (request.raw(HOST, port),), rate, max(1, round(rate * o.search_seconds)),
                            connections=o.search_connections, warmup=o.search_warmup, max_lag=0.5)
        return run_open_loop(self.pinning, self.workdir, spec)

    def long_streams(self) -> dict:
        """``long_streams`` concurrent agent streams (a few events some hundred ms apart), direct then through one
        keystile worker; the worker's RSS before, at its peak, and after the streams have ended."""
        o = self.o
        scenario = SCENARIOS["messages-stream"]
        nominal = o.long_stream_pauses * o.long_stream_gap
        timeout = max(30.0, 20 * nominal)
        out: dict = {"streams": o.long_streams, "pauses": o.long_stream_pauses, "gap_s": o.long_stream_gap,
                     "nominal_duration_s": nominal}
        overflows = procfs.listen_overflows()
        out["direct"] = self._streams(self.paced.port, scenario.direct(AGENT_UPSTREAM_MODEL), timeout)
        out["direct"]["listen_overflows"] = procfs.listen_overflows() - overflows
        worker = self.gateway.refresh_workers()[0]
        samples: list[tuple[float, float, int]] = []
        stop = threading.Event()
        started = time.perf_counter()

        def sample() -> None:
            last_fds = 0
            while not stop.is_set():
                try:
                    rss = procfs.rss_bytes(worker) / MB
                    if len(samples) % 5 == 0:
                        last_fds = procfs.open_fds(worker)
                except OSError:
                    return
                samples.append((round(time.perf_counter() - started, 2), round(rss, 2), last_fds))
                stop.wait(0.05)

        rss_before = procfs.rss_bytes(worker) / MB
        fds_before = procfs.open_fds(worker)
        overflows = procfs.listen_overflows()
        sampler = threading.Thread(target=sample, name="bench-rss", daemon=True)
        sampler.start()
        try:
            result, costs = self.measured(
                self.gateway, lambda: self._streams(self.gateway.port, scenario.through_gateway(self.key, AGENT_MODEL),
                                                    timeout),
                lambda r: r["completed"])
        finally:
            stop.set()
            sampler.join(5)
        result["listen_overflows"] = procfs.listen_overflows() - overflows
        # Afterwards: does the worker give the memory back? Sampled until it is within the target or time is up.
        settle_started = time.perf_counter()
        after = procfs.rss_bytes(worker) / MB
        settled = [(0.0, round(after, 2))]
        while time.perf_counter() - settle_started < o.long_stream_settle and after > rss_before + RSS_RETURN_MB:
            time.sleep(0.5)
            after = procfs.rss_bytes(worker) / MB
            settled.append((round(time.perf_counter() - settle_started, 1), round(after, 2)))
        out["keystile"] = {**result, **costs}
        out["rss_mb"] = {"before": round(rss_before, 2), "peak": max([rss for _, rss, _ in samples] + [after]),
                         "after": round(after, 2), "after_waited_s": settled[-1][0], "after_samples": settled,
                         "return_allowance_mb": RSS_RETURN_MB}
        out["open_fds"] = {"before": fds_before, "peak": max((fds for _, _, fds in samples), default=0),
                           "after": procfs.open_fds(worker)}
        out["rss_samples_mb"] = [(t, rss) for t, rss, _ in samples[::10]]
        return out

    def _streams(self, port: int, request, timeout: float) -> dict:
        spec = StreamsSpec(HOST, port, request.raw(HOST, port), self.o.long_streams, timeout)
        path = self.workdir / f"longstreams-{port}-{time.monotonic_ns()}.json"
        path.write_text(json.dumps(spec.to_json()))
        cmd = self.pinning.command([sys.executable, "-m", "bench.longstreams", str(path)], self.pinning.clients)
        return run_child(cmd, timeout + 120, "bench.longstreams")

    def ttfb(self) -> dict:
        out = {}
        for name in STREAM_SCENARIOS:
            scenario = SCENARIOS[name]
            direct = streams.time_to_first_byte(self.mock.port, scenario.direct(), self.o.ttfb_streams)
            through = streams.time_to_first_byte(self.gateway.port, scenario.through_gateway(self.key), self.o.ttfb_streams)
            out[name] = {
                "direct": direct,
                "keystile": through,
                "added_ttfb_ms": {q: through["ttfb_ms"][q] - direct["ttfb_ms"][q] for q in ("p50", "p99")},
            }
        return out

    def pacing(self) -> dict:
        out = {}
        for name in STREAM_SCENARIOS:
            scenario = SCENARIOS[name]
            paced_model = PACED_MODELS[scenario.api]
            direct = streams.pacing(self.paced.port, scenario.direct(), self.o.pacing_delay, 1)
            through = streams.pacing(self.gateway.port, scenario.through_gateway(self.key, paced_model),
                                     self.o.pacing_delay, self.o.pacing_streams)
            out[name] = {"direct": direct, "keystile": through}
        return out

    def soak(self) -> dict:
        o = self.o
        requests = tuple(SCENARIOS[name].through_gateway(self.key) for name in THROUGHPUT_SCENARIOS)
        spec = LoadSpec(self.gateway.port, requests, o.soak_connections, o.soak_timeout, o.soak_requests)
        samples: list[tuple[float, float]] = []
        stop = threading.Event()
        started = time.perf_counter()

        def sample() -> None:
            while True:
                try:
                    rss = sum(procfs.rss_bytes(pid) for pid in self.gateway.worker_pids) / MB
                except OSError:
                    rss = 0.0
                samples.append((round(time.perf_counter() - started, 2), round(rss, 2)))
                if stop.wait(o.rss_interval):
                    return

        sampler = threading.Thread(target=sample, name="bench-rss", daemon=True)
        sampler.start()
        try:
            result, costs = self.measure(spec)
        finally:
            stop.set()
            sampler.join(5)
        values = [rss for _, rss in samples]
        middle = values[len(values) // 2] if values else 0.0
        return {
            "requests_target": o.soak_requests,
            "mix": list(THROUGHPUT_SCENARIOS),
            "connections": o.soak_connections,
            "load": result.to_json(),
            "costs": costs,
            "rss_samples_mb": samples,
            "rss_first_mb": values[0] if values else 0.0,
            "rss_last_mb": costs["rss_after_mb"],
            "rss_max_mb": max(values + [costs["rss_after_mb"]]) if values else costs["rss_after_mb"],
            "rss_growth_mb": costs["rss_after_mb"] - (values[0] if values else 0.0),
            "rss_growth_second_half_mb": costs["rss_after_mb"] - middle,
            "completed": result.requests >= o.soak_requests,
        }

    def restarts(self) -> list[float]:
        """Startup time of further ``keystile serve`` launches on the same (now existing) database."""
        times = []
        for i in range(max(0, self.o.startup_runs - 1)):
            gw = Gateway(self.workdir, self.config, self.pinning, self.master_key, self.o.workers, name=f"keystile-restart-{i}")
            times.append(gw.startup_seconds)
            gw.stop()
        return times

    def spend(self) -> dict:
        info = self.gateway.admin("GET", f"/key/info?key={self.key}")["info"]
        return {"key_spend_usd": info.get("spend"), "rpm_limit": info.get("rpm_limit"), "tpm_limit": info.get("tpm_limit"),
                "max_parallel_requests": info.get("max_parallel_requests"), "max_budget": info.get("max_budget")}

    def rss_mb(self) -> float:
        return sum(procfs.rss_bytes(pid) for pid in self.gateway.refresh_workers()) / MB


def added_ms(direct: dict, through: dict) -> dict[str, float]:
    """keystile's percentile minus direct's, each (p50 … max), in ms."""
    return {q: (through[q] - direct[q]) / 1000.0 for q in ADDED_QUANTILES}


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="keystile-bench-"))


def remove_workdir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def pin_self(pinning: Pinning) -> None:
    """This process (the TTFB client) and what it starts unpinned belong on the load cores."""
    if pinning.load:
        try:
            os.sched_setaffinity(0, set(pinning.load))
        except (AttributeError, OSError):
            pass
