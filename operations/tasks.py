"""Celery tasks of the operations portal: each only calls one use case (or job) and reports."""

from __future__ import annotations

from celery import Task, shared_task

from operations import sweepers
from operations.background import run_job
from operations.deadlines import stop_check
from operations.jobs import run_replay_job
from orders_api import metrics


@shared_task(name="operations.replay_dlq", bind=True)
def replay_dlq(self: Task, job_id: str) -> dict[str, object]:
    """Run the DLQ replay job `job_id` (a ReplayJob row); return its counts. Under Lambda it
    stops before the invocation's time runs out and queues its own continuation."""
    return run_replay_job(job_id, should_stop=stop_check(self.request)).as_progress()


@shared_task(name="operations.run_background_job")
def run_background_job(job_id: str) -> dict[str, object]:
    """Run the background job `job_id` (a BackgroundJob row a staff member started)."""
    return run_job(job_id)


@shared_task(name="operations.requeue_stranded_orders")
def requeue_stranded_orders() -> list[str]:
    """Celery beat's safety net: send RESERVED orders without a workflow to the queue again.

    Re-sending is harmless (one workflow per order attempt), so running it every few minutes
    costs a StatusIndex query and one DescribeExecution per reserved order.
    """
    return sweepers.requeue_stranded()


# Each sweeper task takes no arguments and is bounded in work (OPS_SWEEP_MAX_ORDERS orders a run),
# so beat here, or a scheduled event elsewhere, can run it; two at once are safe (every action is a
# conditional write), so a slow run overlapping the next does no harm.


@shared_task(name="operations.sweep_stranded_pending")
def sweep_stranded_pending_orders() -> dict[str, object]:
    """Reserve (or reject) PENDING orders whose stream record never arrived."""
    return sweepers.sweep_pending()


@shared_task(name="operations.sweep_stranded_reserved")
def sweep_stranded_reserved_orders() -> dict[str, object]:
    """Start a new workflow run for RESERVED orders whose run died (or re-send one that never
    started), and release those out of runs: stock back, any charge refunded."""
    return sweepers.sweep_reserved()


@shared_task(name="operations.sweep_stranded_paid")
def sweep_stranded_paid_orders() -> dict[str, object]:
    """Resume shipping of PAID orders whose workflow died after the payment (a new run), and
    flag those out of runs for staff (MANUAL_INTERVENTION)."""
    return sweepers.sweep_paid()


@shared_task(name="operations.refresh_inventory_catalogue")
def refresh_inventory_catalogue() -> dict[str, int]:
    """Celery beat: rebuild the inventory catalogue from the table (the staleness bound for
    writes made outside the portal) and publish how many items are low on stock."""
    from operations.catalogue import catalogue  # imported here: it reads Django's settings

    found = catalogue()
    items = found.refresh()
    low = found.low_stock_count()
    metrics.count(metrics.LOW_STOCK_ITEMS, value=low)
    return {"items": items, "low_stock": low}
