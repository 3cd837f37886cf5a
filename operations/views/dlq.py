"""/ops/dlq/: look at the dead-letter queue, replay messages (a Celery job), delete one."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from operations import selectors
from operations.audit import Action
from operations.forms import ReasonForm, ReplayForm
from operations.jobs import create_replay_job
from operations.models import ReplayJob
from operations.parts import attempt
from operations.web import carry_out, ops_render, staff_required
from pipeline import wiring
from pipeline.dlq import DeadLetter, dlq_discard
from pipeline.errors import MessageNotFound
from pipeline.fulfilment import parse_fulfilment_message

CRUMBS = [("Dead-letter queue", "operations:dlq")]


def _crumbs(*more: tuple[str, str | None]) -> list[tuple[str, str | None]]:
    return [(CRUMBS[0][0], reverse(CRUMBS[0][1])), *more]


def _peek() -> list[DeadLetter]:
    return selectors.dead_letters(
        max_messages=settings.OPS_DLQ_PEEK_MAX, visibility=settings.OPS_DLQ_PEEK_VISIBILITY
    )


def _job_or_404(job_id: str) -> ReplayJob:
    job = selectors.replay_job(job_id)
    if job is None:
        raise Http404(f"No replay job {job_id}")
    return job


@staff_required
def dlq_view(request: HttpRequest) -> HttpResponse:
    """The DLQ's depth, its first messages, and the recent replay jobs."""
    depth = attempt(selectors.dlq_depth)
    peeked = attempt(_peek)
    return ops_render(
        request,
        "operations/dlq.html",
        {
            "depth": depth,
            "peeked": peeked,
            "peek_max": settings.OPS_DLQ_PEEK_MAX,
            "jobs": selectors.recent_replay_jobs(limit=10),
        },
        title="Dead-letter queue",
        crumbs=[("Dead-letter queue", None)],
    )


@staff_required
@require_http_methods(["GET", "POST"])
def dlq_replay_view(request: HttpRequest) -> HttpResponse:
    """Confirm a replay of all (?all=1) or the selected (?message=ID...) messages, then queue
    it as a job and show its progress."""
    source = request.POST if request.method == "POST" else request.GET
    replay_all = source.get("all") == "1"
    ids = [] if replay_all else source.getlist("message")
    if not replay_all and not ids:
        messages.warning(request, "Select the messages to replay, or use 'Replay all'.")
        return redirect("operations:dlq")
    form = ReplayForm(request.POST or None, message_ids=ids)
    if request.method == "POST" and form.is_valid():
        job = create_replay_job(
            user=request.user,
            reason=form.cleaned_data["reason"],
            message_ids=ids,
            limit=form.cleaned_data["limit"],
        )
        return redirect("operations:replay-job", job_id=job.pk)
    depth = attempt(selectors.dlq_depth)
    return ops_render(
        request,
        "operations/dlq_replay.html",
        {
            "form": form,
            "replay_all": replay_all,
            "ids": ids,
            "depth": depth,
            "cancel_url": reverse("operations:dlq"),
        },
        title="Replay all DLQ messages?" if replay_all else f"Replay {len(ids)} DLQ message(s)?",
        crumbs=_crumbs(("Replay", None)),
    )


@staff_required
def replay_job_view(request: HttpRequest, job_id: str) -> HttpResponse:
    """A replay job's progress while it runs, and its summary once it is done."""
    job = _job_or_404(job_id)
    percent = None
    if job.total:
        percent = min(100, int(100 * job.looked_at / job.total))
    return ops_render(
        request,
        "operations/replay_job.html",
        {"job": job, "percent": percent},
        title="DLQ replay",
        crumbs=_crumbs(("Replay job", None)),
    )


@staff_required
def replay_job_progress_view(request: HttpRequest, job_id: str) -> JsonResponse:
    """The job's counts as JSON, polled by its page."""
    job = _job_or_404(job_id)
    return JsonResponse(job.as_progress())


def _order_of(body: str) -> str:
    try:
        return parse_fulfilment_message(body)[0]
    except ValueError:
        return ""


@staff_required
@require_http_methods(["GET", "POST"])
def dlq_delete_view(request: HttpRequest, message_id: str) -> HttpResponse:
    """Delete one message for good, after confirmation and with a reason."""
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        carry_out(
            request,
            action=Action.DLQ_DELETE,
            reason=form.cleaned_data["reason"],
            run=lambda: dlq_discard(
                dlq=wiring.dead_letter_queue(),
                message_id=message_id,
                visibility=settings.OPS_DLQ_PEEK_VISIBILITY,
            ),
            success=lambda message: f"Deleted DLQ message {message_id}.",
            refusals={MessageNotFound: lambda exc: str(exc) + "."},
            detail=lambda message: {
                "message_id": message.message_id,
                "body": message.body,
                "order_id": _order_of(message.body),
                "receive_count": message.receive_count,
            },
        )
        return redirect("operations:dlq")
    peeked = attempt(_peek)
    letter: Any = next((m for m in peeked.value or [] if m.message_id == message_id), None)
    return ops_render(
        request,
        "operations/dlq_delete.html",
        {
            "form": form,
            "message_id": message_id,
            "letter": letter,
            "error": peeked.error,
            "cancel_url": reverse("operations:dlq"),
        },
        title="Delete this DLQ message?",
        crumbs=_crumbs(("Delete message", None)),
    )
