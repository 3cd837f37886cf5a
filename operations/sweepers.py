"""The safety nets for stranded orders, as the portal runs them: on beat's schedule (or a
scheduled event in AWS) and as background jobs staff start. Each calls a pipeline use case,
counts what it found as metrics and writes what it did to the audit log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings

from operations.audit import Action, Outcome, record
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


def requeue_stranded(
    actor: str = "celery beat",
    *,
    max_orders: int | None = None,
    on_examined: Callable[[int], None] | None = None,
    by_hand: bool = False,
) -> list[str]:
    """Send RESERVED orders without a workflow to the Orders queue again; audit what was sent.

    At most `max_orders` orders are examined (all when None: beat's runs, which come often).
    Run `by_hand` (a staff member asked), the age and re-send limits of the schedule do not
    apply: the person is the one those limits wait for, and re-sending stays harmless.
    """
    requeued = fulfilment_requeue_stranded(
        store=wiring.dynamo_store(),
        workflow=wiring.fulfilment_workflow(),
        queue=wiring.orders_queue(),
        # A message may still be on its way to an order reserved moments ago; an order re-sent
        # three times keeps failing and needs a person (it shows on the ops pages as RESERVED).
        min_age_seconds=0.0 if by_hand else settings.OPS_REQUEUE_STRANDED_MIN_AGE,
        max_requeues=None if by_hand else settings.OPS_REQUEUE_STRANDED_MAX,
        max_orders=max_orders,
        on_examined=on_examined,
    )
    if requeued:
        log.info("re-queued %d stranded reserved order(s): %s", len(requeued), requeued)
        # Only runs that did something are logged: one row every five minutes says nothing.
        record(
            user=None,
            actor=actor,
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


def sweep_pending(actor: str = "celery beat") -> dict[str, object]:
    """Reserve (or reject) PENDING orders whose stream record never arrived."""
    report = sweep_stranded_pending(
        store=wiring.dynamo_store(),
        queue=wiring.orders_queue(),
        min_age_seconds=settings.OPS_SWEEP_PENDING_MIN_AGE,
        max_orders=settings.OPS_SWEEP_MAX_ORDERS,
    )
    # One point per metric a run, its value the number of orders (none when zero).
    if report.found:
        metrics.count(metrics.STRANDED_PENDING_FOUND, value=len(report.found))
    if ids := report.ids(SweepAction.REDRIVEN):
        metrics.count(metrics.STRANDED_PENDING_REDRIVEN, value=len(ids))
    return _audited(report, "sweep_stranded_pending", actor)


def sweep_reserved(actor: str = "celery beat") -> dict[str, object]:
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
    # One point per metric a run, its value the number of orders (none when zero).
    if report.found:
        metrics.count(metrics.STRANDED_RESERVED_FOUND, value=len(report.found))
    if ids := report.ids(SweepAction.REQUEUED):
        metrics.count(metrics.STRANDED_RESERVED_REQUEUED, value=len(ids))
    if ids := report.ids(SweepAction.RESTARTED):
        metrics.count(metrics.STRANDED_RESERVED_RESTARTED, value=len(ids))
    if ids := report.ids(SweepAction.RELEASED):
        metrics.count(metrics.STRANDED_RESERVED_RELEASED, value=len(ids))
    return _audited(report, "sweep_stranded_reserved", actor)


def sweep_paid(actor: str = "celery beat") -> dict[str, object]:
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
    # One point per metric a run, its value the number of orders (none when zero).
    if report.found:
        metrics.count(metrics.STRANDED_PAID_FOUND, value=len(report.found))
    if ids := report.ids(SweepAction.REQUEUED):
        metrics.count(metrics.STRANDED_PAID_REQUEUED, value=len(ids))
    if ids := report.ids(SweepAction.RESUMED):
        metrics.count(metrics.STRANDED_PAID_RESUMED, value=len(ids))
    if ids := report.ids(SweepAction.FLAGGED):
        metrics.count(metrics.STRANDED_PAID_FLAGGED, value=len(ids))
    return _audited(report, "sweep_stranded_paid", actor)


def _audited(report: SweepReport, sweeper: str, actor: str) -> dict[str, object]:
    """Write one audit entry per order the sweeper moved on or failed on; return the report.

    The entries carry the order id, so each shows on its order's page. REQUEUE_STRANDED ("re-queue
    stranded orders") is the action: the sweepers are that safety net grown up, and a new choice
    would need a migration; `actor` and `detail` say which sweeper and what it did.
    """
    actor = f"{actor} ({sweeper})"
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
