"""Reservation: one transaction takes a PENDING order's stock, or the order is rejected;
release gives it back."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pipeline.domain import CURRENCY, Order, OrderLine, StepOutcome, utc_now
from pipeline.errors import (
    InsufficientStock,
    InvalidTransition,
    Shortage,
    describe_shortages,
    find_shortages,
)
from pipeline.ports import OrderStore, ReservationStore
from pipeline.statuses import HOLDS_STOCK, OrderStatus


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
    *, store: ReservationStore, order_id: str, now: str | None = None, order: Order | None = None
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


def _reserve_pending(store: ReservationStore, order: Order, now: str) -> ReservationOutcome:
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
    store: OrderStore,
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
    store: ReservationStore,
    order_id: str,
    target: OrderStatus = OrderStatus.PAYMENT_FAILED,
    reason: str,
    now: str | None = None,
    set_fields: Mapping[str, Any] | None = None,
    attempt: int | None = None,
) -> StepOutcome:
    """Give back exactly what the order reserved and move it to `target` (writing
    `set_fields` with it), once: an order that holds no stock (never reserved, or released
    already), or given `attempt` is no longer on it, is returned unchanged.
    """
    order = store.order_get(order_id)
    if order.status not in HOLDS_STOCK:
        return StepOutcome(order, changed=False)
    lines = [
        OrderLine(line["ItemName"], int(line["Quantity"]))
        for line in (order.reservation or {}).get("Lines", [])
    ]
    try:
        released = store.release(
            order_id,
            lines,
            target,
            reason,
            now or utc_now(),
            set_fields=set_fields,
            attempt=attempt,
        )
    except InvalidTransition:
        return StepOutcome(store.order_get(order_id), changed=False)
    return StepOutcome(released, changed=True)
