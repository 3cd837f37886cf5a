"""Fulfilment: the hand-off to the workflow, payment, shipment, manual intervention, and
the re-sending of stranded reserved orders."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pipeline.domain import CURRENCY, Order, StepOutcome, execution_name, utc_now
from pipeline.errors import InvalidOrder, InvalidTransition, SupersededAttempt
from pipeline.ports import (
    Carriers,
    MessageQueue,
    OrderStore,
    PaymentGateway,
    ReservationStore,
    StartResult,
    Workflow,
)
from pipeline.reservation import inventory_release
from pipeline.statuses import HOLDS_STOCK, OrderStatus


@dataclass(frozen=True)
class FulfilmentMessage:
    """What an Orders queue message asks: start workflow run `run` of an order's `attempt`."""

    order_id: str
    attempt: int
    run: int = 1

    def as_body(self) -> dict[str, Any]:
        """The message body; run 1 is left out, so its messages read as they always have."""
        body: dict[str, Any] = {"OrderId": self.order_id, "Attempt": self.attempt}
        if self.run > 1:
            body["Run"] = self.run
        return body

    @property
    def execution_name(self) -> str:
        """The name of the execution this message starts (one per order, attempt and run)."""
        return execution_name(self.order_id, self.attempt, self.run)


def fulfilment_request(*, queue: MessageQueue, order: Order, run: int | None = None) -> str:
    """Send a reserved (or paid) order to the Orders queue for workflow run `run` (default: the
    order's current run); return the message id."""
    body, attributes = _fulfilment_message(order, run)
    return queue.send_json(body, attributes=attributes)


def fulfilment_requests(*, queue: MessageQueue, orders: Sequence[Order]) -> list[str | None]:
    """Send reserved orders to the Orders queue for their current runs, in as few calls as
    SQS allows; each one's message id, or None where SQS refused it. Raises if a call fails."""
    return queue.send_json_batch([_fulfilment_message(order) for order in orders])


def _fulfilment_message(
    order: Order, run: int | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The Orders queue's message for `order` and workflow run `run` (default: the order's
    current run): its body and its OrderId attribute."""
    message = FulfilmentMessage(order.order_id, order.attempt, run or order.workflow_run)
    return message.as_body(), {"OrderId": order.order_id}


def read_fulfilment_message(body: str) -> FulfilmentMessage:
    """The order, attempt and workflow run a queue message asks to fulfil; InvalidOrder if
    malformed. A message without Run (every message before runs existed) asks for run 1."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidOrder({"body": f"not JSON: {exc.msg}"}) from exc
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("OrderId"), str)
        or not data["OrderId"]
    ):
        raise InvalidOrder({"OrderId": "message must carry a non-empty string OrderId"})
    numbers: dict[str, int] = {}
    for field in ("Attempt", "Run"):
        value = data.get(field, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidOrder({field: "must be a positive whole number"})
        numbers[field] = value
    return FulfilmentMessage(data["OrderId"], numbers["Attempt"], numbers["Run"])


def parse_fulfilment_message(body: str) -> tuple[str, int]:
    """The order id and attempt a queue message asks to fulfil; InvalidOrder if malformed."""
    message = read_fulfilment_message(body)
    return message.order_id, message.attempt


def fulfilment_start(*, workflow: Workflow, body: str) -> StartResult:
    """Start the fulfilment workflow for a queue message; the execution name is derived from
    the order, attempt and run, so a message delivered twice never starts two workflows.
    """
    message = read_fulfilment_message(body)
    return workflow.start(message.execution_name, message.as_body())


PAID_STATUSES = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.MANUAL_INTERVENTION})


def payment_key(order: Order) -> str:
    """The gateway's idempotency key for an order's current attempt: one charge per attempt."""
    return attempt_payment_key(order.order_id, order.attempt)


def attempt_payment_key(order_id: str, attempt: int) -> str:
    """The gateway's idempotency key of an order's `attempt`."""
    return f"{order_id}:{attempt}"


SUPERSEDED = "SUPERSEDED"  # the Status a compensation step reports for a superseded attempt


def attempt_of(event: dict[str, Any]) -> int | None:
    """The Attempt a workflow task's input names (None: a run started without one)."""
    value = event.get("Attempt")
    return None if value is None else int(value)


def step_status(order: Order, attempt: int | None) -> str:
    """What a compensation step reports for the workflow to route on: the order's status, or
    SUPERSEDED when the order moved on from the run's attempt."""
    return SUPERSEDED if superseded(order, attempt) else str(order.status)


def superseded(order: Order, attempt: int | None) -> bool:
    """Whether a workflow step of `attempt` comes after the order moved on to a later attempt
    (resubmitted and reserved again): such a step must leave the order alone. Steps that carry
    no attempt (a workflow started before attempts were passed) are never superseded."""
    return attempt is not None and order.attempt != attempt


def payment_charge(
    *,
    store: OrderStore,
    gateway: PaymentGateway,
    order_id: str,
    retry_count: int = 0,
    attempt: int | None = None,
    now: str | None = None,
) -> Order:
    """Charge a RESERVED order and record the payment (PAID). A retry after a recorded payment
    returns it without charging again. Raises PaymentDeclined, PaymentGatewayUnavailable, or
    SupersededAttempt when the order moved on from the workflow's `attempt`.

    The gateway is idempotent by key (`<OrderId>:<Attempt>`): a retry after a lost answer gets
    the same charge, and whoever gives the order's stock back later asks the gateway, by that
    key, whether money was taken. So nothing is written before the charge: one consistent read
    checks the order is still this attempt's and unpaid.
    """
    order = store.order_get(order_id)
    if superseded(order, attempt):
        raise SupersededAttempt(order_id, attempt or 0, order.attempt)
    if order.payment and order.status in PAID_STATUSES:
        return order
    if order.status != OrderStatus.RESERVED:
        raise InvalidTransition(order_id, order.status, str(OrderStatus.PAID))
    key = payment_key(order)
    charge = gateway.charge(
        amount=order.total or Decimal("0"),
        currency=(order.reservation or {}).get("Currency", CURRENCY),
        token=order.payment_token,
        idempotency_key=key,
        attempt=retry_count,
    )
    try:
        return store.order_transition(
            order_id,
            OrderStatus.PAID,
            f"Payment approved, transaction {charge.transaction_id}",
            now or utc_now(),
            expected=[OrderStatus.RESERVED],
            set_fields={"Payment": charge.as_item()},
            attempt=order.attempt,
        )
    except InvalidTransition:
        current = store.order_get(order_id)
        paid = (current.payment or {}).get("TransactionId") == charge.transaction_id
        if current.status in PAID_STATUSES and paid:
            return current  # this write landed before (its answer was lost): nothing to do
        # Staff cancelled the order while the gateway was charging it (or it moved on to a new
        # attempt): give the money back.
        refund = gateway.refund(charge.transaction_id)
        store.order_transition(
            order_id,
            current.status,
            f"Payment {charge.transaction_id} refunded ({refund}): order was {current.status}",
            now or utc_now(),
            expected=[current.status],
        )
        if current.attempt != order.attempt:
            raise SupersededAttempt(order_id, order.attempt, current.attempt) from None
        raise


def payment_compensate(
    *,
    store: ReservationStore,
    gateway: PaymentGateway,
    order_id: str,
    reason: str,
    attempt: int | None = None,
    now: str | None = None,
) -> StepOutcome:
    """After the payment step failed: give the stock back (PAYMENT_FAILED) and refund any
    charge the gateway made for the attempt. An order that was paid after all is returned
    unchanged, so the workflow routes it on to shipping; running this twice changes nothing.

    A compensation of a superseded `attempt` (its retry arrives after the order was
    resubmitted and reserved again) releases nothing: the stock held is the new attempt's.
    It only settles a refund still due for its own attempt's charge.
    """
    order = store.order_get(order_id)
    if superseded(order, attempt):
        owed_key = (order.refund_due or {}).get("IdempotencyKey")
        if owed_key == attempt_payment_key(order_id, attempt or 0):
            order = _settle_refund(store, gateway, order, now or utc_now())
        return StepOutcome(order, changed=False)
    changed = False
    if order.status in HOLDS_STOCK:
        # The payment step may have charged this attempt before it failed: the refund of
        # whatever the gateway took under the attempt's key is owed before it is made, so a
        # crash between the two leaves it on the order, where the next run (or staff) finds it.
        now = now or utc_now()
        released = inventory_release(
            store=store,
            order_id=order_id,
            target=OrderStatus.PAYMENT_FAILED,
            reason=reason,
            now=now,
            set_fields={"RefundDue": {"IdempotencyKey": payment_key(order), "At": now}},
            attempt=attempt,
        )
        order, changed = released.order, released.changed
    if order.refund_due:
        order = _settle_refund(store, gateway, order, now or utc_now())
    return StepOutcome(order, changed)


def _settle_refund(store: OrderStore, gateway: PaymentGateway, order: Order, now: str) -> Order:
    """Refund the charge an order's RefundDue names, if the gateway made one, and record it."""
    due = order.refund_due or {}
    charge = gateway.find_charge(str(due.get("IdempotencyKey", "")))
    fields: dict[str, object] = {}
    if charge is not None:
        fields["Refund"] = {
            "TransactionId": charge.transaction_id,
            "RefundId": gateway.refund(charge.transaction_id),
            "Amount": charge.amount,
            "Currency": charge.currency,
            "RefundedAt": now,
        }
    return store.order_set_fields(
        order.order_id, fields, expected=[order.status], remove_fields=["RefundDue"]
    )


def shipment_create(
    *,
    store: OrderStore,
    carriers: Carriers,
    order_id: str,
    attempt: int | None = None,
    now: str | None = None,
) -> Order:
    """Book a shipment for a PAID order and record it (SHIPPED); a retry after it was recorded
    returns it. Raises CarrierUnavailable, AddressRejected, or SupersededAttempt when the order
    moved on from the workflow's `attempt`.
    """
    order = store.order_get(order_id)
    if superseded(order, attempt):
        raise SupersededAttempt(order_id, attempt or 0, order.attempt)
    if order.status == OrderStatus.SHIPPED and order.shipment:
        return order
    if order.status != OrderStatus.PAID:
        raise InvalidTransition(order_id, order.status, str(OrderStatus.SHIPPED))
    shipment = carriers.book(
        total_value=order.total or Decimal("0"),
        units=sum(line.quantity for line in order.lines),
        address=order.shipping_address,
    )
    try:
        return store.order_transition(
            order_id,
            OrderStatus.SHIPPED,
            f"Shipped with {shipment.carrier} {shipment.service}, "
            f"tracking {shipment.tracking_number}",
            now or utc_now(),
            expected=[OrderStatus.PAID],
            set_fields={"Shipment": shipment.as_item()},
            attempt=attempt,
        )
    except InvalidTransition:
        current = store.order_get(order_id)
        if superseded(current, attempt):
            raise SupersededAttempt(order_id, attempt or 0, current.attempt) from None
        if current.status == OrderStatus.SHIPPED:
            return current
        raise


def order_flag_for_review(
    *,
    store: OrderStore,
    order_id: str,
    reason: str,
    attempt: int | None = None,
    now: str | None = None,
) -> StepOutcome:
    """Move a paid order that could not ship to MANUAL_INTERVENTION, once. An order that
    shipped after all (the shipping step's answer was lost), or that moved on from the
    workflow's `attempt`, is returned unchanged."""
    order = store.order_get(order_id)
    if superseded(order, attempt) or order.status in (
        OrderStatus.MANUAL_INTERVENTION,
        OrderStatus.SHIPPED,
    ):
        return StepOutcome(order, changed=False)
    try:
        flagged = store.order_transition(
            order_id,
            OrderStatus.MANUAL_INTERVENTION,
            reason,
            now or utc_now(),
            expected=[OrderStatus.PAID],
            attempt=attempt,
        )
    except InvalidTransition:
        current = store.order_get(order_id)
        if superseded(current, attempt):
            return StepOutcome(current, changed=False)
        raise
    return StepOutcome(flagged, changed=True)


def failure_reason(prefix: str, error: str | None, cause: str | None) -> str:
    """A StatusReason from a Step Functions Catch's Error and Cause (Lambda's JSON cause)."""
    message = cause or ""
    if cause:
        try:
            parsed = json.loads(cause)
        except (json.JSONDecodeError, TypeError):
            parsed = None
        if isinstance(parsed, dict):
            message = str(parsed.get("errorMessage") or message)
    detail = f"{error}: {message}" if error and message else (error or message or "unknown error")
    return f"{prefix}: {detail}"[:1000]


def fulfilment_requeue_stranded(
    *,
    store: OrderStore,
    workflow: Workflow,
    queue: MessageQueue,
    min_age_seconds: float = 0.0,
    max_requeues: int | None = None,
    max_orders: int | None = None,
    on_examined: Callable[[int], None] | None = None,
) -> list[str]:
    """Send every RESERVED order that has no workflow execution (of its current run) to the
    Orders queue again.

    An order is stranded when its queue message was lost (a local runtime restart: the local
    SQS keeps nothing on disk) or purged. Re-sending is safe: the execution name is derived from
    the order, so an order whose message was only late still gets one workflow. Orders reserved
    less than `min_age_seconds` ago are left alone (their message may be on its way), and an
    order already re-sent `max_requeues` times is left for an operator: its message keeps
    failing, and sending more would only fill the dead-letter queue.

    An order whose execution exists but died (failed, timed out, aborted) is left alone here:
    pipeline/sweeps.py starts it again under a new run, or releases it.

    At most `max_orders` RESERVED orders are examined (one DescribeExecution each), so a run's
    cost is bounded however many orders wait; `on_examined` hears the running count, for a
    progress bar.
    """
    requeued = []
    cursor = None
    cutoff = time.time() - min_age_seconds
    examined = 0
    while True:
        page = store.orders_by_status(OrderStatus.RESERVED, limit=100, cursor=cursor)
        for order in page.items:
            if max_orders is not None and examined >= max_orders:
                return requeued
            examined += 1
            if on_examined is not None:
                on_examined(examined)
            if min_age_seconds and _timestamp(order.last_updated) > cutoff:
                continue
            if max_requeues is not None and order.requeue_count >= max_requeues:
                continue
            name = execution_name(order.order_id, order.attempt, order.workflow_run)
            if workflow.describe(name) is None:
                fulfilment_request(queue=queue, order=order)
                store.order_count_requeue(order.order_id, utc_now())
                requeued.append(order.order_id)
        if not page.cursor:
            return requeued
        cursor = page.cursor


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
