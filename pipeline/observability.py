"""Reads the pipeline's own numbers back from CloudWatch: counts, success ratios, alarm states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipeline import metric_names as names

NAMESPACE = names.NAMESPACE


@dataclass(frozen=True)
class CountedMetric:
    """A metric the handlers or the portal emit, and the dimensions they emit it with."""

    name: str
    service: str | None  # Powertools adds a `service` dimension; the portal's metrics have none


# The seed's custom metrics: orders processed, reservation, payment and API outcomes. The
# portal's RateLimiterUnavailable is not one of them and stays out of the summary.
COUNTED = tuple(
    CountedMetric(name, names.SERVICE_OF[name])
    for name in (
        names.ORDERS_PROCESSED,
        names.RESERVATIONS_SUCCEEDED,
        names.RESERVATIONS_REJECTED,
        names.WORKFLOWS_STARTED,
        names.DUPLICATE_DELIVERIES,
        names.PAYMENTS_SUCCEEDED,
        names.PAYMENTS_DECLINED,
        names.PAYMENT_GATEWAY_ERRORS,
        names.STOCK_RELEASES,
        names.ORDERS_SHIPPED,
        names.SHIPMENT_FAILURES,
        names.ORDERS_NEEDING_INTERVENTION,
        names.API_AUTHENTICATION_FAILURES,
        names.API_REQUESTS_THROTTLED,
    )
)


def _ratio(part: float, whole: float) -> float | None:
    return None if whole == 0 else part / whole


def metrics_summary(cloudwatch: Any, *, minutes: int = 60) -> dict[str, Any]:
    """Sums of the pipeline's counters over the last `minutes`, and the success ratios."""
    end = datetime.now(UTC)
    start = end - timedelta(minutes=minutes)
    period = max(60, minutes * 60)
    counts: dict[str, float] = {}
    for metric in COUNTED:
        dimensions = [{"Name": "service", "Value": metric.service}] if metric.service else []
        response = cloudwatch.get_metric_statistics(
            Namespace=NAMESPACE,
            MetricName=metric.name,
            Dimensions=dimensions,
            StartTime=start,
            EndTime=end,
            Period=period,
            Statistics=["Sum"],
        )
        counts[metric.name] = sum(p["Sum"] for p in response.get("Datapoints", []))
    reserved, rejected = counts[names.RESERVATIONS_SUCCEEDED], counts[names.RESERVATIONS_REJECTED]
    paid, declined = counts[names.PAYMENTS_SUCCEEDED], counts[names.PAYMENTS_DECLINED]
    shipped, stuck = counts[names.ORDERS_SHIPPED], counts[names.ORDERS_NEEDING_INTERVENTION]
    return {
        "minutes": minutes,
        "counts": counts,
        "ratios": {
            "reservation_success": _ratio(reserved, reserved + rejected),
            "payment_success": _ratio(paid, paid + declined),
            "shipping_success": _ratio(shipped, shipped + stuck),
            "order_success": _ratio(shipped, counts[names.ORDERS_PROCESSED]),
        },
    }


def alarm_states(cloudwatch: Any, *, prefix: str | None = None) -> list[dict[str, str]]:
    """Every metric alarm (optionally those named with `prefix`): name, state, reason."""
    found = []
    kwargs: dict[str, Any] = {"AlarmTypes": ["MetricAlarm"]}
    if prefix:
        kwargs["AlarmNamePrefix"] = prefix
    for page in cloudwatch.get_paginator("describe_alarms").paginate(**kwargs):
        for alarm in page["MetricAlarms"]:
            found.append(
                {
                    "name": alarm["AlarmName"],
                    "state": alarm.get("StateValue", "INSUFFICIENT_DATA"),
                    "reason": alarm.get("StateReason", ""),
                    "description": alarm.get("AlarmDescription", ""),
                }
            )
    return found
