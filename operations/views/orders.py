"""/ops/orders/ addresses: the orders live in the admin now (operations/admin/orders.py); these
send old links and bookmarks there, changing nothing (a POST lands on the action's page)."""

from __future__ import annotations

from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from operations.web import staff_required

# The old pages' action slugs that the admin names otherwise.
RENAMED_ACTIONS = {"resolve-shipped": "mark-shipped"}


@staff_required
def orders_view(request: HttpRequest) -> HttpResponseRedirect:
    """The admin's order list, with the old status and customer search carried over."""
    params = {}
    if request.GET.get("status"):
        params["status"] = request.GET["status"]
    search = request.GET.get("customer") or request.GET.get("order_id")
    if search:
        params["q"] = search
    target = reverse("admin:operations_order_changelist")
    return HttpResponseRedirect(target + (f"?{urlencode(params)}" if params else ""))


@staff_required
def order_detail_view(request: HttpRequest, order_id: str) -> HttpResponseRedirect:
    """The order's admin page."""
    return HttpResponseRedirect(reverse("admin:operations_order_change", args=[order_id]))


@staff_required
def order_action_view(request: HttpRequest, order_id: str, action: str) -> HttpResponseRedirect:
    """The action's confirmation page in the admin (a POST here changes nothing)."""
    slug = RENAMED_ACTIONS.get(action, action)
    return HttpResponseRedirect(reverse("admin:operations_order_act", args=[order_id, slug]))
