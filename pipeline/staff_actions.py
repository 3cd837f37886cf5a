"""Staff actions on one order: cancel, resubmit, retry shipping, refund and release, mark shipped.

Each action is one conditional write (or one transaction) guarded by the order's status, so of
two staff members acting on the same order at once exactly one wins and the other gets
InvalidTransition naming the status the order has now. The staff member's name and reason go
into the order's own history (the entry's Actor and Reason), not only into the portal's audit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pipeline.domain import Order, OrderLine, utc_now
from pipeline.domain.orders import checked_text
from pipeline.errors import InvalidOrder, InvalidTransition
from pipeline.fulfilment import fulfilment_request, payment_key
from pipeline.ports import MessageQueue, OrderStore, PaymentGateway, ReservationStore
from pipeline.statuses import OrderStatus

MAX_REASON = 500
MAX_ACTOR = 150  # Django's username length
MAX_CARRIER = 100
MAX_TRACKING = 100
TRACKING_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._/-]*$")


def _checked(field: str, raw: object, max_length: int, *, line_breaks: bool = False) -> str:
    """A required text field trimmed and checked, or InvalidOrder naming it."""
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidOrder({field: "is required"})
    text = raw.strip()
    if len(text) > max_length:
        raise InvalidOrder({field: f"must be at most {max_length} characters"})
    try:
        return checked_text(text, line_breaks=line_breaks)
    except ValueError as exc:
        raise InvalidOrder({field: str(exc)}) from None


def checked_reason(reason: object) -> str:
    """The staff member's reason for an action, or InvalidOrder (required, at most 500)."""
    return _checked("reason", reason, MAX_REASON, line_breaks=True)


def checked_actor(actor: object) -> str:
    """Who acts (a staff username), or InvalidOrder: every staff change names a person."""
    return _checked("actor", actor, MAX_ACTOR)


def _reserved_lines(order: Order) -> list[OrderLine]:
    """Exactly what the order's reservation took from the inventory."""
    return [
        OrderLine(line["ItemName"], int(line["Quantity"]))
        for line in (order.reservation or {}).get("Lines", [])
    ]


def order_cancel(
    *,
    store: ReservationStore,
    order_id: str,
    actor: str,
    reason: str,
    now: str | None = None,
) -> Order:
    """Cancel an order that has not been paid (PENDING or RESERVED); stock it reserved goes
    back in the same transaction. InvalidTransition if it is paid or over already."""
    actor, reason = checked_actor(actor), checked_reason(reason)
    now = now or utc_now()
    text = f"Cancelled by staff: {reason}"
    order = store.order_get(order_id)
    # Twice at most: a PENDING order may be reserved by the stream between the read and the
    # write, and is then cancelled with its stock given back.
    for _ in range(2):
        try:
            if order.status == OrderStatus.RESERVED:
                return store.release(
                    order_id,
                    _reserved_lines(order),
                    OrderStatus.CANCELLED,
                    text,
                    now,
                    expected=[OrderStatus.RESERVED],
                    actor=actor,
                )
            return store.order_transition(
                order_id,
                OrderStatus.CANCELLED,
                text,
                now,
                expected=[OrderStatus.PENDING],
                actor=actor,
            )
        except InvalidTransition as exc:
            if exc.current != OrderStatus.RESERVED or order.status != OrderStatus.PENDING:
                raise
            order = store.order_get(order_id)
    raise InvalidTransition(order_id, order.status, str(OrderStatus.CANCELLED))


def order_resubmit(
    *,
    store: OrderStore,
    order_id: str,
    actor: str,
    reason: str,
    now: str | None = None,
) -> Order:
    """Send a REJECTED or PAYMENT_FAILED order through the pipeline again (PENDING): the
    stream reserves it like a new one, under a new attempt (so a new payment key)."""
    actor, reason = checked_actor(actor), checked_reason(reason)
    return store.order_transition(
        order_id,
        OrderStatus.PENDING,
        f"Resubmitted by staff: {reason}",
        now or utc_now(),
        expected=[OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED],
        remove_fields=["Payment"],
        actor=actor,
    )


def order_retry_shipping(
    *,
    store: OrderStore,
    queue: MessageQueue,
    order_id: str,
    actor: str,
    reason: str,
    now: str | None = None,
) -> Order:
    """Give a MANUAL_INTERVENTION order another shipping attempt through the pipeline.

    The order goes back to PAID under the next workflow run of its attempt (recorded in its
    WorkflowRun, as the PAID sweeper does) and that run is sent to the Orders queue: the new
    execution's payment step finds the order paid and charges nothing (the same attempt, the
    same payment key), then it ships or flags the order again. If the send is lost, the order
    is a PAID order whose run never started, which the PAID sweeper sends again.
    """
    actor, reason = checked_actor(actor), checked_reason(reason)
    now = now or utc_now()
    order = store.order_get(order_id)
    if order.status != OrderStatus.MANUAL_INTERVENTION:
        raise InvalidTransition(order_id, order.status, str(OrderStatus.PAID))
    run = order.workflow_run + 1
    record: Mapping[str, Any] = {
        "Attempt": order.attempt,
        "Run": run,
        "At": now,
        "Resends": 0,
        "Reason": f"shipping retried by {actor}",
    }
    moved = store.order_transition(
        order_id,
        OrderStatus.PAID,
        f"Shipping retried by staff (workflow run {run}): {reason}",
        now,
        expected=[OrderStatus.MANUAL_INTERVENTION],
        set_fields={"WorkflowRun": record},
        actor=actor,
    )
    fulfilment_request(queue=queue, order=moved, run=run)
    return moved


def order_refund_release(
    *,
    store: ReservationStore,
    gateway: PaymentGateway,
    order_id: str,
    actor: str,
    reason: str,
    now: str | None = None,
) -> Order:
    """Refund a MANUAL_INTERVENTION order's charge and give its stock back (REFUNDED).

    One transaction gives the stock back and moves the order to REFUNDED with the refund it
    owes (RefundDue); then the gateway refunds the charge (idempotent by transaction: a second
    refund names the same one) and the refund is recorded in place of the debt. A crash
    between the two leaves a REFUNDED order still owing: running the action again settles it.
    """
    actor, reason = checked_actor(actor), checked_reason(reason)
    now = now or utc_now()
    order = store.order_get(order_id)
    if order.status == OrderStatus.REFUNDED and order.refund_due:
        return _settle(store, gateway, order, now)
    if order.status != OrderStatus.MANUAL_INTERVENTION:
        raise InvalidTransition(order_id, order.status, str(OrderStatus.REFUNDED))
    due: dict[str, Any] = {
        "IdempotencyKey": payment_key(order),
        "At": now,
        "By": actor,
    }
    if order.payment and order.payment.get("TransactionId"):
        due["TransactionId"] = order.payment["TransactionId"]
    released = store.release(
        order_id,
        _reserved_lines(order),
        OrderStatus.REFUNDED,
        f"Refunded and stock released by staff: {reason}",
        now,
        set_fields={"RefundDue": due},
        expected=[OrderStatus.MANUAL_INTERVENTION],
        actor=actor,
    )
    return _settle(store, gateway, released, now)


def _settle(store: OrderStore, gateway: PaymentGateway, order: Order, now: str) -> Order:
    """Refund the charge a REFUNDED order owes and record it (Refund replaces RefundDue)."""
    due = order.refund_due or {}
    transaction_id = due.get("TransactionId")
    if not transaction_id:
        charge = gateway.find_charge(str(due.get("IdempotencyKey", "")))
        transaction_id = charge.transaction_id if charge else None
    fields: dict[str, Any] = {}
    if transaction_id:
        payment = order.payment or {}
        fields["Refund"] = {
            "TransactionId": transaction_id,
            "RefundId": gateway.refund(str(transaction_id)),
            "Amount": payment.get("Amount", order.total),
            "Currency": payment.get("Currency", (order.reservation or {}).get("Currency")),
            "RefundedAt": now,
            "By": due.get("By"),
        }
    return store.order_set_fields(
        order.order_id, fields, expected=[OrderStatus.REFUNDED], remove_fields=["RefundDue"]
    )


def order_mark_shipped(
    *,
    store: OrderStore,
    order_id: str,
    actor: str,
    reason: str,
    carrier: str,
    tracking_number: str,
    now: str | None = None,
) -> Order:
    """Staff shipped a MANUAL_INTERVENTION order by hand: SHIPPED, with its carrier and
    tracking number recorded as the order's Shipment."""
    errors: dict[str, object] = {}
    checked: dict[str, str] = {}
    for field, raw, check in (
        ("actor", actor, checked_actor),
        ("reason", reason, checked_reason),
        ("carrier", carrier, lambda v: _checked("carrier", v, MAX_CARRIER)),
        (
            "tracking_number",
            tracking_number,
            lambda v: _checked("tracking_number", v, MAX_TRACKING),
        ),
    ):
        try:
            checked[field] = check(raw)
        except InvalidOrder as exc:
            errors.update(exc.errors)
    tracking = checked.get("tracking_number")
    if tracking is not None and not TRACKING_RE.fullmatch(tracking):
        errors["tracking_number"] = "may hold letters, digits, spaces and . _ / -"
    if errors:
        raise InvalidOrder(errors)
    now = now or utc_now()
    shipment = {
        "Carrier": checked["carrier"],
        "Service": "shipped by hand",
        "TrackingNumber": checked["tracking_number"],
        "ShippedAt": now,
        "ShippedBy": checked["actor"],
    }
    return store.order_transition(
        order_id,
        OrderStatus.SHIPPED,
        f"Shipped by hand with {checked['carrier']}, tracking {checked['tracking_number']}: "
        f"{checked['reason']}",
        now,
        expected=[OrderStatus.MANUAL_INTERVENTION],
        set_fields={"Shipment": shipment},
        actor=checked["actor"],
    )
