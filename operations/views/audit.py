"""/ops/audit/: the audit log of staff actions, newest first, filterable."""

from __future__ import annotations

from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse

from operations import selectors
from operations.models import AuditLogEntry
from operations.web import ops_render, staff_required

PAGE_SIZE = 50


@staff_required
def audit_view(request: HttpRequest) -> HttpResponse:
    """Entries filtered by action, outcome, order id, item or actor."""
    filters = {
        "action": request.GET.get("action", ""),
        "outcome": request.GET.get("outcome", ""),
        "order_id": request.GET.get("order_id", "").strip(),
        "item_name": request.GET.get("item_name", "").strip(),
        "actor": request.GET.get("actor", "").strip(),
    }
    entries = selectors.audit_entries(**filters)
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    query = urlencode({k: v for k, v in filters.items() if v})
    return ops_render(
        request,
        "operations/audit.html",
        {
            "page": page,
            "filters": filters,
            "query": query,
            "actions": AuditLogEntry.Action.choices,
            "outcomes": AuditLogEntry.Outcome.choices,
        },
        title="Audit log",
        crumbs=[("Audit log", None)],
    )
