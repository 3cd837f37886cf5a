"""DLQ replay jobs: queued by the DLQ page, run by a Celery worker through `dlq_replay`."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from operations import selectors
from operations.audit import Action, Outcome, actor_name, record
from operations.models import ReplayJob
from pipeline import wiring
from pipeline.dlq import ReplayResult, dlq_replay

log = logging.getLogger(__name__)

State = ReplayJob.State
# The page polls the row; writing it for every message of a big replay would be wasted work.
PROGRESS_EVERY_S = 0.5


def create_replay_job(
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    reason: str,
    message_ids: list[str] | None = None,
    limit: int | None = None,
) -> ReplayJob:
    """Write the job row and hand it to a worker; a broker that cannot be reached fails the
    job at once (the page says so) instead of leaving it queued forever."""
    from operations.tasks import replay_dlq  # the task module imports this one

    # The task id is chosen here so the row names it before any worker can start the task.
    task_id = str(uuid.uuid4())
    job = ReplayJob.objects.create(
        requested_by=user if user is not None and user.is_authenticated else None,
        actor=actor_name(user),
        reason=reason,
        message_ids=list(message_ids or []),
        limit=limit,
        celery_task_id=task_id,
    )
    try:
        # The queue read from settings at call time, so a test (or a second portal) can route
        # jobs to its own worker.
        replay_dlq.apply_async(
            args=[str(job.pk)], task_id=task_id, queue=settings.CELERY_TASK_DEFAULT_QUEUE
        )
    except Exception as exc:  # broker down: the job can never start, so say it now
        log.exception("could not queue DLQ replay job %s", job.pk)
        _finish_failed(job.pk, f"could not queue the job ({type(exc).__name__}: {exc})")
    job.refresh_from_db()
    return job


def _finish_failed(job_id: Any, error: str) -> None:
    ReplayJob.objects.filter(pk=job_id).update(
        state=State.FAILED, error=error, finished_at=timezone.now()
    )
    job = ReplayJob.objects.get(pk=job_id)
    record(
        user=job.requested_by,
        actor=job.actor,
        action=Action.DLQ_REPLAY,
        outcome=Outcome.FAILED,
        reason=job.reason,
        message=f"Replay failed: {error}",
        detail={"job": str(job.pk), **job.as_progress()},
    )


def run_replay_job(job_id: str) -> ReplayJob:
    """Run a queued job once: claim it, replay, record the summary and the audit entry.

    A task delivered twice finds the job claimed and does nothing, so no replay runs twice.
    """
    claimed = ReplayJob.objects.filter(pk=job_id, state=State.QUEUED).update(
        state=State.RUNNING, started_at=timezone.now()
    )
    job = ReplayJob.objects.get(pk=job_id)
    if not claimed:
        return job
    try:
        dlq = wiring.dead_letter_queue()
        target = wiring.orders_queue()
        try:
            total: int | None = selectors.dlq_depth()["visible"]
        except Exception:  # only the progress bar needs it
            total = None
        ReplayJob.objects.filter(pk=job.pk).update(total=total)
        selected = set(job.message_ids or [])
        last_write = 0.0

        def report(result: ReplayResult) -> None:
            nonlocal last_write
            if time.monotonic() - last_write >= PROGRESS_EVERY_S:
                last_write = time.monotonic()
                ReplayJob.objects.filter(pk=job.pk).update(
                    moved=result.moved, failed=result.failed, skipped=result.skipped
                )

        result = dlq_replay(
            dlq=dlq,
            target=target,
            limit=job.limit,
            accept=(lambda message: message.message_id in selected) if selected else None,
            report=report,
        )
    except Exception as exc:
        log.exception("DLQ replay job %s failed", job.pk)
        _finish_failed(job.pk, f"{type(exc).__name__}: {exc}")
        return ReplayJob.objects.get(pk=job.pk)
    ReplayJob.objects.filter(pk=job.pk).update(
        state=State.SUCCEEDED,
        moved=result.moved,
        failed=result.failed,
        skipped=result.skipped,
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    summary = replay_summary(result)
    record(
        user=job.requested_by,
        actor=job.actor,
        action=Action.DLQ_REPLAY,
        outcome=Outcome.SUCCEEDED if result.failed == 0 else Outcome.FAILED,
        reason=job.reason,
        message=summary,
        detail={
            "job": str(job.pk),
            "moved": result.moved,
            "failed": result.failed,
            "skipped": result.skipped,
            "selected": sorted(selected),
            "limit": job.limit,
        },
    )
    return job


def replay_summary(result: ReplayResult) -> str:
    """One line saying what a replay did."""
    return (
        f"Replay finished: {result.moved} moved, {result.failed} failed, {result.skipped} skipped."
    )
