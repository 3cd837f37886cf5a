"""The pipeline's use cases: each is one step of an order's life, its collaborators passed in."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.sqs import OrderQueue, QueueMessage
from pipeline.adapters.stepfunctions import FulfilmentWorkflow, StartResult
from pipeline.domain import (
    CURRENCY,
    Order,
    OrderLine,
    execution_name,
    parse_items,
    utc_now,
    validate_customer_name,
    validate_payment_token,
    validate_shipping_address,
)
from pipeline.errors import (
    InsufficientStock,
    InvalidOrder,
    InvalidTransition,
    Shortage,
    describe_shortages,
)
from pipeline.payments import MockPaymentGateway, refund_charge
from pipeline.shipping import MockCarriers
from pipeline.statuses import OrderStatus

# -- Submission -----------------------------------------------------------------------------------


def order_submit(
    *,
    store: DynamoStore,
    customer_name: object,
    items: object,
    client_id: str | None = None,
    payment_token: object = None,
    shipping_address: object = None,
    order_id: str | None = None,
    request_hash: str | None = None,
    now: str | None = None,
) -> Order:
    """Validate and write a new PENDING order (a conditional put: never an overwrite).

    Raises InvalidOrder with every field error, OrderAlreadyExists if the id is taken.
    """
    errors: dict[str, object] = {}

    def checked(validate: Callable[[Any], Any], raw: object) -> Any:
        try:
            return validate(raw)
        except InvalidOrder as exc:
            errors.update(exc.errors)
            return None

    name = checked(validate_customer_name, customer_name)
    lines = checked(parse_items, items)
    token = checked(validate_payment_token, payment_token)
    address = checked(validate_shipping_address, shipping_address)
    if errors or name is None or lines is None:
        raise InvalidOrder(errors)
    order = Order.new(
        customer_name=name,
        lines=lines,
        order_id=order_id,
        client_id=client_id,
        payment_token=token,
        shipping_address=address,
        request_hash=request_hash,
        now=now,
    )
    store.order_put_new(order)
    return order


@dataclass(frozen=True)
class StepOutcome:
    """An order after a step that may have happened before: `changed` says whether this call
    made the change (retried tasks and redelivered records must not count it twice)."""

    order: Order
    changed: bool


# -- Reservation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReservationOutcome:
    """What handling a PENDING order did, and whether it must go on to fulfilment."""

    order: Order
    reserved_now: bool
    rejected_now: bool = False

    @property
    def needs_fulfilment(self) -> bool:
        """The order holds stock and waits for payment: send it (again) to the queue."""
        return self.order.status == OrderStatus.RESERVED


def _shortages(lines: tuple[OrderLine, ...], stock: Mapping[str, Any]) -> list[Shortage]:
    result = []
    for line in lines:
        row = stock.get(line.item_name)
        if row is None:
            result.append(Shortage(line.item_name, line.quantity, None))
        elif row.stock < line.quantity:
            result.append(Shortage(line.item_name, line.quantity, row.stock))
    return result


def inventory_reserve(
    *, store: DynamoStore, order_id: str, now: str | None = None
) -> ReservationOutcome:
    """Reserve stock for every line of a PENDING order in one transaction, or reject it naming
    every short or unknown line. Safe to call again for the same order: it never reserves twice.
    """
    order = store.order_get(order_id)
    if order.status != OrderStatus.PENDING:
        return ReservationOutcome(order, reserved_now=False)
    now = now or utc_now()
    stock = store.inventory_get_many(line.item_name for line in order.lines)
    short = _shortages(order.lines, stock)
    if short:
        rejected = order_reject(store=store, order_id=order_id, shortages=short, now=now)
        return ReservationOutcome(rejected.order, reserved_now=False, rejected_now=rejected.changed)
    reserved_lines = []
    total = Decimal("0")
    for line in order.lines:
        price = stock[line.item_name].price
        total += price * line.quantity
        reserved_lines.append(
            {"ItemName": line.item_name, "Quantity": line.quantity, "UnitPrice": price}
        )
    reservation = {"Lines": reserved_lines, "Total": total, "Currency": CURRENCY, "ReservedAt": now}
    units = sum(line.quantity for line in order.lines)
    reason = f"Reserved {units} unit(s) across {len(order.lines)} item(s)"
    try:
        reserved = store.reserve(order_id, order.lines, reservation, reason, now)
    except InsufficientStock as exc:
        rejected = order_reject(store=store, order_id=order_id, shortages=exc.shortages, now=now)
        return ReservationOutcome(rejected.order, reserved_now=False, rejected_now=rejected.changed)
    except InvalidTransition:
        # Another delivery of the same stream record got there first.
        return ReservationOutcome(store.order_get(order_id), reserved_now=False)
    return ReservationOutcome(reserved, reserved_now=True)


def order_reject(
    *,
    store: DynamoStore,
    order_id: str,
    shortages: list[Shortage] | tuple[Shortage, ...],
    now: str | None = None,
) -> StepOutcome:
    """Move a PENDING order to REJECTED with a reason naming every short line; no stock moves."""
    try:
        rejected = store.order_transition(
            order_id,
            OrderStatus.REJECTED,
            describe_shortages(shortages),
            now or utc_now(),
            expected=[OrderStatus.PENDING],
            set_fields={"Rejection": [s.as_item() for s in shortages]},
        )
    except InvalidTransition:
        return StepOutcome(store.order_get(order_id), changed=False)
    return StepOutcome(rejected, changed=True)


def inventory_release(
    *,
    store: DynamoStore,
    order_id: str,
    target: OrderStatus = OrderStatus.PAYMENT_FAILED,
    reason: str,
    now: str | None = None,
) -> StepOutcome:
    """Give back exactly what the order reserved and move it to `target`, once: an order that
    holds no stock (never reserved, or released already) is returned unchanged.
    """
    order = store.order_get(order_id)
    if order.status != OrderStatus.RESERVED:
        return StepOutcome(order, changed=False)
    lines = [
        OrderLine(line["ItemName"], int(line["Quantity"]))
        for line in (order.reservation or {}).get("Lines", [])
    ]
    try:
        released = store.release(order_id, lines, target, reason, now or utc_now())
    except InvalidTransition:
        return StepOutcome(store.order_get(order_id), changed=False)
    return StepOutcome(released, changed=True)


# -- Fulfilment hand-off --------------------------------------------------------------------------


def fulfilment_request(*, queue: OrderQueue, order: Order) -> str:
    """Send a reserved order to the Orders queue; return the message id."""
    return queue.send_json(
        {"OrderId": order.order_id, "Attempt": order.attempt},
        attributes={"OrderId": order.order_id},
    )


def parse_fulfilment_message(body: str) -> tuple[str, int]:
    """The order id and attempt a queue message asks to fulfil; InvalidOrder if malformed."""
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
    attempt = data.get("Attempt", 1)
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise InvalidOrder({"Attempt": "must be a positive whole number"})
    return data["OrderId"], attempt


def fulfilment_start(*, workflow: FulfilmentWorkflow, body: str) -> StartResult:
    """Start the fulfilment workflow for a queue message; the execution name is derived from
    the order, so a message delivered twice never starts two workflows.
    """
    order_id, attempt = parse_fulfilment_message(body)
    return workflow.start(
        execution_name(order_id, attempt), {"OrderId": order_id, "Attempt": attempt}
    )


# -- Payment and shipping -------------------------------------------------------------------------


def payment_charge(
    *,
    store: DynamoStore,
    gateway: MockPaymentGateway,
    order_id: str,
    retry_count: int = 0,
    now: str | None = None,
) -> Order:
    """Charge a RESERVED order and record the payment (PAID). A retry after a recorded payment
    returns it without charging again. Raises PaymentDeclined or PaymentGatewayUnavailable.
    """
    order = store.order_get(order_id)
    if order.payment and order.status in (
        OrderStatus.PAID,
        OrderStatus.SHIPPED,
        OrderStatus.MANUAL_INTERVENTION,
    ):
        return order
    if order.status != OrderStatus.RESERVED:
        raise InvalidTransition(order_id, order.status, str(OrderStatus.PAID))
    charge = gateway.charge(
        amount=order.total or Decimal("0"),
        currency=(order.reservation or {}).get("Currency", CURRENCY),
        token=order.payment_token,
        idempotency_key=f"{order_id}:{order.attempt}",
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
        )
    except InvalidTransition:
        # Staff cancelled the order while the gateway was charging it: give the money back.
        refund = refund_charge(charge.transaction_id)
        current = store.order_get(order_id)
        store.order_transition(
            order_id,
            current.status,
            f"Payment {charge.transaction_id} refunded ({refund}): order was {current.status}",
            now or utc_now(),
            expected=[current.status],
        )
        raise


def shipment_create(
    *, store: DynamoStore, carriers: MockCarriers, order_id: str, now: str | None = None
) -> Order:
    """Book a shipment for a PAID order and record it (SHIPPED); a retry after it was recorded
    returns it. Raises CarrierUnavailable or AddressRejected.
    """
    order = store.order_get(order_id)
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
        )
    except InvalidTransition:
        current = store.order_get(order_id)
        if current.status == OrderStatus.SHIPPED:
            return current
        raise


def order_flag_for_review(
    *, store: DynamoStore, order_id: str, reason: str, now: str | None = None
) -> StepOutcome:
    """Move a paid order that could not ship to MANUAL_INTERVENTION, once."""
    order = store.order_get(order_id)
    if order.status == OrderStatus.MANUAL_INTERVENTION:
        return StepOutcome(order, changed=False)
    flagged = store.order_transition(
        order_id,
        OrderStatus.MANUAL_INTERVENTION,
        reason,
        now or utc_now(),
        expected=[OrderStatus.PAID],
    )
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


# -- Staff actions --------------------------------------------------------------------------------


def order_resubmit(
    *, store: DynamoStore, order_id: str, actor: str, now: str | None = None
) -> Order:
    """Send a REJECTED or PAYMENT_FAILED order through the pipeline again (PENDING)."""
    return store.order_transition(
        order_id,
        OrderStatus.PENDING,
        f"Resubmitted by {actor}",
        now or utc_now(),
        expected=[OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED],
        remove_fields=["Payment"],
    )


def order_cancel(*, store: DynamoStore, order_id: str, actor: str, now: str | None = None) -> Order:
    """Cancel an order that has not been paid; reserved stock is given back in the same step."""
    order = store.order_get(order_id)
    reason = f"Cancelled by {actor}"
    if order.status == OrderStatus.RESERVED:
        released = inventory_release(
            store=store, order_id=order_id, target=OrderStatus.CANCELLED, reason=reason, now=now
        )
        if not released.changed:
            raise InvalidTransition(order_id, released.order.status, str(OrderStatus.CANCELLED))
        return released.order
    return store.order_transition(
        order_id, OrderStatus.CANCELLED, reason, now or utc_now(), expected=[OrderStatus.PENDING]
    )


def order_resolve_shipped(
    *, store: DynamoStore, order_id: str, actor: str, note: str, now: str | None = None
) -> Order:
    """Staff shipped a MANUAL_INTERVENTION order by hand."""
    return store.order_transition(
        order_id,
        OrderStatus.SHIPPED,
        f"Shipped manually by {actor}: {note}",
        now or utc_now(),
        expected=[OrderStatus.MANUAL_INTERVENTION],
    )


# -- Dead-letter queue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayResult:
    """What a DLQ replay did."""

    moved: int
    failed: int
    skipped: int


def dlq_replay(
    *,
    dlq: OrderQueue,
    target: OrderQueue,
    limit: int | None = None,
    accept: Callable[[QueueMessage], bool] | None = None,
    progress: Callable[[int, QueueMessage], None] | None = None,
) -> ReplayResult:
    """Move messages from the DLQ back to the Orders queue: send first, delete after, so a
    crash in between duplicates a message (harmless: one workflow per order) but never loses it.
    """
    moved = failed = skipped = 0
    for message in dlq.drain():
        if limit is not None and moved >= limit:
            break
        if accept is not None and not accept(message):
            skipped += 1
            continue
        try:
            target.send_raw(message.body)
        except Exception:
            # The message stays in the DLQ and shows again after its visibility timeout.
            failed += 1
            continue
        dlq.delete(message)
        moved += 1
        if progress:
            progress(moved, message)
    return ReplayResult(moved, failed, skipped)


def fulfilment_requeue_stranded(
    *, store: DynamoStore, workflow: FulfilmentWorkflow, queue: OrderQueue
) -> list[str]:
    """Send every RESERVED order that has no workflow execution to the Orders queue again.

    An order is stranded when its queue message was lost (a local runtime restart: the local
    SQS keeps nothing on disk) or purged. Re-sending is safe: the execution name is derived from
    the order, so an order whose message was only late still gets one workflow.
    """
    requeued = []
    cursor = None
    while True:
        page = store.orders_by_status(OrderStatus.RESERVED, limit=100, cursor=cursor)
        for order in page.items:
            if workflow.describe(execution_name(order.order_id, order.attempt)) is None:
                fulfilment_request(queue=queue, order=order)
                requeued.append(order.order_id)
        if not page.cursor:
            return requeued
        cursor = page.cursor
