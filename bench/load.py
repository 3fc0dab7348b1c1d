"""Load generation: ``wrk`` (Debian's package) with a generated Lua script, or ``bench.pyload``.

Both take the same ``LoadSpec`` and report the same ``LoadResult``: keep-alive connections,
a fixed duration (and optionally a request budget), latency percentiles in microseconds.
The load generator runs in its own process, pinned to the load cores.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench.openloop import OpenLoopSpec
from bench.scenarios import HttpRequest
from bench.services import HOST, REPO, Pinning

RESULT_MARK = "BENCH_RESULT "
LIMIT_MARK = "BENCH_LIMIT_REACHED"


@dataclass(frozen=True, slots=True)
class LoadSpec:
    port: int
    requests: tuple[HttpRequest, ...]  # sent in rotation
    connections: int
    duration: float  # seconds; the upper bound when max_requests is set
    max_requests: int = 0  # 0: run for the whole duration

    def to_json(self) -> dict:
        return {"host": HOST, "port": self.port, "requests": [r.to_json() for r in self.requests],
                "connections": self.connections, "duration": self.duration, "max_requests": self.max_requests}


@dataclass(slots=True)
class LoadResult:
    requests: int
    seconds: float
    latency_us: dict[str, float]  # p50, p75, p90, p99, p99.9, min, mean, max
    errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, timeout, status (non-2xx/3xx)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def ms(self, name: str) -> float:
        return self.latency_us[name] / 1000.0

    def to_json(self) -> dict:
        return {**asdict(self), "rps": self.rps}


class LoadGenerator:
    """Runs one load spec to completion in a pinned child process."""

    name = "?"

    def __init__(self, pinning: Pinning, workdir: Path) -> None:
        self.pinning = pinning
        self.workdir = workdir
        self._runs = 0

    def command(self, spec: LoadSpec) -> list[str]:
        raise NotImplementedError

    def run(self, spec: LoadSpec) -> LoadResult:
        """Run to completion (bounded: killed ``duration + 60`` s after the start) and parse the result line."""
        self._runs += 1
        cmd = self.pinning.command(self.command(spec), self.pinning.clients)
        data = run_child(cmd, spec.duration + 60, self.name, on_line=_stop_wrk_at_limit)
        return LoadResult(data["requests"], data["seconds"], data["latency_us"], data["errors"])


def _stop_wrk_at_limit(line: str, proc: subprocess.Popen) -> None:
    if line.startswith(LIMIT_MARK):
        # wrk cannot end early by itself: its main thread sleeps for -d; SIGINT wakes it,
        # and it then reports as usual.
        proc.send_signal(signal.SIGINT)


def run_child(cmd: list[str], timeout: float, name: str, on_line=None) -> dict:
    """Run a load client to completion (killed after ``timeout`` s) and return its ``BENCH_RESULT`` JSON."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                            cwd=REPO)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            if on_line is not None:
                on_line(line, proc)
            lines.append(line)
        proc.wait()
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in lines:
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    raise RuntimeError(f"{name} failed (exit {proc.returncode}):\n{''.join(lines)[-3000:]}")


def run_open_loop(pinning: Pinning, workdir: Path, spec: OpenLoopSpec) -> dict:
    """``bench.openloop`` in its own process on the load generator's core(s)."""
    path = workdir / f"openloop-{next(_spec_numbers)}.json"
    path.write_text(json.dumps(spec.to_json()))
    cmd = pinning.command([sys.executable, "-m", "bench.openloop", str(path)], pinning.clients)
    return run_child(cmd, spec.warmup + spec.count / spec.rate + spec.max_lag + 60, "bench.openloop")


_spec_numbers = itertools.count(1)


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'


def wrk_script(spec: LoadSpec) -> str:
    """Requests rotate through the spec's list; ``done`` prints one JSON line the runner parses."""
    built = []
    for request in spec.requests:
        headers = ", ".join(f"[{_lua_string(k)}] = {_lua_string(v)}" for k, v in request.headers)
        built.append(f"wrk.format({_lua_string(request.method)}, {_lua_string(request.path)}, "
                     f"{{{headers}}}, {_lua_string(request.body.decode())})")
    lines = ["-- generated by python -m bench", f"local limit = {spec.max_requests}", "local count = 0"]
    if len(spec.requests) == 1:
        # A static request: wrk formats it once and sends the same bytes (its fastest mode).
        request = spec.requests[0]
        lines += [f"wrk.method = {_lua_string(request.method)}", f"wrk.path = {_lua_string(request.path)}",
                  f"wrk.body = {_lua_string(request.body.decode())}"]
        lines += [f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in request.headers]
    else:
        lines += [
            "local reqs = {}",
            "local i = 0",
            "function init(args)",
            *(f"  reqs[{n + 1}] = {b}" for n, b in enumerate(built)),
            "end",
            "function request()",
            "  i = i % #reqs + 1",
            "  return reqs[i]",
            "end",
        ]
    if spec.max_requests:
        lines += [
            "function response(status, headers, body)",
            "  count = count + 1",
            "  if count == limit then",
            "    wrk.thread:stop()",
            f"    io.write('{LIMIT_MARK}\\n')",
            "    io.flush()",
            "  end",
            "end",
        ]
    lines += [
        "function done(summary, latency, requests)",
        "  local e = summary.errors",
        "  local p = function(q) return latency:percentile(q) end",
        f"  io.write(string.format('{RESULT_MARK}" + '{"requests": %d, "seconds": %.6f, '
        '"latency_us": {"p50": %d, "p75": %d, "p90": %d, "p99": %d, "p99.9": %d, "min": %d, "mean": %.1f, "max": %d}, '
        '"errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}}' + "\\n',",
        "    summary.requests, summary.duration / 1e6, p(50), p(75), p(90), p(99), p(99.9),",
        "    latency.min, latency.mean, latency.max, e.connect, e.read, e.write, e.timeout, e.status))",
        "end",
    ]
    return "\n".join(lines) + "\n"


class Wrk(LoadGenerator):
    name = "wrk"

    def __init__(self, pinning: Pinning, workdir: Path, executable: str) -> None:
        super().__init__(pinning, workdir)
        self.executable = executable

    def command(self, spec: LoadSpec) -> list[str]:
        script = self.workdir / f"wrk-{self._runs}.lua"
        script.write_text(wrk_script(spec))
        # One wrk thread: it shares one core with the mock upstream (see services.Pinning).
        duration = max(1, round(spec.duration))
        return [self.executable, "-t1", f"-c{spec.connections}", f"-d{duration}s", "--timeout", "10s",
                "-s", str(script), f"http://{HOST}:{spec.port}{spec.requests[0].path}"]


class PythonLoad(LoadGenerator):
    name = "python (bench.pyload)"

    def command(self, spec: LoadSpec) -> list[str]:
        path = self.workdir / f"pyload-{self._runs}.json"
        path.write_text(json.dumps(spec.to_json()))
        return [sys.executable, "-m", "bench.pyload", str(path)]


def find_wrk(install: bool) -> str | None:
    """wrk on PATH; when missing and allowed (root, Debian), ``apt-get install -y wrk`` (bounded)."""
    found = shutil.which("wrk")
    if found or not install:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return None
    print("wrk is not installed; trying apt-get install -y wrk ...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], env=env, timeout=180,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return shutil.which("wrk")


def wrk_version(executable: str) -> str:
    try:
        out = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "wrk"
    first = (out.stdout or out.stderr).splitlines()
    return " ".join(first[0].split()[:2]) if first else "wrk"


def choose(kind: str, pinning: Pinning, workdir: Path, install: bool) -> LoadGenerator:
    """``kind``: auto (wrk, installing it if possible, else Python), wrk, or python."""
    if kind in ("auto", "wrk"):
        executable = find_wrk(install)
        if executable is not None:
            generator = Wrk(pinning, workdir, executable)
            generator.name = wrk_version(executable)
            return generator
        if kind == "wrk":
            raise SystemExit("bench: wrk is not installed and could not be installed (apt-get install -y wrk)")
        print("bench: wrk is unavailable; using the Python load generator (bench.pyload)", flush=True)
    return PythonLoad(pinning, workdir)
