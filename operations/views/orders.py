"""/ops/orders/: orders by status or customer, one order's whole life, and staff actions."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from operations.audit import Action
from operations.cursors import BadCursor, decode_cursor, encode_cursor
from operations.forms import OrderSearchForm, ReasonForm, ResolveShippedForm
from operations.models import AuditLogEntry
from operations.status import attempt
from operations.web import carry_out, money, ops_render, pretty, rows_of, staff_required
from pipeline import wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import Order, execution_name
from pipeline.errors import InvalidTransition, OrderNotFound
from pipeline.fulfilment import fulfilment_requeue_stranded
from pipeline.orders import order_cancel, order_resolve_shipped, order_resubmit
from pipeline.statuses import OrderStatus, sources_of

# Where staff start: the orders that wait for a person.
DEFAULT_STATUS = OrderStatus.MANUAL_INTERVENTION


@dataclass(frozen=True)
class OrderAction:
    """A staff action on one order: its use case and the statuses it starts from."""

    slug: str
    label: str
    audit: str
    allowed: tuple[OrderStatus, ...]
    explain: str
    form: type[ReasonForm] | type[ResolveShippedForm]
    call: Callable[[DynamoStore, str, str, str], Order]


def _sources(target: OrderStatus) -> tuple[OrderStatus, ...]:
    # The statuses an action is offered in come from the one definition of the rules; the use
    # case enforces them again when it writes.
    return tuple(sorted(sources_of(target)))


ORDER_ACTIONS: dict[str, OrderAction] = {
    action.slug: action
    for action in (
        OrderAction(
            "resubmit",
            "Resubmit",
            Action.ORDER_RESUBMIT,
            _sources(OrderStatus.PENDING),
            "The order goes back to PENDING and through the whole pipeline again "
            "(reservation, payment, shipping).",
            ReasonForm,
            lambda store, order_id, actor, reason: order_resubmit(
                store=store, order_id=order_id, actor=actor
            ),
        ),
        OrderAction(
            "cancel",
            "Cancel",
            Action.ORDER_CANCEL,
            _sources(OrderStatus.CANCELLED),
            "The order becomes CANCELLED; stock it reserved goes back to the inventory in "
            "the same transaction.",
            ReasonForm,
            lambda store, order_id, actor, reason: order_cancel(
                store=store, order_id=order_id, actor=actor
            ),
        ),
        OrderAction(
            "resolve-shipped",
            "Mark shipped",
            Action.ORDER_RESOLVE_SHIPPED,
            # Narrower than the status rules: a PAID order is still the workflow's to ship.
            (OrderStatus.MANUAL_INTERVENTION,),
            "You shipped this order by hand: it becomes SHIPPED with your note.",
            ResolveShippedForm,
            lambda store, order_id, actor, reason: order_resolve_shipped(
                store=store, order_id=order_id, actor=actor, note=reason
            ),
        ),
    )
}


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
        found = attempt(lambda: wiring.dynamo_store().order_find(order_id))
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

    def load() -> Any:
        store = wiring.dynamo_store()
        if customer:
            return store.orders_by_customer(customer, limit=page_size, cursor=cursor)
        return store.orders_by_status(status, limit=page_size, cursor=cursor)

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


def _executions(order: Order) -> list[dict[str, Any]]:
    workflow = wiring.fulfilment_workflow()
    rows = []
    for number in range(1, max(order.attempt, 1) + 1):
        name = execution_name(order.order_id, number)
        described = workflow.describe(name)
        if described is None:
            rows.append({"attempt": number, "name": name, "status": "NOT STARTED"})
            continue
        rows.append(
            {
                "attempt": number,
                "name": name,
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


def _audit_of(order_id: str) -> Any:
    return AuditLogEntry.objects.filter(order_id=order_id)[:50]


@staff_required
def order_detail_view(request: HttpRequest, order_id: str) -> HttpResponse:
    """One order: lines, reservation, payment, shipment, rejection, history, workflow runs."""
    found = attempt(lambda: wiring.dynamo_store().order_find(order_id))
    if found.error is None and found.value is None:
        return ops_render(
            request,
            "operations/order_detail.html",
            {"order_id": order_id, "missing": True, "audit": _audit_of(order_id)},
            title=f"No order {order_id}",
            crumbs=[("Orders", reverse("operations:orders")), (order_id, None)],
            status=404,
        )
    order: Order | None = found.value
    executions = attempt(lambda: _executions(order)) if order else None
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
            "audit": _audit_of(order_id),
        },
        title=f"Order {order_id}",
        crumbs=[("Orders", reverse("operations:orders")), (order_id, None)],
    )


@staff_required
@require_http_methods(["GET", "POST"])
def order_action_view(request: HttpRequest, order_id: str, action: str) -> HttpResponse:
    """Confirm a staff action with a reason (GET), then carry it out through its use case."""
    spec = ORDER_ACTIONS.get(action)
    if spec is None:
        raise Http404(f"No action {action}")
    form = spec.form(request.POST or None)
    if request.method == "POST" and form.is_valid():
        reason = form.cleaned_data["reason"]
        allowed = " or ".join(spec.allowed)
        carry_out(
            request,
            action=spec.audit,
            order_id=order_id,
            reason=reason,
            run=lambda: spec.call(
                wiring.dynamo_store(), order_id, request.user.get_username(), reason
            ),
            success=lambda order: f"{spec.label}: order {order_id} is now {order.status}.",
            refusals={
                InvalidTransition: lambda exc: (
                    f"order {order_id} is {exc.current}; {spec.label.lower()} needs {allowed}."
                ),
                OrderNotFound: lambda exc: f"there is no order {order_id}.",
            },
            detail=lambda order: {"status": str(order.status)},
        )
        return redirect("operations:order", order_id=order_id)
    current = attempt(lambda: wiring.dynamo_store().order_find(order_id))
    return ops_render(
        request,
        "operations/confirm.html",
        {
            "form": form,
            "explain": spec.explain,
            "submit_label": spec.label,
            "subject": order_id,
            "subject_status": current.value.status if current.value else None,
            "allowed": [str(s) for s in spec.allowed],
            "error": current.error,
            "cancel_url": reverse("operations:order", args=[order_id]),
        },
        title=f"{spec.label} order {order_id}?",
        crumbs=[
            ("Orders", reverse("operations:orders")),
            (order_id, reverse("operations:order", args=[order_id])),
            (spec.label, None),
        ],
    )


@staff_required
@require_http_methods(["GET", "POST"])
def requeue_stranded_view(request: HttpRequest) -> HttpResponse:
    """Send RESERVED orders that have no workflow execution to the Orders queue again."""
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        carry_out(
            request,
            action=Action.REQUEUE_STRANDED,
            reason=form.cleaned_data["reason"],
            run=lambda: fulfilment_requeue_stranded(
                store=wiring.dynamo_store(),
                workflow=wiring.fulfilment_workflow(),
                queue=wiring.orders_queue(),
            ),
            success=lambda ids: (
                f"Re-queued {len(ids)} stranded order(s): {', '.join(ids)}."
                if ids
                else "No stranded orders: every RESERVED order has its workflow."
            ),
            refusals={},
            detail=lambda ids: {"order_ids": ids},
        )
        return redirect(reverse("operations:orders") + _query(status="RESERVED"))
    return ops_render(
        request,
        "operations/confirm.html",
        {
            "form": form,
            "explain": (
                "Every RESERVED order without a workflow execution is sent to the Orders queue "
                "again (its queue message was lost or purged). Safe to repeat: an order never "
                "gets two workflows. Celery beat also does this every few minutes."
            ),
            "submit_label": "Re-queue stranded orders",
            "cancel_url": reverse("operations:orders") + _query(status="RESERVED"),
        },
        title="Re-queue stranded RESERVED orders?",
        crumbs=[("Orders", reverse("operations:orders")), ("Re-queue stranded", None)],
    )
