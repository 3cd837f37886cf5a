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
    """Sums of the pipeline's counters over the last `minutes`, and the success ratios: one
    GetMetricData request for all of them (a page view used to make one call per metric)."""
    # The end of the current minute: CloudWatch's periods are whole minutes, and the local
    # CloudWatch (moto) leaves out a point stamped within the last instant before EndTime.
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    period = max(60, minutes * 60)
    queries = [
        {
            "Id": f"m{index}",
            "MetricStat": {
                "Metric": {
                    "Namespace": NAMESPACE,
                    "MetricName": metric.name,
                    "Dimensions": (
                        [{"Name": "service", "Value": metric.service}] if metric.service else []
                    ),
                },
                "Period": period,
                "Stat": "Sum",
            },
        }
        for index, metric in enumerate(COUNTED)
    ]
    sums: dict[str, float] = {}
    request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end}
    while True:
        response = cloudwatch.get_metric_data(**request)
        for result in response.get("MetricDataResults", []):
            sums[result["Id"]] = sums.get(result["Id"], 0.0) + sum(result.get("Values", []))
        if not response.get("NextToken"):
            break
        request["NextToken"] = response["NextToken"]
    counts = {metric.name: sums.get(f"m{i}", 0.0) for i, metric in enumerate(COUNTED)}
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
