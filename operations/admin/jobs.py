"""Replay jobs and background jobs in the admin: read-only, with a replay's progress (polled),
cancel and resume (POST, needing replay_deadletters, or manage_webhooks for a webhook DLQ
replay)."""

from __future__ import annotations

from functools import partial
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.text import capfirst
from django.views.decorators.http import require_POST, require_safe

from operations import selectors
from operations.admin import webhook_replays
from operations.admin.audit import ReadOnlyAdmin
from operations.admin.webhook_replays import KeyFilter
from operations.jobs import (
    JobRefused,
    cancel_replay_job,
    replay_summary,
    resume_replay_job,
    sent_label,
)
from operations.models import AuditLogEntry, BackgroundJob, ReplayJob
from orders_api.models import ClientAPIKey
from pipeline.dlq import SWEEP_FALLBACK

REPLAY_PERMISSION = "operations.replay_deadletters"
QUEUE_MODELS = {
    ReplayJob.Queue.ORDERS_DLQ: "ordersdeadletter",
    ReplayJob.Queue.STREAM_FAILURES: "streamfailure",
}


def queue_changelist(queue: str) -> str:
    """The admin page of a ReplayJob.Queue (of the two with a page of their own)."""
    return reverse(f"admin:operations_{QUEUE_MODELS[queue]}_changelist")


def source_page(job: ReplayJob) -> str:
    """Where the job's replay was started: its queue's page, or for a webhook DLQ replay the
    webhooks page of the key whose deliveries it moves (the key list if the key is gone)."""
    if not job.is_webhooks:
        return queue_changelist(job.queue)
    key = ClientAPIKey.objects.filter(prefix=job.filters.get("client_id", "")).first()
    if key is None:
        return reverse("admin:orders_api_clientapikey_changelist")
    return reverse("admin:orders_api_clientapikey_webhooks", args=[key.pk])


def may_steer(user: Any, job: ReplayJob) -> bool:
    """Whether `user` may cancel or resume `job`: replay_deadletters, or for a webhook DLQ
    replay the permission that started it."""
    return user.has_perm(REPLAY_PERMISSION) or (
        job.is_webhooks and user.has_perm(webhook_replays.MANAGE_WEBHOOKS)
    )


def job_url(job: ReplayJob) -> str:
    """The admin page of a replay job."""
    return reverse("admin:operations_replayjob_change", args=[job.pk])


@admin.register(ReplayJob)
class ReplayJobAdmin(ReadOnlyAdmin):
    """DLQ replays: who asked, what they moved; a running one's progress, cancel and resume."""

    change_form_template = "admin/operations/replayjob/change_form.html"
    list_display = ("created_at", "queue", "actor", "state", "sent", "failed", "skipped", "left")
    list_filter = ("queue", "state", KeyFilter)
    search_fields = ("actor", "reason")
    date_hierarchy = "created_at"

    def get_urls(self) -> list[URLPattern]:
        """Progress (JSON), cancel and resume next to the job's page."""
        wrap = self.admin_site.admin_view
        return [
            path(
                "<uuid:job_id>/progress/",
                wrap(self.progress_view),
                name="operations_replayjob_progress",
            ),
            path(
                "<uuid:job_id>/cancel/", wrap(self.cancel_view), name="operations_replayjob_cancel"
            ),
            path(
                "webhooks/start/",
                wrap(partial(webhook_replays.start_view, site=self.admin_site)),
                name="operations_replayjob_webhooks",
            ),
            path(
                "<uuid:job_id>/resume/", wrap(self.resume_view), name="operations_replayjob_resume"
            ),
            *super().get_urls(),
        ]

    def _job(self, request: HttpRequest, job_id: Any) -> ReplayJob:
        if not self.has_view_permission(request):
            raise PermissionDenied
        job = selectors.replay_job(job_id)
        if job is None:
            raise Http404(f"No replay job {job_id}")
        return job

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The admin's read-only page, with the job's progress, summary and messages kept."""
        job = selectors.replay_job(object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if job is not None:
            extra.update(
                {
                    "job": job,
                    "summary": replay_summary(job),
                    "sent_label": sent_label(job),
                    "kept": selectors.replay_job_messages(
                        job, outcomes=("skipped", "left", "failed")
                    ),
                    "redriven": (
                        selectors.replay_job_messages(job, outcomes=("sent",))
                        if job.is_stream_failures
                        else []
                    ),
                    "sweep_fallback": SWEEP_FALLBACK,
                    "stale_seconds": settings.OPS_REPLAY_STALE_SECONDS,
                    "queue_url": source_page(job),
                    "can_replay": may_steer(request.user, job),
                }
            )
        return super().change_view(request, object_id, form_url, extra)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The job's audit entries (replay finished or failed, cancel, resume), newest first."""
        job = self._job(request, object_id)
        entries = AuditLogEntry.objects.filter(
            object_type=self.opts.label_lower, object_id=str(job.pk)
        )[:200]
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Change history: {job}",
            "subtitle": None,
            "object": job,
            "module_name": capfirst(self.opts.verbose_name_plural),
            "entries": entries,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/operations/data/object_history.html", context)

    @method_decorator(require_safe)
    def progress_view(self, request: HttpRequest, job_id: Any) -> JsonResponse:
        """The job's counts as JSON, polled by its page."""
        return JsonResponse(self._job(request, job_id).as_progress())

    @method_decorator(require_POST)
    def cancel_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        """Stop a job: at once if queued or stale, between two batches if running."""
        job = self._job(request, job_id)
        if not may_steer(request.user, job):
            raise PermissionDenied("Cancelling a replay needs replay_deadletters.")
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
        return HttpResponseRedirect(job_url(job))

    @method_decorator(require_POST)
    def resume_view(self, request: HttpRequest, job_id: Any) -> HttpResponse:
        """Queue a stale or failed job again; it goes on from what it recorded."""
        job = self._job(request, job_id)
        if not may_steer(request.user, job):
            raise PermissionDenied("Resuming a replay needs replay_deadletters.")
        try:
            resume_replay_job(job.pk, user=request.user)
        except JobRefused as exc:
            messages.error(request, f"Refused: {exc}")
        else:
            messages.success(request, "Replay resumed: a worker goes on from where it stopped.")
        return HttpResponseRedirect(job_url(job))


@admin.register(BackgroundJob)
class BackgroundJobAdmin(ReadOnlyAdmin):
    """Sweeps, re-queues and imports a worker ran or runs."""

    list_display = ("created_at", "kind", "actor", "state", "progress", "total", "finished_at")
    list_filter = ("kind", "state")
    search_fields = ("actor", "reason")
    date_hierarchy = "created_at"
