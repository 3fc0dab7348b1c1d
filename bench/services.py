"""The processes under test: the mock upstream(s) and keystile, pinned to their cores.

Pinning on a 2-core machine: keystile (uvicorn's process, its workers if there are several, and all
their threads) on core 0; the load generator, the mock upstream(s) and this process on core 1.
With more cores keystile keeps core 0 and everything else gets the rest; with one core
nothing is pinned. Every process started here dies with the benchmark (SIGTERM, then
SIGKILL; and PR_SET_PDEATHSIG if the benchmark itself is killed).
"""

from __future__ import annotations

import ctypes
import http.client
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench import procfs
from bench.scenarios import (AGENT_MODEL, AGENT_UPSTREAM_MODEL, PACED_MODELS, ROUTED_MODEL, UPSTREAM_ANTHROPIC_MODEL,
                             UPSTREAM_KEY, UPSTREAM_OPENAI_MODEL)

HOST = "127.0.0.1"
KEYSTILE = str(Path(sys.executable).with_name("keystile"))
UVICORN = str(Path(sys.executable).with_name("uvicorn"))
REPO = Path(__file__).resolve().parent.parent


# --- pinning -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pinning:
    gateway: tuple[int, ...] | None
    """keystile's cores: a gateway with W workers gets the first W of them (``gateway_for``)."""
    load: tuple[int, ...] | None
    """The mock upstream(s) and this process."""
    tool: str | None  # "taskset" when pinning is on
    client: tuple[int, ...] | None = None
    """The load generators (wrk, bench.pyload, bench.openloop, bench.longstreams); the load cores
    when there is no core to spare for them alone."""
    all_cpus: tuple[int, ...] = ()

    @property
    def clients(self) -> tuple[int, ...] | None:
        return self.client or self.load

    def gateway_for(self, workers: int) -> tuple[int, ...] | None:
        """Cores for a gateway with ``workers`` workers: its own, or every core when there are too few (shared)."""
        if self.tool is None or not self.gateway:
            return None
        return self.gateway[:workers] if workers <= len(self.gateway) else self.all_cpus

    def describe(self) -> str:
        if self.tool is None:
            return "not pinned"
        client = (f"load generator on CPU {','.join(map(str, self.client))}; mock upstream and benchmark process"
                  if self.client else "load generator, mock upstream and benchmark client")
        return (f"keystile on CPU {','.join(map(str, self.gateway or ()))}; "
                f"{client} on CPU {','.join(map(str, self.load or ()))} (taskset)")

    def command(self, cmd: list[str], cores: tuple[int, ...] | None) -> list[str]:
        if self.tool is None or not cores:
            return cmd
        return [self.tool, "-c", ",".join(map(str, cores)), *cmd]

    def to_json(self) -> dict:
        return {"gateway_cpus": self.gateway, "load_cpus": self.load, "client_cpus": self.client, "tool": self.tool,
                "description": self.describe()}


def plan_pinning(enabled: bool = True, gateway_workers: int = 1) -> Pinning:
    """keystile on the first ``gateway_workers`` cores, the load generator on the next, the mocks on the rest.

    When cores run out the load generator shares the mocks' cores, and keystile keeps at least
    one core to itself (a gateway with more workers than its cores then runs on all of them).
    """
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = list(range(os.cpu_count() or 1))
    taskset = shutil.which("taskset")
    if not enabled or taskset is None or len(cpus) < 2:
        return Pinning(None, None, None)
    reserve = max(1, min(gateway_workers, len(cpus) - 1))
    gateway, rest = tuple(cpus[:reserve]), tuple(cpus[reserve:])
    if len(rest) >= 2:
        return Pinning(gateway, rest[1:], taskset, rest[:1], tuple(cpus))
    return Pinning(gateway, rest, taskset, None, tuple(cpus))


def raise_open_files_limit(wanted: int = 65536) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE (soft up to the hard limit; the hard one too when allowed): every process
    the benchmark starts inherits it — thousands of concurrent streams need a descriptor per
    socket in the client, two in keystile (client side and upstream side), one in the mock."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted, wanted
        except (ValueError, OSError):
            pass
    target = wanted if hard == resource.RLIM_INFINITY else min(max(soft, wanted), hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft, hard
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# --- process plumbing --------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:  # resolved here, not in the forked child
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _prctl = None


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the benchmark dies without cleaning up."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


_started: list[subprocess.Popen] = []


def spawn(cmd: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
            start_new_session=True, preexec_fn=_die_with_parent,
        )
    finally:
        log.close()
    _started.append(proc)
    return proc


def stop_everything() -> None:
    """Last resort on any exit path: stop every process this module started that still runs."""
    while _started:
        proc = _started.pop()
        workers = procfs.children(proc.pid) if proc.poll() is None else []
        stop_process(proc, workers)


def stop_process(proc: subprocess.Popen | None, extra_pids: list[int] = (), timeout: float = 10.0) -> None:
    """SIGTERM, wait, then SIGKILL — this process and the listed helpers (server workers)."""
    if proc is None:
        return
    if proc in _started:
        _started.remove(proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pid in extra_pids:
        if procfs.alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def http_call(port: int, method: str, path: str, body: object = None, headers: dict | None = None,
              timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        payload = orjson.dumps(body) if body is not None else None
        all_headers = {"content-type": "application/json", **(headers or {})}
        conn.request(method, path, body=payload, headers=all_headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- the mock upstream --------------------------------------------------------------------------


class MockUpstream:
    """``python -m keystile.testing.upstream`` in its own process."""

    def __init__(self, workdir: Path, name: str, pinning: Pinning, latency_ms: float = 0.0, coalesce_stream: bool = False):
        self.log_path = workdir / f"{name}.log"
        cmd = [sys.executable, "-m", "keystile.testing.upstream", "--host", HOST, "--port", "0",
               "--latency-ms", str(latency_ms), "--record-limit", "0"]
        if coalesce_stream:
            cmd.append("--coalesce-stream")
        self.proc = spawn(pinning.command(cmd, pinning.load), self.log_path)
        self.url = self._wait_for_url(15.0)
        self.port = int(self.url.rsplit(":", 1)[1])

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
            for line in text.splitlines():
                if line.startswith("listening on "):
                    return line.split("listening on ", 1)[1].strip()
            if self.proc.poll() is not None:
                raise RuntimeError(f"the mock upstream exited with {self.proc.returncode}:\n{text}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"the mock upstream did not start in {timeout:.0f}s")

    def set_faults(self, rules: list[dict]) -> None:
        status, body = http_call(self.port, "POST", "/_mock/faults", rules)
        if status != 200:
            raise RuntimeError(f"the mock refused the fault rules: {status} {body!r}")

    def stop(self) -> None:
        stop_process(self.proc)


# --- keystile ----------------------------------------------------------------------------------


def gateway_config(workdir: Path, upstream_url: str, paced_url: str, master_key: str, max_connections: int = 20_000) -> Path:
    """Real provider deployments on the mock (one per model, plus a three-deployment group), and three on the paced (event_delay) mock."""
    path = workdir / "keystile.yaml"
    path.write_text(textwrap.dedent(f"""\
        # Generated by python -m bench: auth, limits and spend accounting are all on.
        master_key: {master_key}
        database_url: sqlite:///{workdir / 'keystile.db'}
        server:
          # Thousands of concurrent streams (the long-streams phase) must not be turned away.
          max_connections: {max_connections}
        models:
          - name: claude-bench
            provider: anthropic
            model: {UPSTREAM_ANTHROPIC_MODEL}
            api_base: {upstream_url}
            api_key: {UPSTREAM_KEY}
          - name: gpt-bench
            provider: openai
            model: {UPSTREAM_OPENAI_MODEL}
            api_base: {upstream_url}/v1
            api_key: {UPSTREAM_KEY}
          # The routed group: three deployments (weights 1:2:3) of the same upstream model, so the
          # weighted choice, health tracking and per-deployment accounting run on every request.
          - name: {ROUTED_MODEL}
            provider: anthropic
            model: {UPSTREAM_ANTHROPIC_MODEL}
            api_base: {upstream_url}
            api_key: {UPSTREAM_KEY}
            weight: 1
          - name: {ROUTED_MODEL}
            provider: anthropic
            model: {UPSTREAM_ANTHROPIC_MODEL}
            api_base: {upstream_url}
            api_key: {UPSTREAM_KEY}
            weight: 2
          - name: {ROUTED_MODEL}
            provider: anthropic
            model: {UPSTREAM_ANTHROPIC_MODEL}
            api_base: {upstream_url}
            api_key: {UPSTREAM_KEY}
            weight: 3
          - name: {PACED_MODELS['anthropic']}
            provider: anthropic
            model: {UPSTREAM_ANTHROPIC_MODEL}
            api_base: {paced_url}
            api_key: {UPSTREAM_KEY}
          - name: {PACED_MODELS['openai']}
            provider: openai
            model: {UPSTREAM_OPENAI_MODEL}
            api_base: {paced_url}/v1
            api_key: {UPSTREAM_KEY}
          # Long agent streams: the paced mock answers this upstream model with events some
          # hundred milliseconds apart (its own fault rule, matched on the model).
          - name: {AGENT_MODEL}
            provider: anthropic
            model: {AGENT_UPSTREAM_MODEL}
            api_base: {paced_url}
            api_key: {UPSTREAM_KEY}
        """))
    return path


# Generous enough that every check runs and none ever refuses during a benchmark.
BENCH_KEY_LIMITS = {
    "key_alias": "bench",
    "rpm_limit": 1_000_000_000,
    "tpm_limit": 1_000_000_000_000,
    "max_parallel_requests": 1_000_000,
    "max_budget": 1_000_000_000.0,
}


class Gateway:
    """``keystile serve --workers N`` on a free port; remembers how long it took to be ready."""

    def __init__(self, workdir: Path, config: Path, pinning: Pinning, master_key: str, workers: int = 1, name: str = "keystile"):
        self.master_key = master_key
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        env = dict(os.environ)
        for var in ("KEYSTILE_MASTER_KEY", "KEYSTILE_DATABASE_URL", "KEYSTILE_CONFIG", "PROMETHEUS_MULTIPROC_DIR"):
            env.pop(var, None)
        cmd = [KEYSTILE, "serve", "--config", str(config), "--port", str(self.port), "--workers", str(workers)]
        self.workers_expected = workers
        started = time.perf_counter()
        self.cores = pinning.gateway_for(workers)
        self.proc = spawn(pinning.command(cmd, self.cores), self.log_path, env=env, cwd=workdir)
        self.startup_seconds = self._wait_ready(started, 30.0)
        self.worker_pids = self._find_workers(5.0)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, started: float, timeout: float) -> float:
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"keystile exited with {self.proc.returncode}:\n{self.log()}")
            try:
                status, _ = http_call(self.port, "GET", "/health/readiness", timeout=0.5)
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"keystile was not ready after {timeout:.0f}s:\n{self.log()}")

    def _find_workers(self, timeout: float) -> list[int]:
        if self.workers_expected <= 1:  # one worker: the serve process itself serves
            return procfs.children(self.pid) or [self.pid]
        deadline = time.monotonic() + timeout
        while True:
            pids = procfs.children(self.pid)
            if len(pids) >= self.workers_expected or time.monotonic() > deadline:
                return pids or [self.pid]
            time.sleep(0.02)

    def refresh_workers(self) -> list[int]:
        """Workers can be respawned by the server; a benchmark run must measure the live ones."""
        pids = procfs.children(self.pid)
        if pids:
            self.worker_pids = pids
        return self.worker_pids

    def admin(self, method: str, path: str, body: object = None) -> dict:
        status, payload = http_call(self.port, method, path, body, {"authorization": f"Bearer {self.master_key}"})
        if status != 200:
            raise RuntimeError(f"{method} {path} answered {status}: {payload[:500]!r}")
        return orjson.loads(payload)

    def create_key(self, fields: dict) -> str:
        return self.admin("POST", "/key/generate", fields)["key"]

    def scrape(self) -> dict[str, float]:
        """From /metrics: ``keystile_overhead_seconds`` sum and count, and database round trips by kind."""
        status, text = http_call(self.port, "GET", "/metrics")
        found = {"overhead_sum": 0.0, "overhead_count": 0.0, "store_read": 0.0, "store_write": 0.0}
        if status == 200:
            for line in text.decode().splitlines():
                if line.startswith("keystile_overhead_seconds_sum"):
                    found["overhead_sum"] += float(line.split()[-1])
                elif line.startswith("keystile_overhead_seconds_count"):
                    found["overhead_count"] += float(line.split()[-1])
                elif line.startswith("keystile_store_calls_total{"):
                    kind = line.split('kind="', 1)[1].split('"', 1)[0]
                    found[f"store_{kind}"] = found.get(f"store_{kind}", 0.0) + float(line.split()[-1])
        return found

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc, extra_pids=list(self.worker_pids) if hasattr(self, "worker_pids") else [])


class FloorServer:
    """uvicorn serving ``bench.floor_app`` with keystile's server settings, on keystile's cores."""

    def __init__(self, workdir: Path, pinning: Pinning) -> None:
        self.port = free_port()
        self.log_path = workdir / "floor.log"
        cmd = [UVICORN, "--loop", "uvloop", "--http", "httptools", "--host", HOST, "--port", str(self.port),
               "--backlog", "2048", "--no-access-log", "--no-proxy-headers", "--log-level", "warning", "--app-dir", str(REPO),
               "bench.floor_app:app"]
        self.proc = spawn(pinning.command(cmd, pinning.gateway_for(1)), self.log_path, cwd=REPO)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"uvicorn (floor app) exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if http_call(self.port, "GET", "/", timeout=0.5)[0] == 200:
                    break
            except OSError:
                time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError("uvicorn (floor app) did not start in 20 s")
        self.worker_pids = procfs.children(self.pid) or [self.pid]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc, list(self.worker_pids) if hasattr(self, "worker_pids") else [])


def new_master_key() -> str:
    return "sk-ks-bench-" + secrets.token_hex(16)
