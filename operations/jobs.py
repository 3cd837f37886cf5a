"""DLQ replay jobs: queued by the DLQ pages, a key's webhooks page (its dead-lettered
deliveries) or `manage.py replay_dlq`, run by a Celery worker.

A job's life: QUEUED (its task sent) -> RUNNING (a worker claimed it with a new lease) ->
SUCCEEDED, or CANCELLED (staff asked: the worker stops between batches, CANCELLING meanwhile),
or FAILED (an error; the job may be resumed). A RUNNING job whose row has not been written for
OPS_REPLAY_STALE_SECONDS is stale: its worker died or hangs, and staff may resume it (QUEUED
again, a new task) or cancel it. A resumed run goes on from the job's ledger, so the counts
stay exact and nothing that was sent is sent again (see pipeline/dlq.py). One unfinished job
per queue at a time: two would hide messages from each other.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from operations import selectors
from operations.audit import Action, Outcome, actor_name, record
from operations.models import ReplayJob, ReplayJobMessage
from pipeline import wiring
from pipeline.adapters.streams import StreamRecords
from pipeline.dlq import (
    MAX_RATE,
    Checkpoint,
    MessageOutcome,
    ReplayResult,
    Scope,
    dlq_replay,
    stream_failures_replay,
)
from pipeline.webhooks_flow import dead_letters_replay

log = logging.getLogger(__name__)

State = ReplayJob.State
Queue = ReplayJob.Queue
COUNTS = ("sent", "skipped", "left", "failed", "passed")
MIN_RATE = 0.1
FILTERS = ("order_id", "min_age_seconds", "max_age_seconds", "min_receives", "max_receives")
# A webhook DLQ job's scope: one key's deliveries (client_id, required), or one endpoint's.
WEBHOOK_FILTERS = ("client_id", "subscription_id")


class JobRefused(Exception):
    """A job cannot be started, resumed or cancelled now; the message says why."""


def _refuse_duplicate(queue: str) -> JobRefused:
    other = selectors.unfinished_replay_job(queue)
    state = other.get_state_display() if other else "unfinished"
    return JobRefused(
        f"Another replay of this queue is {state}: wait for it to finish, or cancel it."
    )


def create_replay_job(
    *,
    user: AbstractBaseUser | AnonymousUser | None,
    reason: str,
    queue: str = Queue.ORDERS_DLQ,
    message_ids: Sequence[str] | None = None,
    limit: int | None = None,
    rate: float | None = None,
    filters: Mapping[str, Any] | None = None,
    actor: str | None = None,
    dispatch: bool = True,
) -> ReplayJob:
    """Write the job row and (with `dispatch`) hand it to a worker. JobRefused if another job
    of the queue is unfinished. A broker that cannot be reached fails the job at once (the
    page says so) instead of leaving it queued forever."""
    rate = settings.OPS_REPLAY_RATE if rate is None else float(rate)
    # Below MIN_RATE one message's wait for its token nears the stale timeout: the job's row
    # is written between batches, so a slower job would look dead while it waits.
    if not MIN_RATE <= rate <= MAX_RATE:
        raise JobRefused(f"The rate must be {MIN_RATE:g} to {MAX_RATE:g} messages a second.")
    webhooks = queue == Queue.WEBHOOK_DLQ
    unknown = set(filters or {}) - set(FILTERS + WEBHOOK_FILTERS if webhooks else FILTERS)
    if unknown:
        raise ValueError(f"unknown filters: {sorted(unknown)}")
    if webhooks and not (filters or {}).get("client_id"):
        # Without it the job would move every key's dead letters, which no page offers.
        raise ValueError("a replay of the webhook DLQ needs the filter client_id")
    try:
        with transaction.atomic():
            job = ReplayJob.objects.create(
                requested_by=user if user is not None and user.is_authenticated else None,
                actor=actor or actor_name(user),
                reason=reason,
                queue=queue,
                message_ids=list(message_ids or []),
                filters={k: v for k, v in (filters or {}).items() if v not in (None, "")},
                limit=limit,
                rate=rate,
                # The task id is chosen here so the row names it before a worker can start it.
                celery_task_id=str(uuid.uuid4()) if dispatch else "",
            )
    except IntegrityError as exc:  # the one-unfinished-job-per-queue constraint
        raise _refuse_duplicate(queue) from exc
    if dispatch:
        _dispatch(job)
        job.refresh_from_db()
    return job


def _dispatch(job: ReplayJob) -> None:
    from operations.tasks import replay_dlq  # the task module imports this one

    try:
        # The queue read from settings at call time, so a test (or a second portal) can route
        # jobs to its own worker.
        replay_dlq.apply_async(
            args=[str(job.pk)],
            task_id=job.celery_task_id,
            queue=settings.CELERY_TASK_DEFAULT_QUEUE,
        )
    except Exception as exc:  # broker down: the job can never start, so say it now
        log.exception("could not queue DLQ replay job %s", job.pk)
        _finish_failed(job.pk, f"could not queue the job ({type(exc).__name__}: {exc})")


def _finish_failed(job_id: Any, error: str, *, lease: str | None = None) -> None:
    matching = ReplayJob.objects.filter(pk=job_id)
    if lease is not None:
        matching = matching.filter(lease=lease)
    if not matching.update(state=State.FAILED, error=error, finished_at=timezone.now()):
        return  # another run owns the job now: its outcome is that run's to write
    job = ReplayJob.objects.get(pk=job_id)
    record(
        user=job.requested_by,
        actor=job.actor,
        action=Action.DLQ_REPLAY,
        outcome=Outcome.FAILED,
        reason=job.reason,
        message=f"Replay failed: {error}",
        detail={"job": str(job.pk), **job.as_progress()},
        obj=job,
        before={"visible": job.total},
        after=_counts(job),
    )


class JobLedger:
    """A job's ledger (ReplayJobMessage rows) and heartbeat, for `replay_queue`.

    Every checkpoint locks the job's row, applies the batch's outcomes (a message's latest
    replaces its earlier one, and the counts move with it), and writes the row: `updated_at`
    is the heartbeat, `hidden_until` how long the messages received so far may stay hidden.
    It answers "go on" only while the job is RUNNING under this run's lease: CANCELLING stops
    the run (and it finishes as CANCELLED), a lease taken over stops it quietly. Outcomes are
    recorded whoever owns the job, since their messages were sent or deleted either way.
    """

    def __init__(
        self,
        job_id: Any,
        lease: str,
        *,
        hide_for: float,
        on_record: Callable[[Sequence[MessageOutcome], ReplayJob], None] | None = None,
    ):
        self.job_id = job_id
        self.lease = lease
        self.hide_for = hide_for
        self.on_record = on_record
        self.stopped_by: str | None = None  # "cancel" or "lease" once told to stop

    def outcomes(self, message_ids: Sequence[str]) -> Mapping[str, str]:
        """The outcome recorded for each of these ids that has one."""
        rows = ReplayJobMessage.objects.filter(job_id=self.job_id, message_id__in=message_ids)
        return dict(rows.values_list("message_id", "outcome"))

    def record(self, outcomes: Sequence[MessageOutcome]) -> Checkpoint:
        """Apply the outcomes and write the heartbeat; say whether to go on."""
        now = timezone.now()
        latest = {o.message_id: o for o in outcomes}
        with transaction.atomic():
            job = ReplayJob.objects.select_for_update().get(pk=self.job_id)
            delta: Counter[str] = Counter()
            if latest:
                existing = {
                    row.message_id: row
                    for row in ReplayJobMessage.objects.filter(job=job, message_id__in=latest)
                }
                new_rows, changed = [], []
                for outcome in latest.values():
                    row = existing.get(outcome.message_id)
                    if row is None:
                        delta[outcome.outcome] += 1
                        new_rows.append(_row(job, outcome, now))
                        continue
                    if row.outcome != outcome.outcome:
                        delta[row.outcome] -= 1
                        delta[outcome.outcome] += 1
                    row.outcome, row.reason = outcome.outcome, outcome.reason
                    row.order_id = outcome.order_id or row.order_id
                    row.body = outcome.body or row.body
                    row.detail, row.at = dict(outcome.detail), now
                    changed.append(row)
                ReplayJobMessage.objects.bulk_create(new_rows)
                ReplayJobMessage.objects.bulk_update(
                    changed, ["outcome", "reason", "order_id", "body", "detail", "at"]
                )
            for name, change in delta.items():
                setattr(job, name, getattr(job, name) + change)
            ours = job.lease == self.lease and job.state in (State.RUNNING, State.CANCELLING)
            fields = [*COUNTS, "updated_at"]
            if ours:
                job.hidden_until = now + timedelta(seconds=self.hide_for)
                fields.append("hidden_until")
            job.save(update_fields=fields)
        if not ours:
            self.stopped_by = "lease"
        elif job.state == State.CANCELLING:
            self.stopped_by = "cancel"
        if self.on_record is not None:
            self.on_record(list(latest.values()), job)
        totals = {name: getattr(job, name) for name in COUNTS}
        return Checkpoint(totals, proceed=ours and job.state == State.RUNNING)


def _row(job: ReplayJob, outcome: MessageOutcome, now: Any) -> ReplayJobMessage:
    return ReplayJobMessage(
        job=job,
        message_id=outcome.message_id,
        outcome=outcome.outcome,
        reason=outcome.reason,
        order_id=outcome.order_id or "",
        body=outcome.body,
        detail=dict(outcome.detail),
        at=now,
    )


def _scope(job: ReplayJob) -> Scope:
    filters = job.filters or {}
    return Scope(
        message_ids=frozenset(job.message_ids or []),
        order_id=filters.get("order_id") or None,
        min_age_seconds=filters.get("min_age_seconds"),
        max_age_seconds=filters.get("max_age_seconds"),
        min_receives=filters.get("min_receives"),
        max_receives=filters.get("max_receives"),
    )


def _settle_seconds(job: ReplayJob) -> float:
    """How long messages that earlier runs of this queue's jobs received may still be hidden:
    a run waits that long for them before it believes the queue is done."""
    latest = ReplayJob.objects.filter(queue=job.queue).aggregate(until=Max("hidden_until"))
    until = latest["until"]
    return max(0.0, (until - timezone.now()).total_seconds()) if until else 0.0


def _replay(
    job: ReplayJob, ledger: JobLedger, should_stop: Callable[[], bool] | None
) -> ReplayResult:
    options: dict[str, Any] = {
        "should_stop": should_stop,
        "ledger": ledger,
        "scope": _scope(job),
        "limit": job.limit,
        "rate": job.rate,
        "visibility": settings.OPS_REPLAY_VISIBILITY,
        "wait_seconds": settings.OPS_REPLAY_WAIT_SECONDS,
        "settle_seconds": _settle_seconds(job),
    }
    if job.is_webhooks:
        return dead_letters_replay(
            dlq=wiring.webhook_dead_letter_queue(),
            queue=wiring.webhook_deliveries_queue(),
            client_id=job.filters["client_id"],
            subscription_id=job.filters.get("subscription_id") or None,
            **options,
        )
    if job.is_stream_failures:
        return stream_failures_replay(
            queue=wiring.stream_failure_queue(),
            streams=StreamRecords(),
            store=wiring.dynamo_store(),
            orders_queue=wiring.orders_queue(),
            **options,
        )
    return dlq_replay(
        dlq=wiring.dead_letter_queue(),
        target=wiring.orders_queue(),
        store=wiring.dynamo_store(),
        **options,
    )


def run_replay_job(
    job_id: Any,
    *,
    should_stop: Callable[[], bool] | None = None,
    on_record: Callable[[Sequence[MessageOutcome], ReplayJob], None] | None = None,
) -> ReplayJob:
    """Run a queued job once: claim it under a new lease, replay, record the outcome and the
    audit entry. A task delivered twice finds the job claimed and does nothing.

    `should_stop` (a Lambda invocation's deadline) ends the run between two batches: the job
    is queued again at once, and its next run goes on from the ledger. `on_record` hears of
    every checkpoint (the command prints progress with it)."""
    lease = uuid.uuid4().hex
    now = timezone.now()
    claimed = ReplayJob.objects.filter(pk=job_id, state=State.QUEUED).update(
        state=State.RUNNING,
        lease=lease,
        runs=F("runs") + 1,
        started_at=Coalesce(F("started_at"), now),
        error="",
    )
    job = ReplayJob.objects.get(pk=job_id)
    if not claimed:
        return job
    ledger = JobLedger(job.pk, lease, hide_for=settings.OPS_REPLAY_VISIBILITY, on_record=on_record)
    try:
        if job.total is None:
            try:
                total: int | None = selectors.queue_depth(job.queue)["visible"]
            except Exception:  # only the progress bar needs it
                total = None
            ReplayJob.objects.filter(pk=job.pk).update(total=total)
        result = _replay(job, ledger, should_stop)
    except Exception as exc:
        log.exception("DLQ replay job %s failed", job.pk)
        _finish_failed(job.pk, f"{type(exc).__name__}: {exc}", lease=lease)
        return ReplayJob.objects.get(pk=job.pk)
    if ledger.stopped_by == "lease":
        # Cancelled while it looked dead, or resumed elsewhere: that is where it ends.
        return ReplayJob.objects.get(pk=job.pk)
    if result.stopped and not result.cancelled:
        _continue(job, lease)
        return ReplayJob.objects.get(pk=job.pk)
    final = State.CANCELLED if result.cancelled else State.SUCCEEDED
    ReplayJob.objects.filter(pk=job.pk, lease=lease).update(
        state=final,
        unreceived=result.unreceived,
        in_flight_elsewhere=result.in_flight_elsewhere,
        # Everything the run kept was released at its end.
        hidden_until=timezone.now(),
        finished_at=timezone.now(),
    )
    job.refresh_from_db()
    summary = replay_summary(job)
    record(
        user=job.requested_by,
        actor=job.actor,
        action=Action.DLQ_REPLAY,
        outcome=Outcome.SUCCEEDED if job.failed == 0 else Outcome.FAILED,
        reason=job.reason,
        message=summary,
        detail={
            "job": str(job.pk),
            "queue": job.queue,
            "state": job.state,
            **{name: getattr(job, name) for name in COUNTS},
            "moved": job.sent,  # the name entries had before skips were counted apart
            "selected": sorted(job.message_ids or []),
            "filters": job.filters,
            "limit": job.limit,
            "rate": job.rate,
            "runs": job.runs,
        },
        obj=job,
        before={"visible": job.total},
        after=_counts(job),
    )
    return job


def _counts(job: ReplayJob) -> dict[str, Any]:
    """A job's state and counts: what its audit entries give as the value after."""
    return {"state": job.state, **{name: getattr(job, name) for name in COUNTS}}


def _continue(job: ReplayJob, lease: str) -> None:
    """Queue the next run of a job whose run was told to stop before the queue was done."""
    task_id = str(uuid.uuid4())
    if ReplayJob.objects.filter(pk=job.pk, lease=lease, state=State.RUNNING).update(
        state=State.QUEUED, lease="", celery_task_id=task_id, hidden_until=timezone.now()
    ):
        job.refresh_from_db()
        _dispatch(job)


def cancel_replay_job(job_id: Any, *, user: AbstractBaseUser | AnonymousUser | None) -> ReplayJob:
    """Stop a job: a queued or stale one at once, a running one between two batches
    (CANCELLING until its worker sees it). JobRefused if it is finished already."""
    job = ReplayJob.objects.get(pk=job_id)
    before = _counts(job)
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.OPS_REPLAY_STALE_SECONDS)
    at_once = Q(state=State.QUEUED) | Q(
        state__in=(State.RUNNING, State.CANCELLING), updated_at__lt=stale_before
    )
    # Dropping the lease stops a worker that was only slow, at its next batch.
    stopped = ReplayJob.objects.filter(at_once, pk=job_id).update(
        state=State.CANCELLED, lease="", finished_at=now
    )
    asked = stopped or ReplayJob.objects.filter(pk=job_id, state=State.RUNNING).update(
        state=State.CANCELLING
    )
    if not asked and ReplayJob.objects.get(pk=job_id).state != State.CANCELLING:
        raise JobRefused(f"The job is {job.get_state_display()}: there is nothing to cancel.")
    job.refresh_from_db()
    text = (
        "Replay cancelled."
        if job.state == State.CANCELLED
        else "Cancelling: the worker stops after the batch it is on."
    )
    record(
        user=user,
        action=Action.DLQ_REPLAY_CANCEL,
        outcome=Outcome.SUCCEEDED,
        reason=job.reason,
        message=text,
        detail={"job": str(job.pk), **job.as_progress()},
        obj=job,
        before=before,
        after=_counts(job),
    )
    return job


def resume_replay_job(
    job_id: Any, *, user: AbstractBaseUser | AnonymousUser | None, dispatch: bool = True
) -> ReplayJob:
    """Queue a stale or failed job again (for a worker, with `dispatch`; else for the caller to
    run); its next run goes on from its ledger. JobRefused if it is neither stale nor failed
    (or another job of its queue is unfinished)."""
    job = ReplayJob.objects.get(pk=job_id)
    before = _counts(job)
    stale_before = timezone.now() - timedelta(seconds=settings.OPS_REPLAY_STALE_SECONDS)
    task_id = str(uuid.uuid4())
    try:
        with transaction.atomic():
            resumed = ReplayJob.objects.filter(
                Q(state=State.FAILED) | Q(state=State.RUNNING, updated_at__lt=stale_before),
                pk=job_id,
            ).update(
                state=State.QUEUED, lease="", error="", finished_at=None, celery_task_id=task_id
            )
    except IntegrityError as exc:
        raise _refuse_duplicate(job.queue) from exc
    if not resumed:
        raise JobRefused(
            f"The job is {job.get_state_display()} and its worker is alive: only a stale or "
            "failed job can be resumed."
        )
    job.refresh_from_db()
    record(
        user=user,
        action=Action.DLQ_REPLAY_RESUME,
        outcome=Outcome.SUCCEEDED,
        reason=job.reason,
        message=f"Replay resumed (run {job.runs + 1}).",
        detail={"job": str(job.pk), **job.as_progress()},
        obj=job,
        before=before,
        after=_counts(job),
    )
    if dispatch:
        _dispatch(job)
        job.refresh_from_db()
    return job


def sent_label(job_or_queue: ReplayJob | str) -> str:
    """What the pages call the `sent` count: messages moved back to the Orders queue, or
    stream batches re-driven."""
    queue = job_or_queue.queue if isinstance(job_or_queue, ReplayJob) else job_or_queue
    return "re-driven" if queue == Queue.STREAM_FAILURES else "moved"


def replay_summary(job: ReplayJob) -> str:
    """One line saying what a replay did (left and out-of-scope counts when there are any)."""
    head = "Replay cancelled" if job.state == State.CANCELLED else "Replay finished"
    text = f"{head}: {job.sent} {sent_label(job)}, {job.failed} failed, {job.skipped} skipped"
    if job.left:
        text += f", {job.left} left"
    if job.passed:
        text += f", {job.passed} not in scope"
    return text + "."
