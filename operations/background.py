"""Background jobs (operations.BackgroundJob): start one for staff, run it on a Celery worker.

A kind of job is a function `run(job, progress) -> result` registered with `runs(kind)`; the
worker claims the row, calls it, and writes the result or the error. Every kind is safe to run
twice (its writes are conditional), which is what makes a stale job (its worker died) safe to
start again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from operations.models import BackgroundJob

log = logging.getLogger(__name__)

Progress = Callable[[int, int | None], None]
Runner = Callable[[BackgroundJob, Progress], dict[str, Any]]

_RUNNERS: dict[str, Runner] = {}


class JobRefused(Exception):
    """The job cannot start: one of its kind is still running."""


def runs(kind: str) -> Callable[[Runner], Runner]:
    """Register the function that does the work of jobs of `kind`."""

    def register(runner: Runner) -> Runner:
        _RUNNERS[kind] = runner
        return runner

    return register


def start_job(
    kind: str,
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    reason: str = "",
    params: dict[str, Any] | None = None,
    total: int | None = None,
) -> BackgroundJob:
    """Create a job of `kind` and hand it to the Celery worker; refuse a second unfinished one.

    A job left unfinished by a dead worker (stale) is closed as failed first, so it does not
    block the kind forever.
    """
    _runner(kind)  # an unknown kind is a programming error: fail before writing anything
    _close_stale(kind)
    actor = getattr(user, "get_username", lambda: "system")() or "system"
    try:
        with transaction.atomic():
            job = BackgroundJob.objects.create(
                kind=kind,
                requested_by=user if getattr(user, "pk", None) else None,
                actor=actor,
                reason=reason,
                params=params or {},
                total=total,
                celery_task_id=str(uuid.uuid4()),
            )
    except IntegrityError as exc:  # the one-unfinished-job-per-kind constraint
        label = BackgroundJob.Kind(kind).label
        raise JobRefused(f"{label}: a job of this kind is still running.") from exc
    transaction.on_commit(lambda: _dispatch(job))
    return job


def _close_stale(kind: str) -> None:
    for job in BackgroundJob.objects.filter(kind=kind, state__in=BackgroundJob.UNFINISHED):
        if job.is_stale:
            _finish(job.pk, error="its worker stopped answering (stale); started again")


def _dispatch(job: BackgroundJob) -> None:
    from operations.tasks import run_background_job  # the task module imports this one

    try:
        run_background_job.apply_async(
            args=[str(job.pk)],
            task_id=job.celery_task_id,
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        )
    except Exception as exc:  # broker down: the job can never start, so say it now
        log.exception("could not queue background job %s", job.pk)
        _finish(job.pk, error=f"could not queue the job ({type(exc).__name__}: {exc})")


def run_job(job_id: str) -> dict[str, Any]:
    """Run the job `job_id` on this worker; return its result (empty if it was not runnable)."""
    with transaction.atomic():
        job = BackgroundJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.done:
            return {}
        job.state = BackgroundJob.State.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.runs += 1
        job.save(update_fields=["state", "started_at", "runs", "updated_at"])

    def progress(done: int, total: int | None = None) -> None:
        # Each call is the job's heartbeat as well as its progress bar.
        fields: dict[str, Any] = {"progress": done, "updated_at": timezone.now()}
        if total is not None:
            fields["total"] = total
        BackgroundJob.objects.filter(pk=job.pk).update(**fields)

    try:
        result = _runner(job.kind)(job, progress)
    except Exception as exc:
        log.exception("background job %s (%s) failed", job.pk, job.kind)
        _finish(job.pk, error=f"{type(exc).__name__}: {exc}")
        raise
    _finish(job.pk, result=result)
    return result


def _finish(job_id: Any, *, result: dict[str, Any] | None = None, error: str = "") -> None:
    BackgroundJob.objects.filter(pk=job_id, state__in=BackgroundJob.UNFINISHED).update(
        state=BackgroundJob.State.FAILED if error else BackgroundJob.State.SUCCEEDED,
        result=result or {},
        error=error,
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )


def _runner(kind: str) -> Runner:
    # The kinds' runners live beside the tasks they share code with.
    import operations.job_kinds  # noqa: F401  (registers the runners)

    try:
        return _RUNNERS[kind]
    except KeyError:
        raise ValueError(f"no runner for background jobs of kind {kind!r}") from None
