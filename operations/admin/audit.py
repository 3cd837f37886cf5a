"""The audit log in the admin: browse and filter (user, action, object, date), export as CSV;
nothing may be added, changed or deleted (the database refuses it too)."""

from __future__ import annotations

import csv
import json
from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import URLPattern, path

from operations.models import AuditLogEntry

CSV_COLUMNS = (
    "id",
    "at",
    "completed_at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "order_id",
    "item_name",
    "outcome",
    "reason",
    "message",
    "before",
    "after",
    "detail",
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Lists and details, no add, change or delete."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Rows come from the portal's actions only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Shown, never edited."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A trail that can be edited proves nothing."""
        return False


class Echo:
    """A file-like object csv.writer writes one line at a time to, for streaming."""

    def write(self, value: str) -> str:
        """Hand the line back."""
        return value


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(ReadOnlyAdmin):
    """Who did what to which object, when, with the values before and after, and how it ended."""

    change_list_template = "admin/operations/auditlogentry/change_list.html"
    list_display = ("at", "actor", "action", "object_type", "object_id", "outcome", "reason")
    list_filter = ("action", "outcome", "object_type", ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("actor", "object_id", "order_id", "item_name", "reason", "message")
    search_help_text = "Who, the object's key (order id, item name, message id), reason or message."
    date_hierarchy = "at"
    readonly_fields = (
        "at",
        "completed_at",
        "user",
        "actor",
        "action",
        "object_type",
        "object_id",
        "order_id",
        "item_name",
        "outcome",
        "reason",
        "message",
        "before",
        "after",
        "detail",
    )

    def get_urls(self) -> list[URLPattern]:
        """The CSV export next to the changelist."""
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_view),
            name="operations_auditlogentry_export",
        )
        return [export, *super().get_urls()]

    def export_view(self, request: HttpRequest) -> HttpResponse:
        """The entries the changelist shows with the same search and filters, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        changelist = self.get_changelist_instance(request)
        rows = changelist.get_queryset(request).values_list(*CSV_COLUMNS)
        writer = csv.writer(Echo())

        def lines() -> Any:
            yield writer.writerow(CSV_COLUMNS)
            for row in rows.iterator(chunk_size=500):
                yield writer.writerow([_cell(value) for value in row])

        response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        return response


def _cell(value: Any) -> str:
    """A value as a CSV cell: JSON for maps and lists, and text a spreadsheet will not run as
    a formula (a leading =, +, - or @ gets a quote in front)."""
    if value is None:
        return ""
    text = (
        json.dumps(value, sort_keys=True, default=str)
        if isinstance(value, dict | list)
        else str(value)
    )
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
