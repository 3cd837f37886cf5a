"""The dashboard's kept numbers: orders per minute and per status, read from the pipeline's metrics.

The handlers already count every order that enters a status (pipeline/metric_names.py); the
dashboard asks CloudWatch for those sums in one GetMetricData call. That costs the same at 100
orders and at 100 million, unlike counting the StatusIndex on every view, and CloudWatch keeps
the numbers for us. The numbers are as fresh as the newest data point, which the page shows.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline import aws
from pipeline import metric_names as names
from pipeline.config import ENV_DASHBOARD, MissingSetting
from pipeline.observability import alarm_states
from pipeline.statuses import OrderStatus

# The metric counted when an order enters each status. PENDING counts the orders the stream
# handed to reservation (every new or resubmitted order); CANCELLED is a staff action, not a
# pipeline metric, so it is not charted here.
STATUS_METRICS: tuple[tuple[OrderStatus, str], ...] = (
    (OrderStatus.PENDING, names.ORDERS_PROCESSED),
    (OrderStatus.RESERVED, names.RESERVATIONS_SUCCEEDED),
    (OrderStatus.REJECTED, names.RESERVATIONS_REJECTED),
    (OrderStatus.PAID, names.PAYMENTS_SUCCEEDED),
    (OrderStatus.PAYMENT_FAILED, names.PAYMENTS_DECLINED),
    (OrderStatus.SHIPPED, names.ORDERS_SHIPPED),
    (OrderStatus.MANUAL_INTERVENTION, names.ORDERS_NEEDING_INTERVENTION),
)
RATE_METRIC = names.ORDERS_PROCESSED
RATE_MINUTES = 60
DAY_HOURS = 24
# The template's dashboard is named "<stack>-operations" (template.yaml, OperationsDashboard).
DASHBOARD_SUFFIX = "-operations"


@dataclass(frozen=True)
class OrderCounters:
    """Orders per minute over the last hour and per status over the last day."""

    per_minute: list[tuple[datetime, float]]  # one point per minute, oldest first, zeros filled
    per_status_day: dict[str, float]  # OrderStatus value -> orders that entered it
    reservation_success: float | None  # reserved / (reserved + rejected), last day
    payment_success: float | None  # paid / (paid + declined), last day
    newest_point: datetime | None  # the newest minute with orders arriving (last hour)
    read_at: datetime

    @property
    def age_seconds(self) -> int | None:
        """How old the newest number is, in seconds (None: no data at all)."""
        if self.newest_point is None:
            return None
        return max(0, int((self.read_at - self.newest_point).total_seconds()))


def _query(query_id: str, metric: str, period: int) -> dict[str, Any]:
    service = names.SERVICE_OF[metric]
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": names.NAMESPACE,
                "MetricName": metric,
                "Dimensions": [{"Name": "service", "Value": service}] if service else [],
            },
            "Period": period,
            "Stat": "Sum",
        },
        "ReturnData": True,
    }


def _ratio(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


def read_counters(cloudwatch: Any, *, now: datetime | None = None) -> OrderCounters:
    """The counters, from one GetMetricData request (paged only if CloudWatch pages it)."""
    read_at = now or datetime.now(UTC)
    # Whole minutes, so the chart's buckets line up with CloudWatch's one-minute periods.
    end = read_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    queries = [_query("rate", RATE_METRIC, 60)]
    queries += [_query(f"s{i}", metric, 3600) for i, (_, metric) in enumerate(STATUS_METRICS)]
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    request: dict[str, Any] = {
        "MetricDataQueries": queries,
        "StartTime": end - timedelta(hours=DAY_HOURS),
        "EndTime": end,
        "ScanBy": "TimestampAscending",
    }
    while True:
        response = cloudwatch.get_metric_data(**request)
        for result in response.get("MetricDataResults", []):
            stamps, values = series.setdefault(result["Id"], ([], []))
            stamps.extend(result.get("Timestamps", []))
            values.extend(result.get("Values", []))
        if not response.get("NextToken"):
            break
        request["NextToken"] = response["NextToken"]

    stamps, values = series.get("rate", ([], []))
    buckets = {end - timedelta(minutes=m): 0.0 for m in range(RATE_MINUTES, 0, -1)}
    for stamp, value in zip(stamps, values, strict=True):
        minute = stamp.astimezone(UTC).replace(second=0, microsecond=0)
        if minute in buckets:
            buckets[minute] += value
    per_status = {
        str(status): sum(series.get(f"s{i}", ([], []))[1])
        for i, (status, _) in enumerate(STATUS_METRICS)
    }
    # Freshness at minute resolution: the newest minute in which orders reached the pipeline
    # (the hourly sums' timestamps are the starts of their hours, too coarse to say it).
    with_data = [minute for minute, value in buckets.items() if value]
    newest = max(with_data) if with_data else None
    reserved, rejected = per_status[OrderStatus.RESERVED], per_status[OrderStatus.REJECTED]
    paid, declined = per_status[OrderStatus.PAID], per_status[OrderStatus.PAYMENT_FAILED]
    return OrderCounters(
        per_minute=sorted(buckets.items()),
        per_status_day=per_status,
        reservation_success=_ratio(reserved, reserved + rejected),
        payment_success=_ratio(paid, paid + declined),
        newest_point=newest,
        read_at=read_at,
    )


def stack_name(environ: dict[str, str] | None = None) -> str | None:
    """This stack's name, from its dashboard's name (CLOUDWATCH_DASHBOARD); None if unknown."""
    dashboard = (os.environ if environ is None else environ).get(ENV_DASHBOARD) or ""
    if not dashboard.endswith(DASHBOARD_SUFFIX) or len(dashboard) == len(DASHBOARD_SUFFIX):
        return None
    return dashboard[: -len(DASHBOARD_SUFFIX)]


def is_stack_alarm(alarm_name: str, stack: str) -> bool:
    """Whether an alarm belongs to `stack`: CloudFormation names an alarm without an AlarmName
    "<stack>-<LogicalId>-<suffix>", the local runtime "<stack>-<LogicalId>", and every alarm
    of template.yaml has a logical id ending in "Alarm". A longer stack name that merely starts
    with this one ("orders-local-2" for "orders-local") does not match."""
    pattern = rf"{re.escape(stack)}-[A-Z][A-Za-z0-9]*Alarm(-[A-Za-z0-9]+)?"
    return re.fullmatch(pattern, alarm_name) is not None


def order_counters() -> OrderCounters:
    """The counters of the stack the environment names."""
    return read_counters(aws.client("cloudwatch"))


def stack_alarms() -> list[dict[str, str]]:
    """This stack's alarms only (name, state, reason), not every alarm in the account."""
    stack = stack_name()
    if stack is None:
        raise MissingSetting(f"{ENV_DASHBOARD} is not set: this stack's alarms are unknown")
    found = alarm_states(aws.client("cloudwatch"), prefix=f"{stack}-")
    return [alarm for alarm in found if is_stack_alarm(alarm["name"], stack)]


def low_stock_count() -> int:
    """Inventory items at or below their low-stock threshold, from the inventory catalogue the
    portal keeps (operations/catalogue.py): no table read per view."""
    from operations import catalogue  # the catalogue imports Django settings: only when asked

    return catalogue.low_stock_count()
