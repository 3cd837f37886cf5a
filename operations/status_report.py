"""The pipeline's status report, gathered once for the dashboard and `manage.py pipeline_status`.

Parts are read in parallel, so a dead endpoint costs its retries once, not once per part; a
part that fails carries its error and hides nothing else.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from operations import counters, selectors
from operations.kept_reads import kept
from operations.parts import Part, attempt
from pipeline.config import PipelineSettings

DEFAULT_MINUTES = 60
NO_LOCAL_ENDPOINT = "AWS (no local endpoint set)"
# The resources the report names: the setting, and how the dashboard labels it.
RESOURCES: tuple[tuple[str, str], ...] = (
    ("orders_table", "Orders table"),
    ("inventory_table", "Inventory table"),
    ("orders_queue_url", "Orders queue"),
    ("dlq_url", "Dead-letter queue"),
    ("stream_failure_queue_url", "Stream-failure queue"),
    ("state_machine_arn", "State machine"),
)


@dataclass(frozen=True)
class StatusReport:
    """Where the pipeline runs, what it is made of, and how full and healthy it is."""

    region: str
    endpoints: dict[str, str]  # AWS_ENDPOINT_URL*: empty when talking to AWS itself
    resources: dict[str, str | None]  # by setting name (RESOURCES); None: not set
    tables: dict[str, Part]  # "orders", "inventory": {table, items, exact}
    # "orders", "dead_letter", "stream_failures", "webhook_dead_letters": depths
    queues: dict[str, Part]
    alarms: Part  # [{name, state, reason, ...}]
    metrics: Part  # {minutes, counts, ratios}
    status_counts: Part  # [{status, count, capped}]; value None when not counted
    counters: Part  # counters.OrderCounters: kept numbers, not counted per view
    low_stock: Part  # items at or below their threshold (the inventory catalogue)

    def as_json(self) -> dict[str, Any]:
        """The report as one JSON document; a part that failed is {"error": ...}."""
        return {
            "region": self.region,
            "endpoints": self.endpoints or {"all": NO_LOCAL_ENDPOINT},
            "resources": self.resources,
            "tables": {name: part.as_json() for name, part in self.tables.items()},
            "queues": {name: part.as_json() for name, part in self.queues.items()},
            "alarms": self.alarms.as_json(),
            "metrics": self.metrics.as_json(),
            "status_counts": self.status_counts.as_json(),
            "low_stock": self.low_stock.as_json(),
        }


def _kept_estimate(
    table: str | None, read: Callable[..., dict[str, Any]], seconds: float
) -> dict[str, Any]:
    """A table's estimated item count kept for `seconds`, with when it was read ("read_at").

    DynamoDB refreshes the estimate only about every six hours, so keeping it for a minute
    loses nothing; DynamoDB Local instead counts the table on every DescribeTable (about
    300 ms at 100,000 orders), which was most of the dashboard's time.
    """
    if table is None:
        return read(exact=False)  # raises, naming the missing setting
    # One entry per endpoint and table: tests and local stacks share one Redis.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL", "")
    digest = hashlib.sha256(f"{endpoint}|{table}".encode()).hexdigest()[:16]
    found = kept(f"table-count:{digest}", lambda: read(exact=False), seconds=seconds)
    return {**found.value, "read_at": found.read_at}


def status_report(
    *,
    minutes: int,
    exact: bool,
    count_cap: int,
    count_statuses: bool = True,
    keep_estimates_s: float = 0.0,
) -> StatusReport:
    """Every part of the report: metrics over the last `minutes`, table item counts estimated
    (or, with `exact`, scanned), orders per status counted up to about `count_cap` (unless
    `count_statuses` is False: the dashboard reads kept counters instead, whose cost does not
    grow with the table), this stack's alarms only. With `keep_estimates_s` > 0 the estimated
    table counts may come from a report that much older, and say when they were read."""
    settings = PipelineSettings.from_env()

    def table_count(table: str | None, read: Callable[..., dict[str, Any]]) -> Callable[[], Any]:
        if exact or keep_estimates_s <= 0:
            return lambda: read(exact=exact)
        return lambda: _kept_estimate(table, read, keep_estimates_s)

    reads: dict[str, Callable[[], Any]] = {
        "orders_table": table_count(settings.orders_table, selectors.orders_table_count),
        "inventory_table": table_count(settings.inventory_table, selectors.inventory_table_count),
        "orders_queue": selectors.orders_queue_depth,
        "dead_letter_queue": selectors.dlq_depth,
        "stream_failure_queue": selectors.stream_failure_queue_depth,
        "webhook_dead_letter_queue": selectors.webhook_dlq_depth,
        "alarms": counters.stack_alarms,
        "metrics": lambda: selectors.pipeline_metrics(minutes=minutes),
        "counters": counters.order_counters,
        "low_stock": counters.low_stock_count,
    }
    if count_statuses:
        reads["status_counts"] = lambda: selectors.order_counts_by_status(cap=count_cap)
    with ThreadPoolExecutor(max_workers=len(reads), thread_name_prefix="status-report") as pool:
        futures = {name: pool.submit(attempt, read) for name, read in reads.items()}
        parts = {name: future.result() for name, future in futures.items()}
    return StatusReport(
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "(unset)",
        endpoints={k: v for k, v in sorted(os.environ.items()) if k.startswith("AWS_ENDPOINT_URL")},
        resources={name: getattr(settings, name) for name, _ in RESOURCES},
        tables={"orders": parts["orders_table"], "inventory": parts["inventory_table"]},
        queues={
            "orders": parts["orders_queue"],
            "dead_letter": parts["dead_letter_queue"],
            "stream_failures": parts["stream_failure_queue"],
            "webhook_dead_letters": parts["webhook_dead_letter_queue"],
        },
        alarms=parts["alarms"],
        metrics=parts["metrics"],
        status_counts=parts.get("status_counts", Part()),
        counters=parts["counters"],
        low_stock=parts["low_stock"],
    )
