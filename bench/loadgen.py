"""A small HTTP load generator: processes of threads, each sending requests for a fixed time."""

from __future__ import annotations

import http.client
import multiprocessing
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

# (method, path, body, headers) for the i-th request of a thread.
RequestFactory = Callable[[int, int], tuple[str, str, bytes | None, dict[str, str]]]


@dataclass
class LoadResult:
    """What a run measured."""

    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0

    @property
    def requests(self) -> int:
        """Requests answered."""
        return sum(self.statuses.values())

    def line(self, label: str) -> str:
        """One line of figures."""
        lat = sorted(self.latencies_ms) or [0.0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return (
            f"{label}: {self.requests / self.seconds:8.1f} req/s  "
            f"p50 {statistics.median(lat):6.1f} ms  p99 {p99:6.1f} ms  "
            f"statuses {dict(sorted(self.statuses.items()))}  errors {self.errors}"
        )


def _thread(port: int, make: RequestFactory, worker: int, until: float, out: LoadResult) -> None:
    i = 0
    while time.monotonic() < until:
        method, path, body, headers = make(worker, i)
        i += 1
        started = time.perf_counter()
        try:
            # A connection per request: gunicorn's sync workers close it after each response.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            conn.close()
        except OSError:
            out.errors += 1
            continue
        out.latencies_ms.append((time.perf_counter() - started) * 1000)
        out.statuses[response.status] += 1


def _process(args: tuple[int, RequestFactory, int, int, float]) -> LoadResult:
    port, make, index, threads, seconds = args
    until = time.monotonic() + seconds
    result = LoadResult(seconds)
    workers = [
        threading.Thread(target=_thread, args=(port, make, index * threads + t, until, result))
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return result


def run_load(
    port: int, make: RequestFactory, *, seconds: float, processes: int = 2, threads: int = 8
) -> LoadResult:
    """Send requests from `processes` x `threads` clients for `seconds`; merge the figures."""
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        parts = pool.map(_process, [(port, make, p, threads, seconds) for p in range(processes)])
    merged = LoadResult(seconds)
    for part in parts:
        merged.latencies_ms += part.latencies_ms
        merged.statuses.update(part.statuses)
        merged.errors += part.errors
    return merged
