"""/ops/ (and the admin's dashboard link): the pipeline at a glance, at a cost fixed by design.

Every number here is a few reads whatever the table size: table sizes from DescribeTable,
queue depths, this stack's alarms, and the order counters CloudWatch keeps (operations/
counters.py), never a count over the orders themselves. The table sizes, an estimate DynamoDB
refreshes every few hours, are kept for OPS_DASHBOARD_TABLE_COUNT_SECONDS and shown with their
age; everything else is read on every view.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from operations.charts import bar_chart, line_chart
from operations.counters import OrderCounters
from operations.parts import Part
from operations.status_report import DEFAULT_MINUTES, RESOURCES, status_report
from operations.web import ops_render, staff_required

# Windows the dashboard offers for the metrics summary, in minutes.
METRIC_WINDOWS: tuple[tuple[int, str], ...] = (
    (15, "15 minutes"),
    (60, "1 hour"),
    (180, "3 hours"),
    (720, "12 hours"),
    (1440, "1 day"),
    (10080, "7 days"),
)


def _ratio_rows(metrics: dict[str, Any] | None) -> list[dict[str, Any]]:
    return [
        {
            "name": name.replace("_", " "),
            "ratio": ratio,
            "percent": None if ratio is None else f"{ratio:.1%}",
        }
        for name, ratio in (metrics or {}).get("ratios", {}).items()
    ]


def _table_rows(parts: dict[str, Part]) -> list[tuple[str, Part, int | None]]:
    """(label, part, seconds since its count was read: None when not kept, read right now)."""
    now = time.time()
    rows = []
    for label, name in (("Orders", "orders"), ("Inventory", "inventory")):
        part = parts[name]
        read_at = part.value.get("read_at") if part.value else None
        age = None if read_at is None else max(0, int(now - read_at))
        rows.append((label, part, age))
    return rows


def _charts(part: Part) -> dict[str, Any]:
    """The two charts and the success rates, or nothing when the counters could not be read."""
    if part.error is not None or part.value is None:
        return {}
    found: OrderCounters = part.value
    return {
        "per_minute_chart": line_chart(found.per_minute, title="Orders per minute, last hour"),
        "per_status_chart": bar_chart(
            list(found.per_status_day.items()), title="Orders entering each status, last day"
        ),
        "rates": [
            (label, None if rate is None else f"{rate:.1%}")
            for label, rate in (
                ("Reservation success", found.reservation_success),
                ("Payment success", found.payment_success),
            )
        ],
        "newest_point": found.newest_point,
        "age_seconds": found.age_seconds,
        "day_total": found.per_status_day.get("PENDING", 0.0),
    }


@staff_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Tables, queues, this stack's alarms, metrics over the chosen window, order charts."""
    windows = dict(METRIC_WINDOWS)
    try:
        minutes = int(request.GET.get("minutes", DEFAULT_MINUTES))
    except ValueError:
        minutes = DEFAULT_MINUTES
    if minutes not in windows:
        minutes = DEFAULT_MINUTES
    exact = request.GET.get("exact") == "1"
    started = time.monotonic()
    report = status_report(
        minutes=minutes,
        exact=exact,
        count_cap=settings.OPS_STATUS_COUNT_CAP,
        count_statuses=False,
        keep_estimates_s=settings.OPS_DASHBOARD_TABLE_COUNT_SECONDS,
    )
    return ops_render(
        request,
        "operations/dashboard.html",
        {
            "region": report.region,
            "endpoints": report.endpoints,
            "resources": {label: report.resources[name] for name, label in RESOURCES},
            "tables": _table_rows(report.tables),
            # The third value: messages waiting there need a person (shown in red).
            "queues": [
                ("Orders queue", report.queues["orders"], False),
                ("Dead-letter queue", report.queues["dead_letter"], True),
                ("Stream-failure queue", report.queues["stream_failures"], True),
                ("Webhook dead-letter queue", report.queues["webhook_dead_letters"], True),
            ],
            "dead_letter_queue": report.queues["dead_letter"],
            "webhook_dead_letters": report.queues["webhook_dead_letters"],
            "alarms": report.alarms,
            "metrics": report.metrics,
            "ratio_rows": _ratio_rows(report.metrics.value),
            "counters": report.counters,
            "low_stock": report.low_stock,
            **_charts(report.counters),
            "minutes": minutes,
            "windows": METRIC_WINDOWS,
            "exact": exact,
            "elapsed_ms": int((time.monotonic() - started) * 1000),
        },
        title="Operations dashboard",
    )
