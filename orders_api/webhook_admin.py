"""The webhooks of one API key, on its admin page: endpoints added (secret shown once), removed,
enabled or disabled, their latest attempts, one event resent. Its "replay dead letters" button
posts to the replay jobs' admin (operations/admin/webhook_replays.py), which runs it as a job."""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from orders_api.models import ClientAPIKey
from pipeline import wiring
from pipeline.webhooks import (
    ALL_EVENTS,
    DEFAULT_EVENTS,
    DISABLE_AFTER_DAYS,
    InvalidEndpoint,
    check_endpoint,
    check_events,
    new_secret,
)
from pipeline.webhooks_flow import resend
from pipeline.webhooks_store import WebhookStore

log = logging.getLogger(__name__)

MANAGE = "orders_api.manage_webhooks"
VIEW = "orders_api.view_clientapikey"


def allow_local() -> bool:
    """http and 127.0.0.1/localhost endpoints: local settings only (DEBUG unless set)."""
    return bool(getattr(settings, "WEBHOOKS_ALLOW_LOCAL_ENDPOINTS", settings.DEBUG))


class EndpointForm(forms.Form):
    """A new endpoint: its URL and the events it wants."""

    url = forms.CharField(
        label="URL",
        max_length=2048,
        widget=forms.URLInput(attrs={"size": 70}),
        help_text="https only; it must resolve to a public address.",
    )
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in ALL_EVENTS],
        initial=list(DEFAULT_EVENTS),
        widget=forms.CheckboxSelectMultiple,
        help_text="By default the statuses an order ends in; tick the others for every transition.",
    )

    def clean_url(self) -> str:
        """The URL if webhooks may go there (https, public address), else a clear error."""
        url = self.cleaned_data["url"]
        try:
            return check_endpoint(url, allow_local=allow_local()).url
        except InvalidEndpoint as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_events(self) -> tuple[str, ...]:
        """The chosen event types, known ones only."""
        try:
            return check_events(self.cleaned_data["events"])
        except InvalidEndpoint as exc:
            raise forms.ValidationError(str(exc)) from None


def webhooks_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str
) -> HttpResponse:
    """GET: the key's endpoints and attempts. POST (manage_webhooks): add, remove, enable,
    disable, resend. A new secret is shown in this response only: never in a cookie,
    a message, a log or a redirect."""
    if not request.user.has_perm(VIEW):
        raise PermissionDenied
    key = get_object_or_404(ClientAPIKey, pk=object_id)
    store = WebhookStore.from_env()
    can_manage = request.user.has_perm(MANAGE)
    form = EndpointForm()
    created_secret = None
    notice = None
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied
        action = request.POST.get("action", "")
        if action == "add":
            form = EndpointForm(request.POST)
            if form.is_valid():
                secret = new_secret()
                subscription = store.create(
                    client_id=key.client_id,
                    url=form.cleaned_data["url"],
                    events=form.cleaned_data["events"],
                    secret=secret,
                    created_by=request.user.get_username(),
                )
                model_admin.log_change(
                    request,
                    key,
                    f"Added webhook endpoint {subscription.url} ({', '.join(subscription.events)})",
                )
                created_secret = (subscription, secret)
                form = EndpointForm()
        else:
            notice = _act(model_admin, request, key, store, action)
            if notice is None:
                return HttpResponseRedirect(request.path)
    subscriptions = store.for_client(key.client_id)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "original": key,
        "title": f"Webhooks of {key.name}",
        "key": key,
        "form": form,
        "can_manage": can_manage,
        "created": created_secret,
        "notice": notice,
        "disable_after_days": DISABLE_AFTER_DAYS,
        "endpoints": [
            {"sub": s, "attempts": store.attempts(s.subscription_id, limit=25)}
            for s in subscriptions
        ],
        "change_url": reverse("admin:orders_api_clientapikey_change", args=[key.pk]),
    }
    response = TemplateResponse(request, "orders_api/webhooks.html", context)
    if created_secret:
        response["Cache-Control"] = "no-store"
    return response


def _act(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    key: ClientAPIKey,
    store: WebhookStore,
    action: str,
) -> str | None:
    """One POSTed action on an endpoint; None when done, else what to tell the user."""
    sub_id = request.POST.get("subscription", "")
    subscription = store.get(key.client_id, sub_id)
    if subscription is None:
        return "That endpoint does not exist (any more)."
    if action == "remove":
        store.delete(key.client_id, sub_id)
        model_admin.log_change(request, key, f"Removed webhook endpoint {subscription.url}")
        return None
    if action in ("enable", "disable"):
        enabled = action == "enable"
        store.set_enabled(
            key.client_id, sub_id, enabled, f"disabled by {request.user.get_username()}"
        )
        verb = "Enabled" if enabled else "Disabled"
        model_admin.log_change(request, key, f"{verb} webhook endpoint {subscription.url}")
        return None
    if action == "resend":
        event_id = request.POST.get("event", "")
        queued = resend(
            store=store,
            queue=wiring.webhook_deliveries_queue(),
            client_id=key.client_id,
            subscription_id=sub_id,
            event_id=event_id,
        )
        if not queued:
            return "That event is no longer kept (events are kept 30 days)."
        model_admin.log_change(
            request, key, f"Resent webhook event {event_id} to {subscription.url}"
        )
        return f"Event {event_id} queued for delivery again."
    return "Unknown action."
