"""/ops/jobs/: start a sweeper or the re-queue of stranded orders as a background job, and
follow a job's progress. The work runs on a Celery worker, never inside the request.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from operations.audit import Action, Outcome, record
from operations.background import JobRefused, start_job
from operations.forms import ReasonForm
from operations.models import BackgroundJob
from operations.web import ops_render, staff_required

Kind = BackgroundJob.Kind

# The jobs staff may start from these pages, what each does, and the permission it needs.
STARTABLE: dict[str, tuple[str, str]] = {
    Kind.SWEEP_PENDING: (
        "operations.run_sweeper",
        "PENDING orders older than the sweep threshold whose stream record never reserved them "
        "are sent through the reservation path again (reserved, or rejected naming the short "
        "items).",
    ),
    Kind.SWEEP_RESERVED: (
        "operations.run_sweeper",
        "RESERVED orders with no live workflow (never started, or FAILED, TIMED_OUT, ABORTED) "
        "get a new workflow run; an order out of runs is released: stock back, any charge "
        "refunded.",
    ),
    Kind.SWEEP_PAID: (
        "operations.run_sweeper",
        "PAID orders with no live workflow resume at shipping under a new run; an order out "
        "of runs is flagged for staff (MANUAL_INTERVENTION).",
    ),
    Kind.REQUEUE_STRANDED: (
        "operations.requeue_stranded_orders",
        "Every RESERVED order without a workflow execution is sent to the Orders queue again "
        "(its message was lost or purged). Safe to repeat: an order never gets two workflows.",
    ),
}
VIEW_JOBS = "operations.view_backgroundjob"


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"You need the permission {permission!r} for this.")


@staff_required
@require_GET
def jobs_view(request: HttpRequest) -> HttpResponse:
    """The sweepers and the re-queue, each with its last run and (if allowed) a Run button."""
    _require(request, VIEW_JOBS)
    rows = []
    for kind, (permission, explain) in STARTABLE.items():
        last = BackgroundJob.objects.filter(kind=kind).first()
        rows.append(
            {
                "kind": kind,
                "label": Kind(kind).label,
                "explain": explain,
                "last": last,
                "may_run": request.user.has_perm(permission),
            }
        )
    recent = BackgroundJob.objects.all()[:20]
    return ops_render(
        request,
        "operations/jobs.html",
        {"rows": rows, "recent": recent},
        title="Background jobs",
        crumbs=[("Background jobs", None)],
    )


@staff_required
@require_http_methods(["GET", "POST"])
def job_start_view(request: HttpRequest, kind: str) -> HttpResponse:
    """Confirm (GET) and start (POST, with a reason) one job of `kind`."""
    if kind not in STARTABLE:
        raise Http404("No such job.")
    permission, explain = STARTABLE[kind]
    _require(request, permission)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        reason = form.cleaned_data["reason"]
        try:
            job = start_job(kind, user=request.user, reason=reason)
        except JobRefused as exc:
            messages.error(request, f"Refused: {exc} Nothing was started.")
            return redirect("operations:jobs")
        record(
            user=request.user,
            action=Action.REQUEUE_STRANDED,
            outcome=Outcome.SUCCEEDED,
            reason=reason,
            message=f"Started the background job {Kind(kind).label}.",
            detail={"job": str(job.pk), "kind": kind},
        )
        messages.success(request, f"{Kind(kind).label}: started; this page follows it.")
        return redirect("operations:job", job.pk)
    return ops_render(
        request,
        "operations/confirm.html",
        {
            "form": form,
            "explain": explain + " It runs as a background job on the Celery worker.",
            "submit_label": f"Start: {Kind(kind).label}",
            "cancel_url": reverse("operations:jobs"),
        },
        title=f"{Kind(kind).label}?",
        crumbs=[("Background jobs", reverse("operations:jobs")), (Kind(kind).label, None)],
    )


@staff_required
@require_GET
def job_view(request: HttpRequest, job_id: str) -> HttpResponse:
    """One job: state, progress, result or error; the page reloads itself while it runs."""
    _require(request, VIEW_JOBS)
    job = get_object_or_404(BackgroundJob, pk=job_id)
    return ops_render(
        request,
        "operations/job.html",
        {"job": job},
        title=f"{job.get_kind_display()}",
        crumbs=[("Background jobs", reverse("operations:jobs")), (str(job.pk)[:8], None)],
    )


@staff_required
@require_GET
def job_progress_view(request: HttpRequest, job_id: str) -> JsonResponse:
    """One job's state and counts as JSON, for scripts and the progress bar."""
    _require(request, VIEW_JOBS)
    job = get_object_or_404(BackgroundJob, pk=job_id)
    return JsonResponse(
        {
            "id": str(job.pk),
            "kind": job.kind,
            "state": job.state,
            "stale": job.is_stale,
            "progress": job.progress,
            "total": job.total,
            "percent": job.percent,
            "result": job.result,
            "error": job.error,
        }
    )
