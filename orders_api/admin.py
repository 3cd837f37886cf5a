"""Staff manage API clients here: keys (created, revoked, given an expiry) and usage plans."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from orders_api.models import ClientAPIKey, UsagePlan

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


@admin.register(ClientAPIKey)
class ClientAPIKeyAdmin(APIKeyModelAdmin):
    """The library's key admin (the key is shown once, on creation) plus each key's plan."""

    list_display = (*APIKeyModelAdmin.list_display, "plan")
    list_filter = (*APIKeyModelAdmin.list_filter, "revoked", "plan")
    list_select_related = ("plan",)
    autocomplete_fields = ("plan",)
