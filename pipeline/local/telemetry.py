"""Local observability: function logs to console and files, metrics to the local CloudWatch.

Handlers print CloudWatch embedded-metric (EMF) lines, as in Lambda; here they are turned into
PutMetricData calls, and the runtime adds the metrics AWS itself would publish (AWS/Lambda,
AWS/States, AWS/SQS), so dashboards, alarms and the `status` command read real numbers.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger("pipeline.local.telemetry")


def parse_emf(line: str) -> list[dict[str, Any]]:
    """The PutMetricData entries an EMF log line describes ([] for any other line)."""
    if not line.startswith("{") or '"_aws"' not in line:
        return []
    try:
        doc = json.loads(line)
    except json.JSONDecodeError:
        return []
    meta = doc.get("_aws", {})
    timestamp = datetime.fromtimestamp(meta.get("Timestamp", time.time() * 1000) / 1000, UTC)
    entries = []
    for directive in meta.get("CloudWatchMetrics", []):
        namespace = directive.get("Namespace", "aws-embedded-metrics")
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics", []):
            value = doc.get(metric["Name"])
            values = value if isinstance(value, list) else [value]
            for dims in dimension_sets:
                dimensions = [{"Name": d, "Value": str(doc[d])} for d in dims if d in doc]
                for v in values:
                    if isinstance(v, int | float):
                        entries.append(
                            {
                                "Namespace": namespace,
                                "MetricName": metric["Name"],
                                "Dimensions": dimensions,
                                "Timestamp": timestamp,
                                "Value": float(v),
                                "Unit": metric.get("Unit", "None"),
                            }
                        )
    return entries


class MetricsPublisher:
    """Sends metric data to CloudWatch from a background thread, in batches."""

    def __init__(self, cloudwatch: Any):
        self._cloudwatch = cloudwatch
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="metrics", daemon=True)
        self._thread.start()

    def put(self, entries: Iterable[dict[str, Any]]) -> None:
        """Queue entries of the form {Namespace, MetricName, Dimensions, Value, Unit, ...}."""
        for entry in entries:
            self._queue.put(entry)

    def count(self, namespace: str, name: str, dimensions: dict[str, str], value: float = 1.0,
              unit: str = "Count") -> None:  # fmt: skip
        """Queue one data point."""
        self._queue.put(
            {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()],
                "Timestamp": datetime.now(UTC),
                "Value": value,
                "Unit": unit,
            }
        )

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < 500:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    break
                if item is None:
                    self._send(batch)
                    return
                batch.append(item)
            self._send(batch)

    def _send(self, batch: list[dict[str, Any]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for entry in batch:
            data = {k: v for k, v in entry.items() if k != "Namespace"}
            by_namespace.setdefault(entry["Namespace"], []).append(data)
        for namespace, data in by_namespace.items():
            for start in range(0, len(data), 1000):
                try:
                    self._cloudwatch.put_metric_data(
                        Namespace=namespace, MetricData=data[start : start + 1000]
                    )
                except Exception as exc:  # metrics must never stop the pipeline
                    log.warning("could not publish %d metric(s): %s", len(data), exc)

    def close(self) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=10)


class FunctionLogs:
    """Receives every line a local function prints: files per function, console, metrics."""

    def __init__(
        self,
        log_dir: Path | None,
        metrics: MetricsPublisher | None,
        console: TextIO | None = sys.stdout,
    ):
        self._dir = log_dir
        self._metrics = metrics
        self._console = console
        self._files: dict[str, TextIO] = {}
        self._lock = threading.Lock()
        if log_dir:
            log_dir.mkdir(parents=True, exist_ok=True)

    def __call__(self, function: str, line: str) -> None:
        """Take one line printed by `function`."""
        entries = parse_emf(line)
        if entries and self._metrics:
            self._metrics.put(entries)
        with self._lock:
            if self._dir:
                handle = self._files.get(function)
                if handle is None:
                    handle = (self._dir / f"{function}.log").open("a", encoding="utf-8")
                    self._files[function] = handle
                handle.write(line + "\n")
                handle.flush()
            if self._console and not entries:
                self._console.write(f"[{function}] {line}\n")
                self._console.flush()

    def close(self) -> None:
        """Close the log files."""
        with self._lock:
            for handle in self._files.values():
                handle.close()
            self._files.clear()
