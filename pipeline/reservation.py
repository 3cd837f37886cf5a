"""Reservation: one transaction takes a PENDING order's stock, or the order is rejected;
release gives it back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from pipeline.domain import CURRENCY, InventoryItem, Order, OrderLine, StepOutcome, utc_now
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


@dataclass
class StockSnapshot:
    """The inventory rows of a whole stream batch's orders, read in one call before any is
    handled: each order's prices and stock pre-check come from it instead of a read of its own.

    A reservation never rests on it: the transaction's own conditions decide, and a
    reservation takes its units off the snapshot so the next order of the batch sees them gone.
    A rejection does not rest on the batch's first read either: a line the snapshot finds short
    is read again (`refresh`), once per item and batch, unless a refused transaction already
    reported the item's stock (`learn`). So a restock during the batch is seen, as with a read
    per order.
    """

    rows: dict[str, InventoryItem]
    asked: frozenset[str] = field(default_factory=frozenset)
    fresh: set[str] = field(default_factory=set)  # read again during the batch

    def rows_of(self, names: Iterable[str]) -> dict[str, InventoryItem]:
        """The rows of those of `names` that exist, as the snapshot has them now."""
        return {name: self.rows[name] for name in names if name in self.rows}

    def covers(self, names: Iterable[str]) -> bool:
        """Whether every name was part of the read (a name absent from `rows` does not exist)."""
        return all(name in self.asked for name in names)

    def take(self, lines: Iterable[OrderLine]) -> None:
        """Count the units a reservation just took as gone."""
        for line in lines:
            row = self.rows.get(line.item_name)
            if row is not None:
                self.rows[line.item_name] = replace(row, stock=row.stock - line.quantity)

    def learn(self, shortages: Iterable[Shortage]) -> None:
        """Take the stock a refused transaction found (a fresh read) over the snapshot's."""
        for short in shortages:
            row = self.rows.get(short.item_name)
            if short.available is None:
                self.rows.pop(short.item_name, None)
            elif row is not None:
                self.rows[short.item_name] = replace(row, stock=short.available)
            self.fresh.add(short.item_name)

    def refresh(self, store: ReservationStore, names: Iterable[str]) -> None:
        """Read again those of `names` not read again yet in this batch."""
        stale = [name for name in dict.fromkeys(names) if name not in self.fresh]
        if not stale:
            return
        rows = store.inventory_get_many(stale)
        for name in stale:
            if name in rows:
                self.rows[name] = rows[name]
            else:
                self.rows.pop(name, None)
        self.fresh.update(stale)


def stock_snapshot(store: ReservationStore, orders: Iterable[Order]) -> StockSnapshot:
    """One read of every inventory row the PENDING ones among `orders` need."""
    names = frozenset(
        line.item_name for order in orders if order.status == OrderStatus.PENDING
        for line in order.lines
    )  # fmt: skip
    return StockSnapshot(store.inventory_get_many(names) if names else {}, names)


def inventory_reserve(
    *,
    store: ReservationStore,
    order_id: str,
    now: str | None = None,
    order: Order | None = None,
    stock: StockSnapshot | None = None,
) -> ReservationOutcome:
    """Reserve stock for every line of a PENDING order in one transaction, or reject it naming
    every short or unknown line. Safe to call again for the same order: it never reserves twice.

    `order` may be the stream record's image of the order, which saves a read: the reservation
    is conditional on that image's status and attempt, and a stale image is read again.
    `stock` may be the stream batch's inventory rows (`stock_snapshot`), which saves another.
    """
    if order is None:
        order = store.order_get(order_id)
    now = now or utc_now()
    for _ in range(3):
        if order.status != OrderStatus.PENDING:
            return ReservationOutcome(order, reserved_now=False)
        try:
            return _reserve_pending(store, order, now, stock)
        except InvalidTransition:
            # Another delivery got there first, or the image was old: look at the order now.
            order = store.order_get(order_id)
    return ReservationOutcome(order, reserved_now=False)


def _reserve_pending(
    store: ReservationStore, order: Order, now: str, snapshot: StockSnapshot | None
) -> ReservationOutcome:
    order_id = order.order_id
    names = [line.item_name for line in order.lines]
    if snapshot is not None and snapshot.covers(names):
        stock = snapshot.rows_of(names)
        short = _shortages(order, stock)
        if short:  # before rejecting, the short lines' stock as it is now
            snapshot.refresh(store, (s.item_name for s in short))
            stock = snapshot.rows_of(names)
            short = _shortages(order, stock)
    else:
        stock = store.inventory_get_many(names)
        short = _shortages(order, stock)
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
        if snapshot is not None:
            snapshot.learn(exc.shortages)
        rejected = order_reject(store=store, order_id=order_id, shortages=exc.shortages, now=now)
        return ReservationOutcome(rejected.order, reserved_now=False, rejected_now=rejected.changed)
    if snapshot is not None:
        snapshot.take(order.lines)
    return ReservationOutcome(reserved, reserved_now=True)


def _shortages(order: Order, stock: Mapping[str, InventoryItem]) -> list[Shortage]:
    return find_shortages(
        ((line.item_name, line.quantity) for line in order.lines),
        {name: row.stock for name, row in stock.items()},
    )


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
