"""The audit log and DLQ replay jobs in the Django admin, read-only: nobody edits history."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from operations.models import AuditLogEntry, ReplayJob


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and details, no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows come from the portal's actions only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Shown, never edited."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """An audit trail that can be edited proves nothing."""
        return False


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdmin):
    """Who did what to which order or item, when, and how it ended."""

    list_display = ("at", "actor", "action", "order_id", "item_name", "outcome", "reason")
    list_filter = ("action", "outcome")
    search_fields = ("actor", "order_id", "item_name", "reason", "message")
    date_hierarchy = "at"


@admin.register(ReplayJob)
class ReplayJobAdmin(ReadOnlyAdmin):
    """DLQ replays: who asked, and what they moved."""

    list_display = ("created_at", "actor", "state", "moved", "failed", "skipped", "finished_at")
    list_filter = ("state",)
    search_fields = ("actor", "reason")
