"""/ops/orders/: staff actions on orders, and the re-queue of stranded RESERVED orders.

Each action (resubmit, cancel, mark shipped, re-queue) is confirmed with a reason and carried
out by its use case.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from operations import selectors
from operations.audit import Action
from operations.forms import ReasonForm, ResolveShippedForm
from operations.parts import attempt
from operations.web import carry_out, ops_render, staff_required
from pipeline import wiring
from pipeline.domain import Order
from pipeline.errors import InvalidTransition, OrderNotFound
from pipeline.orders import order_cancel, order_resolve_shipped, order_resubmit
from pipeline.ports import ReservationStore
from pipeline.statuses import OrderStatus, sources_of


@dataclass(frozen=True)
class OrderAction:
    """A staff action on one order: its use case and the statuses it starts from."""

    slug: str
    label: str
    audit: str
    allowed: tuple[OrderStatus, ...]
    explain: str
    form: type[ReasonForm] | type[ResolveShippedForm]
    call: Callable[[ReservationStore, str, str, str], Order]


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
    current = attempt(lambda: selectors.order_by_id(order_id))
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
