"""/ops/inventory/...: the old addresses of the inventory pages, now in the admin; each
redirects to its admin page (GET only: nothing changes on these addresses any more)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse
from django.views.decorators.http import require_GET

from operations.web import staff_required

ADMIN = "admin:operations_inventoryitem_"


@staff_required
@require_GET
def inventory_view(request: HttpRequest) -> HttpResponseRedirect:
    """The list."""
    return HttpResponseRedirect(reverse(ADMIN + "changelist"))


@staff_required
@require_GET
def inventory_create_view(request: HttpRequest) -> HttpResponseRedirect:
    """A new item."""
    return HttpResponseRedirect(reverse(ADMIN + "create"))


@staff_required
@require_GET
def inventory_adjust_view(request: HttpRequest, name: str) -> HttpResponseRedirect:
    """Restock an item."""
    return HttpResponseRedirect(reverse(ADMIN + "restock", args=[name]))


@staff_required
@require_GET
def inventory_edit_view(request: HttpRequest, name: str) -> HttpResponseRedirect:
    """Edit an item."""
    return HttpResponseRedirect(reverse(ADMIN + "edit", args=[name]))


@staff_required
@require_GET
def inventory_delete_view(request: HttpRequest, name: str) -> HttpResponseRedirect:
    """Delete an item."""
    return HttpResponseRedirect(reverse(ADMIN + "remove", args=[name]))
