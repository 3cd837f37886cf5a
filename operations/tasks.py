"""Celery tasks of the operations portal: each only calls one use case (or job) and reports."""

from __future__ import annotations

import logging

from celery import Task, shared_task
from django.conf import settings

from operations.audit import Action, Outcome, record
from operations.deadlines import stop_check
from operations.jobs import run_replay_job
from orders_api import metrics
from pipeline import wiring
from pipeline.fulfilment import fulfilment_requeue_stranded
from pipeline.sweeps import (
    SweepAction,
    SweepReport,
    sweep_stranded_paid,
    sweep_stranded_pending,
    sweep_stranded_reserved,
)

log = logging.getLogger(__name__)


@shared_task(name="operations.replay_dlq", bind=True)
def replay_dlq(self: Task, job_id: str) -> dict[str, object]:
    """Run the DLQ replay job `job_id` (a ReplayJob row); return its counts. Under Lambda it
    stops before the invocation's time runs out and queues its own continuation."""
    return run_replay_job(job_id, should_stop=stop_check(self.request)).as_progress()


@shared_task(name="operations.requeue_stranded_orders")
def requeue_stranded_orders() -> list[str]:
    """Celery beat's safety net: send RESERVED orders without a workflow to the queue again.

    Re-sending is harmless (one workflow per order attempt), so running it every few minutes
    costs a StatusIndex query and one DescribeExecution per reserved order.
    """
    requeued = fulfilment_requeue_stranded(
        store=wiring.dynamo_store(),
        workflow=wiring.fulfilment_workflow(),
        queue=wiring.orders_queue(),
        # A message may still be on its way to an order reserved moments ago; an order re-sent
        # three times keeps failing and needs a person (it shows on the ops pages as RESERVED).
        min_age_seconds=settings.OPS_REQUEUE_STRANDED_MIN_AGE,
        max_requeues=settings.OPS_REQUEUE_STRANDED_MAX,
    )
    if requeued:
        log.info("re-queued %d stranded reserved order(s): %s", len(requeued), requeued)
        # Only runs that did something are logged: one row every five minutes says nothing.
        record(
            user=None,
            actor="celery beat",
            action=Action.REQUEUE_STRANDED,
            outcome=Outcome.SUCCEEDED,
            message=f"Re-queued {len(requeued)} stranded order(s).",
            detail={"order_ids": requeued},
        )
    return requeued


# -- The stranded-order sweepers (pipeline/sweeps.py) ----------------------------------------------
# Each is an ordinary task taking no arguments and bounded in work (OPS_SWEEP_MAX_ORDERS orders a
# run), so beat here, or a scheduled event elsewhere, can run it; two at once are safe (every
# action is a conditional write), so a slow run overlapping the next does no harm.


@shared_task(name="operations.sweep_stranded_pending")
def sweep_stranded_pending_orders() -> dict[str, object]:
    """Reserve (or reject) PENDING orders whose stream record never arrived."""
    report = sweep_stranded_pending(
        store=wiring.dynamo_store(),
        queue=wiring.orders_queue(),
        min_age_seconds=settings.OPS_SWEEP_PENDING_MIN_AGE,
        max_orders=settings.OPS_SWEEP_MAX_ORDERS,
    )
    # metrics.count adds one per call: a run acts on at most OPS_SWEEP_MAX_ORDERS orders.
    for _ in report.found:
        metrics.count(metrics.STRANDED_PENDING_FOUND)
    for _ in report.ids(SweepAction.REDRIVEN):
        metrics.count(metrics.STRANDED_PENDING_REDRIVEN)
    return _audited(report, "sweep_stranded_pending")


@shared_task(name="operations.sweep_stranded_reserved")
def sweep_stranded_reserved_orders() -> dict[str, object]:
    """Start a new workflow run for RESERVED orders whose run died (or re-send one that never
    started), and release those out of runs: stock back, any charge refunded."""
    report = sweep_stranded_reserved(
        store=wiring.dynamo_store(),
        workflow=wiring.fulfilment_workflow(),
        queue=wiring.orders_queue(),
        gateway=wiring.payment_gateway(),
        min_age_seconds=settings.OPS_SWEEP_RESERVED_MIN_AGE,
        max_runs=settings.OPS_SWEEP_MAX_RUNS,
        max_resends=settings.OPS_SWEEP_MAX_RESENDS,
        max_orders=settings.OPS_SWEEP_MAX_ORDERS,
    )
    for _ in report.found:
        metrics.count(metrics.STRANDED_RESERVED_FOUND)
    for _ in report.ids(SweepAction.REQUEUED):
        metrics.count(metrics.STRANDED_RESERVED_REQUEUED)
    for _ in report.ids(SweepAction.RESTARTED):
        metrics.count(metrics.STRANDED_RESERVED_RESTARTED)
    for _ in report.ids(SweepAction.RELEASED):
        metrics.count(metrics.STRANDED_RESERVED_RELEASED)
    return _audited(report, "sweep_stranded_reserved")


@shared_task(name="operations.sweep_stranded_paid")
def sweep_stranded_paid_orders() -> dict[str, object]:
    """Resume shipping of PAID orders whose workflow died after the payment (a new run), and
    flag those out of runs for staff (MANUAL_INTERVENTION)."""
    report = sweep_stranded_paid(
        store=wiring.dynamo_store(),
        workflow=wiring.fulfilment_workflow(),
        queue=wiring.orders_queue(),
        min_age_seconds=settings.OPS_SWEEP_PAID_MIN_AGE,
        max_runs=settings.OPS_SWEEP_MAX_RUNS,
        max_resends=settings.OPS_SWEEP_MAX_RESENDS,
        max_orders=settings.OPS_SWEEP_MAX_ORDERS,
    )
    for _ in report.found:
        metrics.count(metrics.STRANDED_PAID_FOUND)
    for _ in report.ids(SweepAction.REQUEUED):
        metrics.count(metrics.STRANDED_PAID_REQUEUED)
    for _ in report.ids(SweepAction.RESUMED):
        metrics.count(metrics.STRANDED_PAID_RESUMED)
    for _ in report.ids(SweepAction.FLAGGED):
        metrics.count(metrics.STRANDED_PAID_FLAGGED)
    return _audited(report, "sweep_stranded_paid")


def _audited(report: SweepReport, sweeper: str) -> dict[str, object]:
    """Write one audit entry per order the sweeper moved on or failed on; return the report.

    The entries carry the order id, so each shows on its order's page. REQUEUE_STRANDED ("re-queue
    stranded orders") is the action: the sweepers are that safety net grown up, and a new choice
    would need a migration; `actor` and `detail` say which sweeper and what it did.
    """
    actor = f"celery beat ({sweeper})"
    for swept in report.done:
        record(
            user=None,
            actor=actor,
            action=Action.REQUEUE_STRANDED,
            outcome=Outcome.SUCCEEDED,
            order_id=swept.order_id,
            message=swept.message,
            detail={
                "sweeper": sweeper,
                "action": str(swept.action),
                "status": str(swept.status),
                "run": swept.run,
            },
        )
    for order_id, error in report.failed.items():
        record(
            user=None,
            actor=actor,
            action=Action.REQUEUE_STRANDED,
            outcome=Outcome.FAILED,
            order_id=order_id,
            message=f"Could not move the stranded order on: {error}",
            detail={"sweeper": sweeper},
        )
    if report.found or report.failed:
        log.info(
            "%s: found %d stranded %s order(s), moved on %d, failed on %d%s",
            sweeper,
            len(report.found),
            report.status,
            len(report.done),
            len(report.failed),
            " (stopped at the cap: more may wait)" if report.more else "",
        )
    return report.as_json()


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
