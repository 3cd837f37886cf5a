"""Staff manage API clients here: keys (created with the key shown once, revoked, given an
expiry and a plan, their usage from Redis, their webhooks) and usage plans."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from orders_api.models import ClientAPIKey, UsagePlan
from orders_api.ratelimit import KeyUsage, get_limiter
from orders_api.webhook_admin import webhooks_view

# The library's own key model is unused (ours adds the plan); one "API keys" list is enough.
if admin.site.is_registered(APIKey):
    admin.site.unregister(APIKey)


@admin.register(UsagePlan)
class UsagePlanAdmin(admin.ModelAdmin):
    """Usage plans and how many keys use each."""

    list_display = ("name", "rate_limit", "burst_limit", "daily_quota", "key_count")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[UsagePlan]:
        """Plans with their key counts in one query."""
        return super().get_queryset(request).annotate(_key_count=Count("keys"))

    @admin.display(description="keys", ordering="_key_count")
    def key_count(self, plan: Any) -> int:
        """How many keys have this plan."""
        return plan._key_count


def key_usage(client_ids: list[str]) -> dict[str, KeyUsage] | None:
    """The keys' usage from the limiter's Redis counters (None: Redis unavailable)."""
    limiter = get_limiter(
        settings.REDIS_URL,
        timeout=settings.RATE_LIMIT_REDIS_TIMEOUT,
        retry_seconds=settings.RATE_LIMIT_REDIS_RETRY_SECONDS,
    )
    return limiter.usage(client_ids, prefix=settings.RATE_LIMIT_KEY_PREFIX)


@admin.register(ClientAPIKey)
class ClientAPIKeyAdmin(APIKeyModelAdmin):
    """The library's key admin plus each key's plan, usage and webhooks. A new key is shown
    once, in the response to its creation: never in a message (a cookie) or a log."""

    list_display = (
        *APIKeyModelAdmin.list_display,
        "plan",
        "last_used",
        "requests_today",
        "throttled_today",
    )
    list_filter = (*APIKeyModelAdmin.list_filter, "revoked", "plan")
    list_select_related = ("plan",)
    autocomplete_fields = ("plan",)
    actions = ("revoke_keys",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        """The library's, plus usage and webhooks on an existing key's page."""
        fields = tuple(super().get_readonly_fields(request, obj))
        return (*fields, "usage_history", "webhooks") if obj is not None else fields

    def get_urls(self) -> list[Any]:
        """The key's webhooks page beside its change page."""
        info = (self.model._meta.app_label, self.model._meta.model_name)
        own = [
            path(
                "<path:object_id>/webhooks/",
                self.admin_site.admin_view(self._webhooks),
                name="{}_{}_webhooks".format(*info),
            )
        ]
        return own + super().get_urls()

    def _webhooks(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return webhooks_view(self, request, object_id)

    # -- The key, shown once ---------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Any, form: Any = None, change: bool = False):
        """Assign a new key its secret; kept on the request for response_add only."""
        if obj.pk:
            obj.save()
            return
        request._new_api_key = self.model.objects.assign_key(obj)  # type: ignore[attr-defined]
        obj.save()

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None):
        """A page with the new key, instead of the library's message (which Django's default
        message storage would put in a cookie) and a redirect."""
        raw = getattr(request, "_new_api_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"API key created for {obj.name}",
            "key": obj,
            "raw_key": raw,
            "change_url": reverse("admin:orders_api_clientapikey_change", args=[obj.pk]),
        }
        response = TemplateResponse(request, "orders_api/key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ClientAPIKey]) -> None:
        """Revoke at once: their next request gets 403."""
        for key in queryset.filter(revoked=False):
            key.revoked = True
            key.save(update_fields=["revoked"])
            self.log_change(request, key, "Revoked")
        self.message_user(request, "Revoked.")

    # -- Usage -----------------------------------------------------------------------------

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        """The page's keys with their usage, read from Redis in one round trip."""
        changelist = super().get_changelist_instance(request)
        keys = list(changelist.result_list)
        usage = key_usage([k.client_id for k in keys])
        for key in keys:
            key._usage = None if usage is None else usage.get(key.client_id)
        changelist.result_list = keys
        return changelist

    @staticmethod
    def _usage_of(key: Any) -> KeyUsage | None:
        if not hasattr(key, "_usage"):
            usage = key_usage([key.client_id])
            key._usage = None if usage is None else usage.get(key.client_id)
        return key._usage

    @admin.display(description="last used")
    def last_used(self, key: Any) -> str:
        """When the key last made a request (UTC)."""
        usage = self._usage_of(key)
        if usage is None:
            return "unavailable"
        return usage.last_used.strftime("%Y-%m-%d %H:%M:%S UTC") if usage.last_used else "never"

    @admin.display(description="requests today")
    def requests_today(self, key: Any) -> str:
        """Requests the key made today (UTC), refused ones included."""
        usage = self._usage_of(key)
        return "unavailable" if usage is None else str(usage.today()[0])

    @admin.display(description="429s today")
    def throttled_today(self, key: Any) -> str:
        """Requests of the key refused today for its rate, burst or quota."""
        usage = self._usage_of(key)
        return "unavailable" if usage is None else str(usage.today()[1])

    @admin.display(description="requests per day (last 14 days, UTC)")
    def usage_history(self, key: Any) -> str:
        """A bar per day: requests, of which 429s."""
        usage = self._usage_of(key)
        if usage is None:
            return "Usage is unavailable: Redis does not answer."
        days = usage.history()
        top = max([n for _, n, _ in days] + [1])
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td style='text-align:right'>{}</td><td style='text-align:right'>{}"
            "</td><td><div style='background:#79aec8;height:10px;width:{}px'></div></td></tr>",
            ((d.isoformat(), n, t, round(200 * n / top)) for d, n, t in days),
        )
        return format_html(
            "<table class='usage-history'><thead><tr><th>Day</th><th>Requests</th><th>429s</th>"
            "<th></th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @admin.display(description="webhooks")
    def webhooks(self, key: Any) -> str:
        """A link to the key's webhook endpoints and their delivery attempts."""
        url = reverse("admin:orders_api_clientapikey_webhooks", args=[key.pk])
        return format_html('<a href="{}">Webhook endpoints and deliveries</a>', url)
