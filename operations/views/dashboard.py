"""/ops/: the pipeline at a glance, what `manage.py pipeline_status` prints, as a page."""

from __future__ import annotations

import time

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from operations.status import DEFAULT_WINDOW, METRIC_WINDOWS, dashboard
from operations.web import ops_render, staff_required


@staff_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    """Tables, queues, alarms, metrics over the chosen window, orders per status."""
    windows = dict(METRIC_WINDOWS)
    try:
        minutes = int(request.GET.get("minutes", DEFAULT_WINDOW))
    except ValueError:
        minutes = DEFAULT_WINDOW
    if minutes not in windows:
        minutes = DEFAULT_WINDOW
    exact = request.GET.get("exact") == "1"
    started = time.monotonic()
    report = dashboard(minutes=minutes, exact=exact, count_cap=settings.OPS_STATUS_COUNT_CAP)
    return ops_render(
        request,
        "operations/dashboard.html",
        {
            **report,
            "tables": [
                ("Orders", report["orders_table"]),
                ("Inventory", report["inventory_table"]),
            ],
            # The third value: messages waiting there need a person (shown in red).
            "queues": [
                ("Orders queue", report["orders_queue"], False),
                ("Dead-letter queue", report["dead_letter_queue"], True),
                ("Stream-failure queue", report["stream_failure_queue"], True),
            ],
            "minutes": minutes,
            "windows": METRIC_WINDOWS,
            "exact": exact,
            "count_cap": settings.OPS_STATUS_COUNT_CAP,
            "elapsed_ms": int((time.monotonic() - started) * 1000),
        },
        title="Operations dashboard",
    )
