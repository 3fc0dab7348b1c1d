"""The machine a result was measured on, printed and stored with every result."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_mb() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO, capture_output=True, text=True, timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() or "unknown"


def describe(loadgen: str) -> dict:
    return {
        "cpu_model": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_mb": memory_total_mb(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "uvicorn": _package_version("uvicorn"),
        "uvloop": _package_version("uvloop"),
        "keystile": _package_version("keystile"),
        "git": _git_revision(),
        "load_generator": loadgen,
        "load_average": list(os.getloadavg()),
    }


def summary_line(machine: dict) -> str:
    return (
        f"{machine['cpu_model']}, {machine['cpus']} CPUs, {machine['memory_mb']} MB, Linux {machine['kernel']}; "
        f"Python {machine['python']}, uvicorn {machine['uvicorn']}, uvloop {machine['uvloop']}; "
        f"keystile {machine['keystile']} ({machine['git']}); load generator {machine['load_generator']}; "
        f"load average at start {machine['load_average'][0]:.2f}"
    )
