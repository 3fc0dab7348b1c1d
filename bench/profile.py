"""Where keystile's CPU goes under load: ``py-spy record`` on the worker, summarised by function.

py-spy samples the worker from outside (ptrace), writes a speedscope profile (open it at
https://www.speedscope.app) and the same stacks in collapsed form (flamegraph.pl, or
speedscope again). The summary ranks functions by self time — the samples in which the
function itself was running — and keystile's own functions by total time.
"""

from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
from pathlib import Path

NO_PYTHON_FRAME = "(no Python frame: a native thread)"


def find_py_spy(install: bool) -> str | None:
    """py-spy next to this interpreter or on PATH; else ``pip install py-spy`` into the venv (a dev tool)."""
    candidates = [Path(sys.executable).with_name("py-spy"), shutil.which("py-spy")]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return str(candidate)
    if not install:
        return None
    print("py-spy is not installed; installing it into the virtualenv (pip install py-spy) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    path = Path(sys.executable).with_name("py-spy")
    return str(path) if path.exists() else shutil.which("py-spy")


def record(py_spy: str, pid: int, seconds: int, rate: int, output: Path, extra: list[str] = ()) -> subprocess.Popen:
    """Start recording ``pid`` for ``seconds`` into a speedscope file; the caller waits."""
    cmd = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(rate),
           "--format", "speedscope", "--output", str(output), "--function", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _frame_name(frame: dict) -> str:
    name = frame.get("name") or "?"
    file = frame.get("file") or ""
    if "site-packages/" in file:
        file = file.split("site-packages/", 1)[1]
    elif "/keystile/" in file:
        file = "keystile/" + file.rsplit("/keystile/", 1)[1]
    elif "/lib/python3" in file:
        file = file.rsplit("/", 1)[-1]
    line = frame.get("line")
    return f"{name} ({file}:{line})" if file else name


def load_stacks(speedscope: Path) -> list[tuple[tuple[str, ...], float]]:
    """(root-first stack of frame names, weight) for every sample of every thread."""
    data = json.loads(speedscope.read_text())
    frames = [_frame_name(f) for f in data["shared"]["frames"]]
    stacks: list[tuple[tuple[str, ...], float]] = []
    for profile in data["profiles"]:
        weights = profile.get("weights") or [1] * len(profile["samples"])
        for sample, weight in zip(profile["samples"], weights):
            stacks.append((tuple(frames[i] for i in sample), float(weight)))
    return stacks


def write_collapsed(stacks: list[tuple[tuple[str, ...], float]], path: Path) -> None:
    """One ``stack count`` line per distinct stack; counts are microseconds of samples (py-spy's
    speedscope weights are seconds, and collapsed tools want integers)."""
    merged: collections.Counter = collections.Counter()
    for stack, weight in stacks:
        merged[";".join(stack) or NO_PYTHON_FRAME] += weight
    path.write_text("".join(f"{stack} {round(weight * 1_000_000)}\n" for stack, weight in merged.most_common()))


def summarise(stacks: list[tuple[tuple[str, ...], float]], top: int = 25) -> dict:
    """Self time by function (anything), total time by function (keystile's own frames only)."""
    total = sum(w for _, w in stacks) or 1.0
    own: collections.Counter = collections.Counter()
    inclusive: collections.Counter = collections.Counter()
    by_file: collections.Counter = collections.Counter()
    for stack, weight in stacks:
        leaf = stack[-1] if stack else NO_PYTHON_FRAME
        own[leaf] += weight
        file = leaf.rsplit("(", 1)[-1].split(":", 1)[0] if stack else "native"
        by_file[file] += weight
        for name in set(stack):
            if "keystile/" in name:
                inclusive[name] += weight

    def rank(counter: collections.Counter) -> list[dict]:
        return [{"function": name, "percent": round(100.0 * weight / total, 2), "samples": int(weight)}
                for name, weight in counter.most_common(top)]

    return {"samples": len(stacks), "self": rank(own), "total_keystile": rank(inclusive), "self_by_file": rank(by_file)}


def print_summary(summary: dict, py_spy_args: str, top: int = 25) -> None:
    view = "samples holding the GIL" if "--gil" in py_spy_args else "samples of non-idle threads"
    print(f"\nTop functions by self time ({summary['samples']} {view}, keystile worker, all threads; py-spy {py_spy_args}):")
    print("  (self time of uvicorn's run/serve frames is the event loop's own native code: uvloop, httptools)")
    for row in summary["self"][:top]:
        print(f"  {row['percent']:5.1f}%  {row['function']}")
    print("\nSelf time by file:")
    for row in summary["self_by_file"][:15]:
        print(f"  {row['percent']:5.1f}%  {row['function']}")
    print("\nkeystile functions by total time (self + callees):")
    for row in summary["total_keystile"][:20]:
        print(f"  {row['percent']:5.1f}%  {row['function']}")
