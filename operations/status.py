"""What the dashboard shows, gathered part by part: a part that fails carries its error.

The same parts as `manage.py pipeline_status`, plus the stream-failure queue and order counts
per status. Parts are read in parallel, so a dead endpoint costs its retries once, not per part.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pipeline import aws, wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.config import PipelineSettings
from pipeline.observability import alarm_states, metrics_summary
from pipeline.statuses import OrderStatus

# Windows the dashboard offers for the metrics summary, in minutes.
METRIC_WINDOWS: tuple[tuple[int, str], ...] = (
    (15, "15 minutes"),
    (60, "1 hour"),
    (180, "3 hours"),
    (720, "12 hours"),
    (1440, "1 day"),
    (10080, "7 days"),
)
DEFAULT_WINDOW = 60


@dataclass(frozen=True)
class Part:
    """One part of the dashboard: its value, or the error that kept it from being read."""

    value: Any = None
    error: str | None = None


def attempt(fn: Callable[[], Any]) -> Part:
    """Run `fn`; a failure becomes the part's error instead of an error page."""
    try:
        return Part(value=fn())
    except Exception as exc:  # a status page shows every failure instead of stopping
        return Part(error=f"{type(exc).__name__}: {exc}")


def status_counts(store: DynamoStore, *, cap: int) -> list[dict[str, Any]]:
    """Orders per status through the StatusIndex, each count stopping near `cap`."""
    rows = []
    for status in OrderStatus:
        count, capped = store.orders_count_by_status(status, cap=cap)
        rows.append({"status": str(status), "count": count, "capped": capped})
    return rows


def _ratios(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": name.replace("_", " "),
            "ratio": ratio,
            "percent": None if ratio is None else f"{ratio:.1%}",
        }
        for name, ratio in summary["ratios"].items()
    ]


def dashboard(*, minutes: int, exact: bool, count_cap: int) -> dict[str, Any]:
    """Every part of the dashboard; each is a Part, so one failure hides nothing else."""
    settings = PipelineSettings.from_env()

    def store() -> DynamoStore:
        return wiring.dynamo_store(settings)

    def metrics() -> dict[str, Any]:
        summary = metrics_summary(aws.client("cloudwatch"), minutes=minutes)
        return {**summary, "ratio_rows": _ratios(summary)}

    jobs: dict[str, Callable[[], Any]] = {
        "orders_table": lambda: store().table_item_count(store().orders_table, exact=exact),
        "inventory_table": lambda: store().table_item_count(store().inventory_table, exact=exact),
        "orders_queue": lambda: wiring.orders_queue(settings).depth(),
        "dead_letter_queue": lambda: wiring.dead_letter_queue(settings).depth(),
        "stream_failure_queue": lambda: wiring.stream_failure_queue(settings).depth(),
        "alarms": lambda: alarm_states(aws.client("cloudwatch")),
        "metrics": metrics,
        "status_counts": lambda: status_counts(store(), cap=count_cap),
    }
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="ops-dashboard") as pool:
        futures = {name: pool.submit(attempt, job) for name, job in jobs.items()}
        parts = {name: future.result() for name, future in futures.items()}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "(unset)"
    endpoints = {k: v for k, v in sorted(os.environ.items()) if k.startswith("AWS_ENDPOINT_URL")}
    return {
        "region": region,
        "endpoints": endpoints,
        "resources": {
            "Orders table": settings.orders_table,
            "Inventory table": settings.inventory_table,
            "Orders queue": settings.orders_queue_url,
            "Dead-letter queue": settings.dlq_url,
            "Stream-failure queue": settings.stream_failure_queue_url,
            "State machine": settings.state_machine_arn,
        },
        **parts,
    }
