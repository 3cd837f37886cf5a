"""Replays of one webhook endpoint's dead-lettered deliveries, as DLQ replay jobs.

The key's webhooks page (orders_api/webhook_admin.py) posts its "Replay its dead letters"
button here: the replay runs on a Celery worker like every DLQ replay (ledger, progress,
cancel, resume, audit), however deep the webhook DLQ is, never inside the request. The replay
jobs' list filters by key (`?client_id=`), which is where that page links.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from operations.jobs import JobRefused, create_replay_job
from operations.models import ReplayJob
from orders_api.models import ClientAPIKey
from orders_api.webhook_admin import MANAGE as MANAGE_WEBHOOKS
from pipeline.webhooks_store import WebhookStore


@require_POST
def start_view(request: HttpRequest, *, site: admin.AdminSite) -> HttpResponse:
    """Start the replay of the endpoint `subscription` of the key `key` (POST, manage_webhooks);
    on to the job's page, or back to the key's webhooks page saying why nothing started."""
    if not request.user.has_perm(MANAGE_WEBHOOKS):
        raise PermissionDenied("Replaying webhook deliveries needs manage_webhooks.")
    key = ClientAPIKey.objects.filter(pk=request.POST.get("key", "")).first()
    if key is None:
        messages.error(request, "That API key does not exist (any more). Nothing was started.")
        return HttpResponseRedirect(reverse("admin:orders_api_clientapikey_changelist"))
    back = HttpResponseRedirect(reverse("admin:orders_api_clientapikey_webhooks", args=[key.pk]))
    subscription = WebhookStore.from_env().get(key.client_id, request.POST.get("subscription", ""))
    if subscription is None:
        messages.error(request, "That endpoint does not exist (any more). Nothing was started.")
        return back
    try:
        job = create_replay_job(
            user=request.user,
            reason=f"the dead-lettered deliveries to webhook endpoint {subscription.url}",
            queue=ReplayJob.Queue.WEBHOOK_DLQ,
            filters={"client_id": key.client_id, "subscription_id": subscription.subscription_id},
        )
    except JobRefused as exc:
        messages.error(request, f"Refused: {exc} Nothing was started.")
        return back
    failed = job.state == ReplayJob.State.FAILED  # the broker could not be reached
    verb = "Could not start" if failed else "Started"
    site.get_model_admin(ClientAPIKey).log_change(
        request, key, f"{verb} replay job {job.pk} of the dead letters of {subscription.url}"
    )
    if failed:
        messages.error(request, f"The replay could not start: {job.error}")
        return back
    messages.success(request, "Replay started: each delivery goes back with a fresh retry window.")
    if not request.user.has_perm("operations.view_replayjob"):
        return back
    return HttpResponseRedirect(reverse("admin:operations_replayjob_change", args=[job.pk]))


class KeyFilter(admin.SimpleListFilter):
    """The replay jobs of one API key's webhook deliveries (`?client_id=<key prefix>`)."""

    title = "API key (webhook deliveries)"
    parameter_name = "client_id"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        """The keys that have had a webhook DLQ replay."""
        ids = (
            ReplayJob.objects.filter(queue=ReplayJob.Queue.WEBHOOK_DLQ)
            .values_list("filters__client_id", flat=True)
            .distinct()
        )
        keys = ClientAPIKey.objects.filter(prefix__in=list(ids))
        names = dict(keys.values_list("prefix", "name"))
        return [(i, f"{names.get(i, 'a removed key')} ({i})") for i in ids if i]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Only that key's webhook DLQ replays, when one is chosen."""
        if not self.value():
            return queryset
        return queryset.filter(queue=ReplayJob.Queue.WEBHOOK_DLQ, filters__client_id=self.value())
