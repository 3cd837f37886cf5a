"""/ops/: the pipeline at a glance, the status report `manage.py pipeline_status` prints."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse

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


@staff_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Tables, queues, alarms, metrics over the chosen window, orders per status."""
    windows = dict(METRIC_WINDOWS)
    try:
        minutes = int(request.GET.get("minutes", DEFAULT_MINUTES))
    except ValueError:
        minutes = DEFAULT_MINUTES
    if minutes not in windows:
        minutes = DEFAULT_MINUTES
    exact = request.GET.get("exact") == "1"
    started = time.monotonic()
    report = status_report(minutes=minutes, exact=exact, count_cap=settings.OPS_STATUS_COUNT_CAP)
    return ops_render(
        request,
        "operations/dashboard.html",
        {
            "region": report.region,
            "endpoints": report.endpoints,
            "resources": {label: report.resources[name] for name, label in RESOURCES},
            "tables": [
                ("Orders", report.tables["orders"]),
                ("Inventory", report.tables["inventory"]),
            ],
            # The third value: messages waiting there need a person (shown in red).
            "queues": [
                ("Orders queue", report.queues["orders"], False),
                ("Dead-letter queue", report.queues["dead_letter"], True),
                ("Stream-failure queue", report.queues["stream_failures"], True),
            ],
            "dead_letter_queue": report.queues["dead_letter"],
            "alarms": report.alarms,
            "metrics": report.metrics,
            "ratio_rows": _ratio_rows(report.metrics.value),
            "status_counts": report.status_counts,
            "minutes": minutes,
            "windows": METRIC_WINDOWS,
            "exact": exact,
            "count_cap": settings.OPS_STATUS_COUNT_CAP,
            "elapsed_ms": int((time.monotonic() - started) * 1000),
        },
        title="Operations dashboard",
    )
