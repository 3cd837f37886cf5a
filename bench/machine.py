"""The machine a benchmark ran on: cores, memory, CPU model, OS and the versions that matter,
and how busy and how fast it was while each section ran (these machines are shared VMs)."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pipeline.local.emulators import find_java


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _java() -> str:
    java = find_java()
    if not java:
        return "none"
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    return out.splitlines()[0] if out else java


def describe() -> dict[str, Any]:
    """What the report states about the machine."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "calibration_ms_at_start": calibration_ms(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": _java(),
        "versions": {
            name: version(name) for name in ("django", "djangorestframework", "boto3", "moto")
        },
    }


def cpu_ticks() -> dict[str, int]:
    """The machine's CPU time so far, in ticks, from /proc/stat's first line: busy, idle (with
    I/O wait), stolen by the hypervisor for other guests, and the total of every column."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice_, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return {
        "busy": user + nice_ + system + irq + softirq,
        "idle": idle + iowait,
        "steal": steal,
        "total": sum(fields[:8]),
    }


def conditions(before: dict[str, int], after: dict[str, int]) -> dict[str, float]:
    """How busy the cores were between two cpu_ticks() readings, and the share of their time
    the hypervisor gave to other guests (steal): a section run while the host was contended
    measures less than the same code on a quiet host."""
    total = max(1, after["total"] - before["total"])
    return {
        "busy_pct": round(100 * (after["busy"] - before["busy"]) / total, 1),
        "steal_pct": round(100 * (after["steal"] - before["steal"]) / total, 1),
    }


def calibration_ms() -> float:
    """CPU milliseconds this process takes for a fixed piece of Python work: the same on the
    same host, higher when the host runs slower. Two runs' figures compare only as far as
    their calibrations agree."""
    started = time.process_time()
    total = 0
    for n in range(2_000_000):
        total += n % 7
    return round((time.process_time() - started) * 1000, 1)
