"""/ops/orders/: orders by status or customer, and one order's whole life (actions elsewhere)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from operations import selectors
from operations.cursors import BadCursor, decode_cursor, encode_cursor
from operations.forms import OrderSearchForm
from operations.parts import attempt
from operations.views.order_actions import ORDER_ACTIONS
from operations.web import money, ops_render, pretty, rows_of, staff_required
from pipeline.domain import Order
from pipeline.ports import Page
from pipeline.statuses import OrderStatus

# Where staff start: the orders that wait for a person.
DEFAULT_STATUS = OrderStatus.MANUAL_INTERVENTION


def _order_row(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "customer": order.customer_name,
        "status": str(order.status),
        "order_date": order.order_date,
        "last_updated": order.last_updated,
        "reason": order.status_reason,
        "total": money(order.total) if order.total is not None else "",
        "lines": ", ".join(f"{line.quantity} x {line.item_name}" for line in order.lines),
    }


def _query(**params: str) -> str:
    return "?" + urlencode({k: v for k, v in params.items() if v})


@staff_required
def orders_view(request: HttpRequest) -> HttpResponse:
    """Orders in one status (StatusIndex) or of one customer (CustomerIndex), newest first,
    a page at a time by DynamoDB cursor; an order id goes straight to its page."""
    form = OrderSearchForm(request.GET or None)
    order_id = customer = ""
    if form.is_valid():
        order_id = form.cleaned_data["order_id"]
        customer = form.cleaned_data["customer"]
    raw_status = request.GET.get("status") or DEFAULT_STATUS
    try:
        status = OrderStatus(raw_status)
    except ValueError:
        messages.error(request, f"Unknown status {raw_status!r}: showing {DEFAULT_STATUS}.")
        status = DEFAULT_STATUS
    after = request.GET.get("after", "")
    page_size = settings.OPS_ORDERS_PAGE_SIZE

    search_error = None
    if order_id:
        found = attempt(lambda: selectors.order_by_id(order_id))
        if found.error is None and found.value is not None:
            return redirect("operations:order", order_id=order_id)
        if found.error is None:
            messages.warning(request, f"No order with id {order_id}.")
        search_error = found.error

    try:
        cursor = decode_cursor(after)
    except BadCursor:
        messages.error(request, "That page link is not valid any more: showing the first page.")
        cursor, after = None, ""

    def load() -> Page:
        if customer:
            return selectors.orders_of_customer(customer, limit=page_size, cursor=cursor)
        return selectors.orders_in_status(status, limit=page_size, cursor=cursor)

    page = attempt(load)
    rows = [_order_row(order) for order in page.value.items] if page.value else []
    next_cursor = encode_cursor(page.value.cursor) if page.value else ""
    scope = {"customer": customer} if customer else {"status": str(status)}
    return ops_render(
        request,
        "operations/orders.html",
        {
            "form": form,
            "statuses": [str(s) for s in OrderStatus],
            "status": str(status),
            "customer": customer,
            "rows": rows,
            "error": page.error or search_error,
            "next_url": _query(**scope, after=next_cursor) if next_cursor else "",
            "first_url": _query(**scope) if after else "",
            "page_size": page_size,
            "searching": bool(customer),
        },
        title=f"Orders of customer {customer}" if customer else f"Orders: {status}",
        crumbs=[("Orders", None)],
    )


def _execution_rows(order: Order) -> list[dict[str, Any]]:
    rows = []
    for run in selectors.order_workflow_runs(order):
        described = run.described
        if described is None:
            rows.append({"attempt": run.attempt, "name": run.name, "status": "NOT STARTED"})
            continue
        rows.append(
            {
                "attempt": run.attempt,
                "name": run.name,
                "arn": described.get("executionArn", ""),
                "status": described.get("status", ""),
                "start": described.get("startDate"),
                "stop": described.get("stopDate"),
                "input": pretty(_json_or_text(described.get("input"))),
                "output": pretty(_json_or_text(described.get("output"))),
                "error": described.get("error", ""),
                "cause": described.get("cause", ""),
            }
        )
    return rows


def _json_or_text(raw: Any) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@staff_required
def order_detail_view(request: HttpRequest, order_id: str) -> HttpResponse:
    """One order: lines, reservation, payment, shipment, rejection, history, workflow runs."""
    found = attempt(lambda: selectors.order_by_id(order_id))
    if found.error is None and found.value is None:
        return ops_render(
            request,
            "operations/order_detail.html",
            {"order_id": order_id, "missing": True, "audit": selectors.order_audit(order_id)},
            title=f"No order {order_id}",
            crumbs=[("Orders", reverse("operations:orders")), (order_id, None)],
            status=404,
        )
    order: Order | None = found.value
    executions = attempt(lambda: _execution_rows(order)) if order else None
    actions = [a for a in ORDER_ACTIONS.values() if order and order.status in a.allowed]
    reservation = dict(order.reservation or {}) if order else {}
    reserved_lines = reservation.pop("Lines", []) if reservation else []
    if "Total" in reservation:
        # DynamoDB keeps 37.50 as 37.5: money is shown with its two places.
        reservation["Total"] = money(reservation["Total"])
    return ops_render(
        request,
        "operations/order_detail.html",
        {
            "order_id": order_id,
            "order": order,
            "error": found.error,
            "executions": executions,
            "actions": actions,
            "reservation_rows": rows_of(reservation),
            "reserved_lines": reserved_lines,
            "payment_rows": rows_of(order.payment) if order else [],
            "shipment_rows": rows_of(order.shipment) if order else [],
            "address_rows": rows_of(order.shipping_address) if order else [],
            "extra_rows": rows_of(order.extra) if order else [],
            "audit": selectors.order_audit(order_id),
        },
        title=f"Order {order_id}",
        crumbs=[("Orders", reverse("operations:orders")), (order_id, None)],
    )
