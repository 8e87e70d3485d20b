"""CPU seconds from /proc, shared by the benchmarks and the chaos harness (Linux only)."""

from __future__ import annotations

import os
from pathlib import Path


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process (all its threads); 0 if unknown or gone."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def machine_wait_seconds() -> tuple[float, float]:
    """(iowait, steal) seconds of the whole machine since boot (all cores), from /proc/stat.

    iowait: idle with disk I/O outstanding (the broker's quorum queues write to disk); steal:
    time the hypervisor gave to other guests. Either makes latency figures noisy.
    """
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    tick = os.sysconf("SC_CLK_TCK")
    return values[4] / tick, values[7] / tick


def tree_cpu_seconds(pid: int | None) -> float:
    """CPU seconds of a process and its live children (e.g. the worker's classifier child)."""
    if pid is None:
        return 0.0
    total = process_cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += tree_cpu_seconds(int(entry.name))
    return total
