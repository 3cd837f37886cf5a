"""Celery tasks of the operations portal: each only calls one use case (or job) and reports."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from operations.audit import Action, Outcome, record
from operations.jobs import run_replay_job
from pipeline import wiring
from pipeline.fulfilment import fulfilment_requeue_stranded

log = logging.getLogger(__name__)


@shared_task(name="operations.replay_dlq")
def replay_dlq(job_id: str) -> dict[str, object]:
    """Run the DLQ replay job `job_id` (a ReplayJob row); return its final counts."""
    return run_replay_job(job_id).as_progress()


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
