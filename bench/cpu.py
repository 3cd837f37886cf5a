"""CPU time used by a process and its children, read from /proc (Linux), for per-request costs."""

from __future__ import annotations

import os
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def tree_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of `pid` and every living descendant."""
    total = 0.0
    for each in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
        total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def _descendants(pid: int) -> list[int]:
    found, todo = [], _children(pid)
    while todo:
        child = todo.pop()
        found.append(child)
        todo += _children(child)
    return found


def self_cpu_seconds() -> float:
    """This process's own CPU seconds (its threads included)."""
    times = os.times()
    return times.user + times.system
