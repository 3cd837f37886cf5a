"""CloudWatch embedded-format metrics: one JSON line on stdout per count (a metric under Zappa)."""

from __future__ import annotations

import logging

from django.conf import settings

from pipeline import metric_names

log = logging.getLogger(__name__)

# The portal's metrics, named in pipeline/metric_names.py with the pipeline's.
AUTH_FAILURES = metric_names.API_AUTHENTICATION_FAILURES
RATE_LIMITED = metric_names.API_REQUESTS_THROTTLED
LIMITER_UNAVAILABLE = metric_names.RATE_LIMITER_UNAVAILABLE
KEY_FAILURES_THROTTLED = metric_names.API_KEY_FAILURES_THROTTLED
LOGIN_FAILURES_THROTTLED = metric_names.LOGIN_FAILURES_THROTTLED
# The operations sweepers' counts (operations/tasks.py), one per stranded state and action.
STRANDED_PENDING_FOUND = metric_names.STRANDED_PENDING_FOUND
STRANDED_PENDING_REDRIVEN = metric_names.STRANDED_PENDING_REDRIVEN
STRANDED_RESERVED_FOUND = metric_names.STRANDED_RESERVED_FOUND
STRANDED_RESERVED_REQUEUED = metric_names.STRANDED_RESERVED_REQUEUED
STRANDED_RESERVED_RESTARTED = metric_names.STRANDED_RESERVED_RESTARTED
STRANDED_RESERVED_RELEASED = metric_names.STRANDED_RESERVED_RELEASED
STRANDED_PAID_FOUND = metric_names.STRANDED_PAID_FOUND
STRANDED_PAID_REQUEUED = metric_names.STRANDED_PAID_REQUEUED
STRANDED_PAID_RESUMED = metric_names.STRANDED_PAID_RESUMED
STRANDED_PAID_FLAGGED = metric_names.STRANDED_PAID_FLAGGED
# A level, not a count: the number of low-stock items at the last catalogue refresh.
LOW_STOCK_ITEMS = metric_names.LOW_STOCK_ITEMS


def count(name: str, *, value: float = 1, **metadata: str) -> None:
    """Add `value` (one by default) to the metric `name` (no dimensions, so one alarm covers
    it); `metadata` is written beside it for Logs Insights, not as dimensions (they would split
    the metric)."""
    if not settings.METRICS_ENABLED:
        return
    # Imported here: powertools' metrics module costs ~60 ms to import, paid only on first use.
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    # POWERTOOLS_METRICS_NAMESPACE (settings) may move the portal's metrics; by default they
    # sit beside the functions', where the template's alarms and dashboard look for them.
    namespace = getattr(settings, "METRICS_NAMESPACE", metric_names.NAMESPACE)
    try:
        with single_metric(
            name=name, unit=MetricUnit.Count, value=value, namespace=namespace
        ) as metric:
            for key, value in metadata.items():
                metric.add_metadata(key, value)
    except Exception:
        # A metric must never turn a 403 or 429 into a 500.
        log.exception("could not emit metric %s", name)
