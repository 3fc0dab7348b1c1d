"""The benchmark's phases, in order, against one mock upstream and one keystile.

    start: mock upstream, paced mock, keystile (startup time), a virtual key with limits
    load:  per scenario and connection count, direct to the mock then through keystile
    ttfb:  sequential streams, direct then through keystile
    pacing: streams from an upstream that waits between events
    soak:  many requests through keystile while its RSS is sampled
    restarts: more startup-time samples
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench import procfs, streams
from bench.load import LoadGenerator, LoadResult, LoadSpec
from bench.scenarios import PACED_MODELS, ROUTED_MODEL, SCENARIOS, STREAM_SCENARIOS
from bench.services import BENCH_KEY_LIMITS, FloorServer, Gateway, MockUpstream, Pinning, gateway_config, new_master_key

MB = 1024 * 1024


@dataclass
class Options:
    mode: str = "full"  # full | quick | smoke | profile
    duration: float = 5.0
    warmup: float = 1.0
    connections: tuple[int, ...] = (1, 64)
    scenarios: tuple[str, ...] = ("messages", "messages-stream", "chat")
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
        self.paced.set_faults([{"action": {"type": "event_delay", "seconds": o.pacing_delay}}])
        self.config = gateway_config(self.workdir, self.mock.url, self.paced.url, self.master_key)
        self.gateway = Gateway(self.workdir, self.config, self.pinning, self.master_key, o.workers)
        self.key = self.gateway.create_key(BENCH_KEY_LIMITS)
        self._check_answers()
        if o.floor and "messages" in o.scenarios:
            self.floor = FloorServer(self.workdir, self.pinning)
        return {"seconds": self.gateway.startup_seconds, "fresh_database": True}

    def stop(self) -> None:
        for service in (self.floor, self.gateway, self.mock, self.paced):
            if service is not None:
                service.stop()

    def _check_answers(self) -> None:
        """One request of each kind, both ways, must succeed before anything is timed."""
        for scenario in {**SCENARIOS, **STREAM_SCENARIOS}.values():
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
        server = server or self.gateway
        quiet = self.wait_until_quiet()
        before = self._snapshot(server)
        result = self.loadgen.run(spec)
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
        n = max(result.requests, 1)
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
            "gateway_core_busy_percent": core_busy(self.pinning.gateway),
            "load_core_busy_percent": core_busy(self.pinning.load),
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

    def ttfb(self) -> dict:
        out = {}
        for name, scenario in STREAM_SCENARIOS.items():
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
        for name, scenario in STREAM_SCENARIOS.items():
            paced_model = PACED_MODELS[scenario.api]
            direct = streams.pacing(self.paced.port, scenario.direct(), self.o.pacing_delay, 1)
            through = streams.pacing(self.gateway.port, scenario.through_gateway(self.key, paced_model),
                                     self.o.pacing_delay, self.o.pacing_streams)
            out[name] = {"direct": direct, "keystile": through}
        return out

    def soak(self) -> dict:
        o = self.o
        requests = tuple(SCENARIOS[name].through_gateway(self.key) for name in SCENARIOS)
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
            "mix": list(SCENARIOS),
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
