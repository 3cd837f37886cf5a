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


def aggregate(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries with each series' data points of one second folded into one datum of
    StatisticValues (SampleCount, Sum, Minimum, Maximum), as CloudWatch's agents publish.

    A busy pipeline reports hundreds of points a second, mostly the same few series (each
    invocation's Invocations, Errors and Duration); sent one by one, each was serialised here,
    parsed by moto and then scanned by every later statistics query. Sum, Average, Minimum,
    Maximum and SampleCount come out the same over any period of whole seconds (every period
    here is). A series with one point in its second is sent as it came.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for entry in entries:
        stamp = entry.get("Timestamp")
        second = stamp.replace(microsecond=0) if isinstance(stamp, datetime) else stamp
        dimensions = tuple((d["Name"], d["Value"]) for d in entry.get("Dimensions", ()))
        key = (entry["Namespace"], entry["MetricName"], dimensions, entry.get("Unit"), second)
        groups.setdefault(key, []).append(entry)
    folded = []
    for (namespace, name, dimensions, unit, second), points in groups.items():
        if len(points) == 1 or any("Value" not in p for p in points):
            folded += points
            continue
        values = [float(p["Value"]) for p in points]
        datum: dict[str, Any] = {
            "Namespace": namespace,
            "MetricName": name,
            "Dimensions": [{"Name": n, "Value": v} for n, v in dimensions],
            "StatisticValues": {
                "SampleCount": float(len(values)),
                "Sum": sum(values),
                "Minimum": min(values),
                "Maximum": max(values),
            },
        }
        if second is not None:
            datum["Timestamp"] = second
        if unit is not None:
            datum["Unit"] = unit
        folded.append(datum)
    return folded


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

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until what is queued now has been sent."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.05)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                self._queue.task_done()
                return
            batch = [first]
            ending = False
            while len(batch) < 500:
                try:
                    item = self._queue.get(timeout=0.2)
                except queue.Empty:
                    break
                if item is None:
                    ending = True
                    break
                batch.append(item)
            self._send(batch)
            for _ in range(len(batch) + ending):
                self._queue.task_done()
            if ending:
                return

    def _send(self, batch: list[dict[str, Any]]) -> None:
        by_namespace: dict[str, list[dict[str, Any]]] = {}
        for entry in aggregate(batch):
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


_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


class AlarmEvaluator(threading.Thread):
    """Evaluates the local CloudWatch alarms, which moto stores but never evaluates.

    It publishes the AWS/SQS queue depths AWS would publish, then for each alarm reads its
    metric (or the sum of its metrics, for SUM(METRICS()) expressions) over the alarm's periods
    and sets OK / ALARM / INSUFFICIENT_DATA as CloudWatch would, honouring TreatMissingData.
    """

    def __init__(
        self,
        cloudwatch: Any,
        sqs: Any,
        queue_urls: dict[str, str],
        metrics: MetricsPublisher,
        stop: threading.Event,
        interval: float = 20.0,
    ):
        super().__init__(name="alarms", daemon=True)
        self._cloudwatch = cloudwatch
        self._sqs = sqs
        self._queue_urls = queue_urls
        self._metrics = metrics
        self._stop_event = stop
        self._interval = interval
        self.unsupported: dict[str, str] = {}

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            try:
                self.evaluate_once()
            except Exception as exc:  # alarms must never stop the pipeline
                log.warning("alarm evaluation failed: %s", exc)

    def publish_queue_depths(self) -> None:
        """Put each queue's visible-message count, as SQS does every minute."""
        for url in self._queue_urls.values():
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]
            self._metrics.count(
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                {"QueueName": url.rsplit("/", 1)[-1]},
                float(attributes.get("ApproximateNumberOfMessages", 0)),
            )

    def evaluate_once(self) -> None:
        """One evaluation round over every alarm."""
        self.publish_queue_depths()
        self._metrics.flush()
        paginator = self._cloudwatch.get_paginator("describe_alarms")
        for page in paginator.paginate(AlarmTypes=["MetricAlarm"]):
            for alarm in page["MetricAlarms"]:
                state, reason = self._state_of(alarm)
                if (state, reason) != (alarm.get("StateValue"), alarm.get("StateReason")):
                    self._cloudwatch.set_alarm_state(
                        AlarmName=alarm["AlarmName"], StateValue=state, StateReason=reason
                    )

    def _series(self, metric: dict[str, Any], period: int, stat: str, periods: int) -> list[float]:
        end = datetime.now(UTC)
        start = end.timestamp() - period * periods
        response = self._cloudwatch.get_metric_statistics(
            Namespace=metric["Namespace"],
            MetricName=metric["MetricName"],
            Dimensions=metric.get("Dimensions", []),
            StartTime=datetime.fromtimestamp(start, UTC),
            EndTime=end,
            Period=period,
            Statistics=[stat],
        )
        points = sorted(response.get("Datapoints", []), key=lambda p: p["Timestamp"])
        return [float(p[stat]) for p in points]

    def _state_of(self, alarm: dict[str, Any]) -> tuple[str, str]:
        periods = int(alarm.get("EvaluationPeriods", 1))
        threshold = float(alarm["Threshold"])
        compare = _COMPARE.get(alarm["ComparisonOperator"])
        if compare is None:
            return "INSUFFICIENT_DATA", f"{alarm['ComparisonOperator']} is not evaluated locally"
        if alarm.get("Metrics"):
            values = self._expression_values(alarm, periods)
            if values is None:
                return "INSUFFICIENT_DATA", self.unsupported[alarm["AlarmName"]]
        else:
            values = self._series(
                {k: alarm[k] for k in ("Namespace", "MetricName") if k in alarm}
                | {"Dimensions": alarm.get("Dimensions", [])},
                int(alarm["Period"]),
                alarm.get("Statistic", "Sum"),
                periods,
            )
        values = values[-periods:]
        breaching = [v for v in values if compare(v, threshold)]
        needed = int(alarm.get("DatapointsToAlarm", periods))
        if not values:
            missing = alarm.get("TreatMissingData", "missing")
            state = {"breaching": "ALARM", "notBreaching": "OK"}.get(missing, "INSUFFICIENT_DATA")
            return state, f"no data points (TreatMissingData={missing})"
        if len(breaching) >= needed:
            return (
                "ALARM",
                f"{len(breaching)} of {len(values)} data points breach the threshold "
                f"({alarm['ComparisonOperator']} {threshold:g})",
            )
        return "OK", f"latest value {values[-1]:g}, threshold {threshold:g}"

    def _expression_values(self, alarm: dict[str, Any], periods: int) -> list[float] | None:
        stats = [m for m in alarm["Metrics"] if "MetricStat" in m]
        expressions = [m for m in alarm["Metrics"] if "Expression" in m]
        if (
            len(expressions) != 1
            or expressions[0]["Expression"].replace(" ", "") != "SUM(METRICS())"
        ):
            self.unsupported[alarm["AlarmName"]] = (
                "only SUM(METRICS()) expressions are evaluated locally"
            )
            return None
        total: list[float] = []
        for entry in stats:
            stat = entry["MetricStat"]
            series = self._series(stat["Metric"], int(stat["Period"]), stat["Stat"], periods)
            # Align from the newest point: missing older points count as zero in the sum.
            for i, value in enumerate(reversed(series)):
                if i < len(total):
                    total[-1 - i] += value
                else:
                    total.insert(0, value)
        return total
