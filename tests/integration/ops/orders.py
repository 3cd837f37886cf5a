"""Orders in a chosen status, made through the pipeline's own use cases (no hand-written items)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem, Order, OrderLine, utc_now
from pipeline.errors import Shortage
from pipeline.fulfilment import order_flag_for_review
from pipeline.orders import order_submit
from pipeline.reservation import inventory_release, inventory_reserve, order_reject
from pipeline.staff_actions import order_cancel
from pipeline.statuses import OrderStatus


def unique(prefix: str) -> str:
    """A name no other test uses (the tables live for the whole session)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def make_item(store: DynamoStore, *, stock: int = 100, price: str = "10.00") -> str:
    """A fresh inventory item; return its name."""
    name = unique("item")
    store.inventory_put(InventoryItem(name, stock, Decimal(price), "test item"))
    return name


def make_order(
    store: DynamoStore,
    status: OrderStatus = OrderStatus.PENDING,
    *,
    customer: str | None = None,
    lines: Sequence[tuple[str, int]] | None = None,
    order_date: str | None = None,
) -> Order:
    """An order walked to `status` the way the pipeline walks it."""
    if lines is None:
        lines = [(make_item(store), 2)]
    order = order_submit(
        store=store,
        customer_name=customer or unique("customer"),
        items=[{"ItemName": name, "Quantity": qty} for name, qty in lines],
        now=order_date,
    )
    oid = order.order_id
    if status == OrderStatus.PENDING:
        return store.order_get(oid)
    if status == OrderStatus.REJECTED:
        return order_reject(store=store, order_id=oid, shortages=[Shortage("x", 1, 0)]).order
    if status == OrderStatus.CANCELLED:
        return order_cancel(store=store, order_id=oid, actor="setup", reason="test")
    reserved = inventory_reserve(store=store, order_id=oid).order
    assert reserved.status == OrderStatus.RESERVED, reserved.status_reason
    if status == OrderStatus.RESERVED:
        return reserved
    if status == OrderStatus.PAYMENT_FAILED:
        return inventory_release(store=store, order_id=oid, reason="declined in setup").order
    paid = store.order_transition(
        oid,
        OrderStatus.PAID,
        "paid in setup",
        reserved.last_updated,
        expected=[OrderStatus.RESERVED],
        set_fields={"Payment": {"TransactionId": "txn_setup", "Amount": reserved.total}},
    )
    if status == OrderStatus.PAID:
        return paid
    if status == OrderStatus.MANUAL_INTERVENTION:
        return order_flag_for_review(store=store, order_id=oid, reason="carrier refused").order
    if status == OrderStatus.SHIPPED:
        return store.order_transition(
            oid, OrderStatus.SHIPPED, "shipped in setup", paid.last_updated
        )
    raise AssertionError(f"no way to make a {status} order")


def stranded_order(store: DynamoStore, item: str) -> Order:
    """A RESERVED order whose queue message was lost: written as such, so the stream (which
    handles new PENDING orders) never sends it to the queue."""
    now = utc_now()
    order = replace(
        Order.new(customer_name=unique("Stranded"), lines=[OrderLine(item, 1)], now=now),
        status=OrderStatus.RESERVED,
        attempt=1,
        reservation={
            "Lines": [{"ItemName": item, "Quantity": 1, "UnitPrice": Decimal("10.00")}],
            "Total": Decimal("10.00"),
            "Currency": "USD",
            "ReservedAt": now,
        },
    )
    store.order_put_new(order)
    return order


def wait_for_status(
    store: DynamoStore, order_id: str, want: OrderStatus, timeout: float = 60
) -> Order:
    """The order once it reaches `want`; AssertionError naming where it stuck otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        order = store.order_get(order_id)
        if order.status == want:
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} stuck in {order.status}: {order.status_reason}")
        time.sleep(0.3)
