"""The pipeline's use cases: each is one step of an order's life, its collaborators passed in."""

from __future__ import annotations

import contextlib
import json
import time
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pipeline.adapters.dynamodb import DynamoStore, InventoryItem
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
    validate_item_name,
    validate_payment_token,
    validate_shipping_address,
)
from pipeline.errors import (
    InsufficientStock,
    InvalidInventoryItem,
    InvalidOrder,
    InvalidTransition,
    InventoryItemExists,
    InventoryItemNotFound,
    MessageNotFound,
    Shortage,
    describe_shortages,
    find_shortages,
)
from pipeline.payments import MockPaymentGateway, refund_charge
from pipeline.shipping import MockCarriers
from pipeline.statuses import HOLDS_STOCK, OrderStatus

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


def inventory_reserve(
    *, store: DynamoStore, order_id: str, now: str | None = None, order: Order | None = None
) -> ReservationOutcome:
    """Reserve stock for every line of a PENDING order in one transaction, or reject it naming
    every short or unknown line. Safe to call again for the same order: it never reserves twice.

    `order` may be the stream record's image of the order, which saves a read: the reservation
    is conditional on that image's status and attempt, and a stale image is read again.
    """
    if order is None:
        order = store.order_get(order_id)
    now = now or utc_now()
    for _ in range(3):
        if order.status != OrderStatus.PENDING:
            return ReservationOutcome(order, reserved_now=False)
        try:
            return _reserve_pending(store, order, now)
        except InvalidTransition:
            # Another delivery got there first, or the image was old: look at the order now.
            order = store.order_get(order_id)
    return ReservationOutcome(order, reserved_now=False)


def _reserve_pending(store: DynamoStore, order: Order, now: str) -> ReservationOutcome:
    order_id = order.order_id
    stock = store.inventory_get_many(line.item_name for line in order.lines)
    short = find_shortages(
        ((line.item_name, line.quantity) for line in order.lines),
        {name: row.stock for name, row in stock.items()},
    )
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
        reserved = store.reserve(order, reservation, reason, now)
    except InsufficientStock as exc:
        rejected = order_reject(store=store, order_id=order_id, shortages=exc.shortages, now=now)
        return ReservationOutcome(rejected.order, reserved_now=False, rejected_now=rejected.changed)
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
    if order.status not in HOLDS_STOCK:
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
    report: Callable[[ReplayResult], None] | None = None,
    visibility: int = 60,
) -> ReplayResult:
    """Move messages from the DLQ back to the Orders queue: send first, delete after, so a
    crash in between duplicates a message (harmless: one workflow per order) but never loses it.

    `progress` hears of each message moved; `report` gets the running totals after every
    message looked at. Messages received but not moved (skipped, failed to send, or past
    `limit`) are made visible again at the end, so a partial replay hides nothing for long.
    """
    moved = failed = skipped = 0
    held: list[QueueMessage] = []
    seen: set[str] = set()
    looped = False
    while not looped and (limit is None or moved < limit):
        # Every message received stays hidden for `visibility` seconds, so the loop ends when
        # each one has been looked at once, even those that stay behind.
        batch = dlq.receive(max_messages=10, wait_seconds=0, visibility=visibility)
        if not batch:
            break
        for message in batch:
            if message.message_id in seen:
                # A message left behind is visible again (the run outlasted its visibility
                # timeout): every message has been looked at, so stop rather than go round.
                looped = True
                held.append(message)
                continue
            seen.add(message.message_id)
            if limit is not None and moved >= limit:
                held.append(message)
                continue
            if accept is not None and not accept(message):
                skipped += 1
                held.append(message)
            else:
                try:
                    target.send_raw(message.body)
                except Exception:
                    # The message stays in the DLQ, visible again once the loop is over.
                    failed += 1
                    held.append(message)
                else:
                    dlq.delete(message)
                    moved += 1
                    if progress:
                        progress(moved, message)
            if report:
                report(ReplayResult(moved, failed, skipped))
    if held:
        # Best effort: a message SQS does not release shows again after `visibility` anyway.
        with contextlib.suppress(Exception):
            dlq.release(held)
    return ReplayResult(moved, failed, skipped)


def fulfilment_requeue_stranded(
    *,
    store: DynamoStore,
    workflow: FulfilmentWorkflow,
    queue: OrderQueue,
    min_age_seconds: float = 0.0,
    max_requeues: int | None = None,
) -> list[str]:
    """Send every RESERVED order that has no workflow execution to the Orders queue again.

    An order is stranded when its queue message was lost (a local runtime restart: the local
    SQS keeps nothing on disk) or purged. Re-sending is safe: the execution name is derived from
    the order, so an order whose message was only late still gets one workflow. Orders reserved
    less than `min_age_seconds` ago are left alone (their message may be on its way), and an
    order already re-sent `max_requeues` times is left for an operator: its message keeps
    failing, and sending more would only fill the dead-letter queue.
    """
    requeued = []
    cursor = None
    cutoff = time.time() - min_age_seconds
    while True:
        page = store.orders_by_status(OrderStatus.RESERVED, limit=100, cursor=cursor)
        for order in page.items:
            if min_age_seconds and _timestamp(order.last_updated) > cutoff:
                continue
            if max_requeues is not None and order.requeue_count >= max_requeues:
                continue
            if workflow.describe(execution_name(order.order_id, order.attempt)) is None:
                fulfilment_request(queue=queue, order=order)
                store.order_count_requeue(order.order_id, utc_now())
                requeued.append(order.order_id)
        if not page.cursor:
            return requeued
        cursor = page.cursor


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# == Operations portal: staff actions on inventory and the dead-letter queue ======================
# Added for the portal's /ops/ pages (inventory, DLQ); the order actions above serve them too.

MAX_STOCK = 1_000_000_000
MAX_PRICE = Decimal("1000000000")
MAX_DESCRIPTION = 500


def _checked_stock(raw: object, *, allow_negative: bool = False) -> int:
    # bool is an int in Python; a form's True must not mean one unit.
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError("must be a whole number")
    if not allow_negative and raw < 0:
        raise ValueError("must be 0 or more")
    if abs(raw) > MAX_STOCK:
        raise ValueError(f"must be at most {MAX_STOCK:,} in size")
    return raw


def _checked_price(raw: object) -> Decimal:
    # Floats are refused: 0.1 + 0.2 is not 0.3, and DynamoDB refuses them too.
    if isinstance(raw, bool) or not isinstance(raw, Decimal | int | str):
        raise ValueError("must be a decimal number such as 19.99")
    try:
        value = Decimal(str(raw).strip())
    except ArithmeticError:
        raise ValueError("must be a decimal number such as 19.99") from None
    if not value.is_finite():
        raise ValueError("must be a decimal number such as 19.99")
    if value < 0:
        raise ValueError("must be 0 or more")
    if value > MAX_PRICE:
        raise ValueError(f"must be at most {MAX_PRICE:,}")
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -2 and value != value.quantize(Decimal("0.01")):
        raise ValueError("must have at most 2 decimal places")
    return value.quantize(Decimal("0.01"))


def _checked_description(raw: object) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise ValueError("must be text")
    cleaned = raw.strip()
    if len(cleaned) > MAX_DESCRIPTION:
        raise ValueError(f"must be at most {MAX_DESCRIPTION} characters")
    if any(unicodedata.category(ch) == "Cc" and ch not in "\n\r\t" for ch in cleaned):
        raise ValueError("must not contain control characters")
    return cleaned


def _validated(checks: Mapping[str, tuple[Callable[[Any], Any], object]]) -> dict[str, Any]:
    """Run each field's check; InvalidInventoryItem naming every field that fails."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for field, (check, raw) in checks.items():
        try:
            values[field] = check(raw)
        except ValueError as exc:
            errors[field] = str(exc)
    if errors:
        raise InvalidInventoryItem(errors)
    return values


def inventory_create(
    *,
    store: DynamoStore,
    item_name: object,
    stock: object,
    price: object,
    description: object = "",
) -> InventoryItem:
    """Add an item to the Inventory table; never overwrite one (InventoryItemExists).

    Raises InvalidInventoryItem naming every bad field: the name as orders may use it,
    stock a whole number >= 0, price a decimal >= 0 with at most 2 places.
    """
    values = _validated(
        {
            "ItemName": (validate_item_name, item_name),
            "Stock": (_checked_stock, stock),
            "Price": (_checked_price, price),
            "Description": (_checked_description, description),
        }
    )
    item = InventoryItem(
        values["ItemName"], values["Stock"], values["Price"], values["Description"]
    )
    if not store.inventory_put_if_absent(item):
        raise InventoryItemExists(item.item_name)
    return item


def inventory_adjust_stock(*, store: DynamoStore, item_name: str, delta: object) -> InventoryItem:
    """Add `delta` (may be negative) to an item's stock in one atomic update, so reservations
    running at the same time are never overwritten; return the row as written.

    Raises InvalidInventoryItem (delta not a non-zero whole number), InventoryItemNotFound, or
    InsufficientStock when the stock would go below zero (nothing changes then).
    """
    value = _validated({"Delta": (lambda raw: _checked_stock(raw, allow_negative=True), delta)})[
        "Delta"
    ]
    if value == 0:
        raise InvalidInventoryItem({"Delta": "must not be 0"})
    try:
        return store.inventory_adjust(item_name, value)
    except InsufficientStock as exc:
        if exc.shortages and exc.shortages[0].unknown:
            raise InventoryItemNotFound(item_name) from exc
        raise


def inventory_update_details(
    *, store: DynamoStore, item_name: str, price: object, description: object
) -> InventoryItem:
    """Change an item's price and description without touching its stock."""
    values = _validated(
        {"Price": (_checked_price, price), "Description": (_checked_description, description)}
    )
    return store.inventory_update_details(
        item_name, price=values["Price"], description=values["Description"]
    )


def inventory_remove(*, store: DynamoStore, item_name: str) -> InventoryItem:
    """Delete an item; return it as it was. Orders that reserved it keep their reservation,
    and stock they give back later recreates the row (release uses if_not_exists).
    """
    return store.inventory_delete_existing(item_name)


@dataclass(frozen=True)
class DeadLetter:
    """A message seen in the DLQ, with the order it names and that order's current status."""

    message_id: str
    body: str
    receive_count: int
    sent_at: datetime | None
    first_received_at: datetime | None
    order_id: str | None = None
    attempt: int | None = None
    order_status: str | None = None  # None: no OrderId, no such order, or not looked up
    lookup_error: str | None = None


def _epoch_ms(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def dlq_peek(
    *,
    dlq: OrderQueue,
    store: DynamoStore | None = None,
    max_messages: int = 50,
    visibility: int = 30,
) -> list[DeadLetter]:
    """Look at up to `max_messages` DLQ messages without removing them.

    SQS has no real peek: each message is received (hidden for `visibility` seconds, so one
    look sees each message once) and then made visible again at once. Its receive count goes
    up by one; the DLQ has no redrive, so that changes nothing. With a `store`, each message's
    order is looked up; a lookup failure is reported on the message, not raised.
    """
    received: list[QueueMessage] = []
    seen: dict[str, QueueMessage] = {}
    try:
        while len(seen) < max_messages:
            want = min(10, max_messages - len(seen))
            batch = dlq.receive(max_messages=want, wait_seconds=0, visibility=visibility)
            if not batch:
                break
            received.extend(batch)
            if any(message.message_id in seen for message in batch):
                break  # one came round again (a slow look): every message has been seen
            for message in batch:
                seen[message.message_id] = message
    finally:
        if received:
            dlq.release(received)
    letters = []
    store_error: str | None = None
    for message in seen.values():
        order_id = attempt = status = error = None
        # A body that is not a fulfilment request is shown as it is, without an order.
        with contextlib.suppress(InvalidOrder):
            order_id, attempt = parse_fulfilment_message(message.body)
        if order_id is not None and store is not None:
            if store_error is None:
                try:
                    order = store.order_find(order_id, consistent=False)
                    status = str(order.status) if order else None
                    error = None if order else "no such order"
                except Exception as exc:  # the page still lists the messages
                    store_error = f"{type(exc).__name__}: {exc}"
            error = store_error or error
        letters.append(
            DeadLetter(
                message_id=message.message_id,
                body=message.body,
                receive_count=message.receive_count,
                sent_at=_epoch_ms(message.attributes.get("SentTimestamp")),
                first_received_at=_epoch_ms(
                    message.attributes.get("ApproximateFirstReceiveTimestamp")
                ),
                order_id=order_id,
                attempt=attempt,
                order_status=status,
                lookup_error=error,
            )
        )
    return letters


def dlq_discard(*, dlq: OrderQueue, message_id: str, visibility: int = 30) -> QueueMessage:
    """Delete one DLQ message by its id and return it (for the audit log).

    A receipt handle from an earlier look may be stale, so the message is received afresh;
    the others received on the way are made visible again. MessageNotFound if it is not there.
    """
    passed: list[QueueMessage] = []
    found: QueueMessage | None = None
    seen: set[str] = set()
    try:
        while found is None:
            batch = dlq.receive(max_messages=10, wait_seconds=0, visibility=visibility)
            if not batch or any(message.message_id in seen for message in batch):
                passed.extend(batch)
                break  # empty, or come round again: it is not there
            for message in batch:
                seen.add(message.message_id)
                if found is None and message.message_id == message_id:
                    found = message
                else:
                    passed.append(message)
        if found is None:
            raise MessageNotFound(message_id)
        dlq.delete(found)
        return found
    finally:
        if passed:
            dlq.release(passed)
