"""/ops/dlq/: the dead-letter queues (Orders DLQ, stream failures): look, replay, delete, purge.

No GET changes a queue. The page shows what SQS and CloudWatch say without receiving anything;
messages are listed only when staff ask (a POST), which receives each once and releases it at
once, and is refused while a replay of that queue runs. Replays are Celery jobs.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from operations import selectors
from operations.audit import Action
from operations.forms import PurgeForm, ReasonForm, ReplayForm
from operations.jobs import (
    JobRefused,
    cancel_replay_job,
    create_replay_job,
    replay_summary,
    resume_replay_job,
    sent_label,
)
from operations.models import ReplayJob
from operations.parts import Part, attempt
from operations.web import carry_out, ops_render, staff_required
from pipeline.dlq import SWEEP_FALLBACK, dlq_discard, dlq_purge
from pipeline.errors import MessageNotFound
from pipeline.fulfilment import parse_fulfilment_message

Queue = ReplayJob.Queue
PURGE_PERMISSION = "operations.purge_deadletterqueue"
LABELS = {Queue.ORDERS_DLQ: "Orders DLQ", Queue.STREAM_FAILURES: "Stream failures"}


def _queue_url(queue: str, suffix: str = "") -> str:
    return reverse("operations:dlq-queue", kwargs={"queue": queue}) + suffix


def _crumbs(queue: str, *more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    return [(f"Dead-letter queues: {LABELS[queue]}", _queue_url(queue)), *more]


def _job_or_404(job_id: Any) -> ReplayJob:
    job = selectors.replay_job(job_id)
    if job is None:
        raise Http404(f"No replay job {job_id}")
    return job


def _can_purge(request: HttpRequest) -> bool:
    # Until the portal has roles: a permission of its own (superusers have every permission).
    return request.user.has_perm(PURGE_PERMISSION)


def _queue_page(request: HttpRequest, queue: str, *, listing: Part | None = None) -> HttpResponse:
    unfinished = selectors.unfinished_replay_job(queue)
    return ops_render(
        request,
        "operations/dlq.html",
        {
            "queue": queue,
            "queue_label": LABELS[queue],
            "queues": [(q, label, _queue_url(q)) for q, label in LABELS.items()],
            "stream_failures": queue == Queue.STREAM_FAILURES,
            "queue_name": attempt(lambda: selectors.queue_for(queue).name),
            "depth": attempt(lambda: selectors.queue_depth(queue)),
            "oldest": attempt(lambda: selectors.queue_oldest_age(queue)),
            "unfinished": unfinished,
            "listing": listing,
            "peek_max": settings.OPS_DLQ_PEEK_MAX,
            "peek_visibility": settings.OPS_DLQ_PEEK_VISIBILITY,
            "can_purge": _can_purge(request),
            "jobs": selectors.recent_replay_jobs(limit=10, queue=queue),
            "sent_label": sent_label(queue),
        },
        title=f"Dead-letter queues: {LABELS[queue]}",
        crumbs=[(f"Dead-letter queues: {LABELS[queue]}", None)],
    )


@staff_required
@require_safe
def dlq_view(request: HttpRequest, queue: str) -> HttpResponse:
    """What can be known of the queue without receiving: depth, in flight, oldest message's
    age (CloudWatch), the replay running on it and the recent ones."""
    return _queue_page(request, queue)


@staff_required
@require_POST
def dlq_look_view(request: HttpRequest, queue: str) -> HttpResponse:
    """List the first messages (each received once and released at once: one more receive on
    its count); refused while a replay of the queue runs."""
    listing = attempt(
        lambda: selectors.dead_letters(
            queue=queue,
            max_messages=settings.OPS_DLQ_PEEK_MAX,
            visibility=settings.OPS_DLQ_PEEK_VISIBILITY,
        )
    )
    return _queue_page(request, queue, listing=listing)


@staff_required
@require_http_methods(["GET", "POST"])
def dlq_replay_view(request: HttpRequest, queue: str) -> HttpResponse:
    """Confirm a replay of all (?all=1, optionally filtered) or the selected (?message=ID...)
    messages, then queue it as a job and show its progress."""
    source = request.POST if request.method == "POST" else request.GET
    replay_all = source.get("all") == "1"
    ids = [] if replay_all else source.getlist("message")
    if not replay_all and not ids:
        messages.warning(request, "Select the messages to replay, or use 'Replay all'.")
        return redirect(_queue_url(queue))
    stream_failures = queue == Queue.STREAM_FAILURES
    form = ReplayForm(
        request.POST or None,
        message_ids=ids,
        stream_failures=stream_failures,
        initial={"rate": settings.OPS_REPLAY_RATE},
    )
    refused = None
    if request.method == "POST" and form.is_valid():
        try:
            job = create_replay_job(
                user=request.user,
                reason=form.cleaned_data["reason"],
                queue=queue,
                message_ids=ids,
                limit=form.cleaned_data["limit"],
                rate=form.cleaned_data["rate"],
                filters=form.filters(),
            )
        except JobRefused as exc:
            refused = str(exc)
        else:
            return redirect("operations:replay-job", job_id=job.pk)
    return ops_render(
        request,
        "operations/dlq_replay.html",
        {
            "form": form,
            "queue": queue,
            "queue_label": LABELS[queue],
            "stream_failures": stream_failures,
            "replay_all": replay_all,
            "ids": ids,
            "depth": attempt(lambda: selectors.queue_depth(queue)),
            "unfinished": selectors.unfinished_replay_job(queue),
            "refused": refused,
            "default_rate": settings.OPS_REPLAY_RATE,
            "cancel_url": _queue_url(queue),
        },
        title=(
            f"Replay all of the {LABELS[queue]}?"
            if replay_all
            else f"Replay {len(ids)} message(s) of the {LABELS[queue]}?"
        ),
        crumbs=_crumbs(queue, ("Replay", None)),
    )


@staff_required
@require_safe
def replay_job_view(request: HttpRequest, job_id: Any) -> HttpResponse:
    """A replay job's progress while it runs, its summary once it is done, and what it did
    with each message it skipped, left or failed."""
    job = _job_or_404(job_id)
    percent = None
    if job.total:
        percent = min(100, int(100 * job.looked_at / job.total))
    kept = selectors.replay_job_messages(job, outcomes=("skipped", "left", "failed"))
    redriven = (
        selectors.replay_job_messages(job, outcomes=("sent",)) if job.is_stream_failures else []
    )
    return ops_render(
        request,
        "operations/replay_job.html",
        {
            "job": job,
            "percent": percent,
            "summary": replay_summary(job),
            "sent_label": sent_label(job),
            "kept": kept,
            "redriven": redriven,
            "sweep_fallback": SWEEP_FALLBACK,
            "stale_seconds": settings.OPS_REPLAY_STALE_SECONDS,
            "queue_label": LABELS.get(job.queue, job.queue),
            "queue_url": _queue_url(job.queue),
        },
        title="Replay job",
        crumbs=_crumbs(job.queue, ("Replay job", None)),
    )


@staff_required
@require_safe
def replay_job_progress_view(request: HttpRequest, job_id: Any) -> JsonResponse:
    """The job's counts as JSON, polled by its page."""
    return JsonResponse(_job_or_404(job_id).as_progress())


@staff_required
@require_POST
def replay_job_cancel_view(request: HttpRequest, job_id: Any) -> HttpResponse:
    """Stop a job: at once if queued or stale, between two batches if running."""
    job = _job_or_404(job_id)
    try:
        job = cancel_replay_job(job.pk, user=request.user)
    except JobRefused as exc:
        messages.error(request, f"Refused: {exc}")
    else:
        messages.success(
            request,
            "Replay cancelled."
            if job.state == ReplayJob.State.CANCELLED
            else "Cancelling: the worker stops after the batch it is on.",
        )
    return redirect("operations:replay-job", job_id=job.pk)


@staff_required
@require_POST
def replay_job_resume_view(request: HttpRequest, job_id: Any) -> HttpResponse:
    """Queue a stale or failed job again; it goes on from what it recorded."""
    job = _job_or_404(job_id)
    try:
        resume_replay_job(job.pk, user=request.user)
    except JobRefused as exc:
        messages.error(request, f"Refused: {exc}")
    else:
        messages.success(request, "Replay resumed: a worker goes on from where it stopped.")
    return redirect("operations:replay-job", job_id=job.pk)


def _order_of(body: str) -> str:
    try:
        return parse_fulfilment_message(body)[0]
    except ValueError:
        return ""


def _refused_while_replaying(request: HttpRequest, queue: str, what: str) -> bool:
    job = selectors.unfinished_replay_job(queue)
    if job is None:
        return False
    messages.error(
        request,
        f"Refused: a replay of this queue is {job.get_state_display()}; {what} waits until it "
        "is done (or cancelled). Nothing was changed.",
    )
    return True


@staff_required
@require_http_methods(["GET", "POST"])
def dlq_delete_view(request: HttpRequest, message_id: str, queue: str) -> HttpResponse:
    """Delete one message for good, after confirmation and with a reason. The confirmation
    receives nothing: the message is only looked for once staff confirm."""
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if _refused_while_replaying(request, queue, "deleting a message"):
            return redirect(_queue_url(queue))
        carry_out(
            request,
            action=Action.DLQ_DELETE,
            reason=form.cleaned_data["reason"],
            run=lambda: dlq_discard(
                dlq=selectors.queue_for(queue),
                message_id=message_id,
                visibility=settings.OPS_DLQ_PEEK_VISIBILITY,
            ),
            success=lambda message: f"Deleted message {message_id} of the {LABELS[queue]}.",
            refusals={MessageNotFound: lambda exc: str(exc) + "."},
            detail=lambda message: {
                "queue": queue,
                "message_id": message.message_id,
                "body": message.body,
                "order_id": _order_of(message.body),
                "receive_count": message.receive_count,
            },
        )
        return redirect(_queue_url(queue))
    return ops_render(
        request,
        "operations/dlq_delete.html",
        {
            "form": form,
            "queue_label": LABELS[queue],
            "message_id": message_id,
            "cancel_url": _queue_url(queue),
        },
        title="Delete this message?",
        crumbs=_crumbs(queue, ("Delete message", None)),
    )


def _purge_refusal(exc: ClientError) -> str:
    code = exc.response.get("Error", {}).get("Code", "")
    if code.endswith("PurgeQueueInProgress"):
        return "SQS purges a queue at most once a minute, and this one was purged within it."
    return f"SQS refused: {exc}"


@staff_required
@require_http_methods(["GET", "POST"])
def dlq_purge_view(request: HttpRequest, queue: str) -> HttpResponse:
    """Delete every message of the queue: needs the purge permission, the queue's name typed,
    a reason, and a POST (with its CSRF token)."""
    if not _can_purge(request):
        raise PermissionDenied("Purging a dead-letter queue needs the purge permission.")
    name = attempt(lambda: selectors.queue_for(queue).name)
    form = PurgeForm(request.POST or None, queue_name=name.value or "")
    if request.method == "POST" and name.value and form.is_valid():
        if _refused_while_replaying(request, queue, "a purge"):
            return redirect(_queue_url(queue))
        carry_out(
            request,
            action=Action.DLQ_PURGE,
            reason=form.cleaned_data["reason"],
            run=lambda: dlq_purge(queue=selectors.queue_for(queue)),
            success=lambda count: (
                f"Purged {name.value}: about {count} message(s) deleted (SQS takes up to a "
                "minute to finish)."
            ),
            refusals={ClientError: _purge_refusal},
            detail=lambda count: {"queue": queue, "queue_name": name.value, "about": count},
        )
        return redirect(_queue_url(queue))
    return ops_render(
        request,
        "operations/dlq_purge.html",
        {
            "form": form,
            "queue_label": LABELS[queue],
            "queue_name": name,
            "depth": attempt(lambda: selectors.queue_depth(queue)),
            "cancel_url": _queue_url(queue),
        },
        title=f"Purge the {LABELS[queue]}?",
        crumbs=_crumbs(queue, ("Purge", None)),
    )
