"""What the kernel says a process costs: CPU time and resident memory from ``/proc``.

Everything the benchmark reports about the gateway's own cost comes from here, read from
outside the process so that measuring does not change what is measured.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of ``pid`` so far (the kernel sums them per process)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name may contain spaces and parentheses; the fields after the last ')' do not.
    fields = raw.rpartition(")")[2].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / CLOCK_TICKS


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """Per thread of ``pid``: (name, utime + stime seconds so far)."""
    out: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw.rpartition(")")[2].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return out


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid``: the memory it actually occupies."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    """Open file descriptors of ``pid`` (its sockets, mostly)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def listen_overflows() -> int:
    """TcpExt ListenOverflows, machine-wide: connections dropped because a listen queue was full
    (the client then retries after a second, which would read as a one-second stall)."""
    try:
        lines = Path("/proc/net/netstat").read_text().splitlines()
    except OSError:
        return 0
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            return int(table.get("ListenOverflows", 0))
    return 0


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def children(pid: int) -> list[int]:
    """Direct child processes of ``pid`` (with several workers, uvicorn's workers are children of its main process)."""
    found: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{task}/children").read_text()
            found.update(int(p) for p in text.split())
        return sorted(found)
    except OSError:
        pass
    for entry in os.listdir("/proc"):  # kernels without CONFIG_PROC_CHILDREN
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.add(int(entry))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@dataclass(frozen=True, slots=True)
class CoreTimes:
    """Busy and total jiffies per CPU (``cpu`` is the whole machine) from /proc/stat."""

    busy: dict[str, int]
    total: dict[str, int]


def core_times() -> CoreTimes:
    busy: dict[str, int] = {}
    total: dict[str, int] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if not line.startswith("cpu"):
            break
        name, *values = line.split()
        numbers = [int(v) for v in values]
        idle = numbers[3] + (numbers[4] if len(numbers) > 4 else 0)  # idle + iowait
        everything = sum(numbers[:8])  # guest time is already inside user
        busy[name] = everything - idle
        total[name] = everything
    return CoreTimes(busy, total)


def reaped_children_cpu() -> float:
    """CPU seconds of every child this process has waited for (how wrk's cost is read)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
