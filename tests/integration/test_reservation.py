"""Reservation, rejection and release against DynamoDB Local, including real concurrency."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from pipeline.errors import InvalidTransition, OrderAlreadyExists
from pipeline.orders import order_submit
from pipeline.reservation import inventory_release, inventory_reserve
from pipeline.staff_actions import order_cancel, order_resubmit
from pipeline.statuses import OrderStatus

pytestmark = pytest.mark.integration


def _item(store: DynamoStore, stock: int, price: str = "10.00") -> str:
    name = f"item-{uuid.uuid4().hex[:10]}"
    store.inventory_put(InventoryItem(name, stock, Decimal(price), "test item"))
    return name


def _stock(store: DynamoStore, name: str) -> int:
    row = store.inventory_get(name)
    assert row is not None
    return row.stock


def test_reserve_decrements_every_line_and_records_the_reservation(store: DynamoStore) -> None:
    # Given two items in stock and an order for 2 + 3 units
    laptop, mouse = _item(store, 5, "999.99"), _item(store, 10, "19.50")
    order = order_submit(
        store=store,
        customer_name="Ada",
        items=[{"ItemName": laptop, "Quantity": 2}, mouse, mouse, mouse],
    )
    # When the order is reserved
    outcome = inventory_reserve(store=store, order_id=order.order_id)
    # Then both stocks went down, the order is RESERVED with prices and the history grew
    assert outcome.reserved_now and outcome.needs_fulfilment
    assert (_stock(store, laptop), _stock(store, mouse)) == (3, 7)
    reserved = store.order_get(order.order_id)
    assert reserved.status == OrderStatus.RESERVED
    assert reserved.attempt == 1
    assert reserved.total == Decimal("999.99") * 2 + Decimal("19.50") * 3
    assert [h.status for h in reserved.history] == [OrderStatus.PENDING, OrderStatus.RESERVED]
    assert reserved.last_updated == reserved.history[-1].at


def test_a_short_line_rejects_the_whole_order_and_moves_no_stock(store: DynamoStore) -> None:
    # Given one plentiful item, one short item and one unknown item
    plenty, short = _item(store, 100), _item(store, 1)
    order = order_submit(
        store=store,
        customer_name="Bob",
        items=[{"ItemName": plenty, "Quantity": 5}, {"ItemName": short, "Quantity": 3}, "unicorn"],
    )
    # When the order is reserved
    outcome = inventory_reserve(store=store, order_id=order.order_id)
    # Then it is REJECTED naming the short and the unknown line, and no stock moved
    assert not outcome.reserved_now and not outcome.needs_fulfilment
    rejected = store.order_get(order.order_id)
    assert rejected.status == OrderStatus.REJECTED
    assert short in rejected.status_reason and "requested 3, available 1" in rejected.status_reason
    assert "unknown item 'unicorn'" in rejected.status_reason
    assert plenty not in rejected.status_reason
    assert {r["ItemName"] for r in rejected.rejection} == {short, "unicorn"}
    assert (_stock(store, plenty), _stock(store, short)) == (100, 1)


def test_reserving_twice_reserves_once(store: DynamoStore) -> None:
    # Given a reserved order (a stream record delivered twice calls reserve twice)
    name = _item(store, 10)
    order = order_submit(store=store, customer_name="Cy", items=[{"ItemName": name, "Quantity": 4}])
    first = inventory_reserve(store=store, order_id=order.order_id)
    # When it is reserved again
    second = inventory_reserve(store=store, order_id=order.order_id)
    # Then stock went down once, and the second call still asks for fulfilment (idempotent)
    assert first.reserved_now and not second.reserved_now
    assert second.needs_fulfilment
    assert _stock(store, name) == 6


def test_release_gives_back_exactly_once(store: DynamoStore) -> None:
    # Given a reserved order for 3 of an item with stock 10
    name = _item(store, 10)
    order = order_submit(store=store, customer_name="Di", items=[{"ItemName": name, "Quantity": 3}])
    inventory_reserve(store=store, order_id=order.order_id)
    # When release is called three times, two of them concurrently
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: inventory_release(
                    store=store, order_id=order.order_id, reason="Payment failed: declined"
                ),
                range(3),
            )
        )
    # Then the stock is back to 10 exactly, one call released, and PAYMENT_FAILED is recorded once
    assert _stock(store, name) == 10
    assert {r.order.status for r in results} == {OrderStatus.PAYMENT_FAILED}
    assert sum(r.changed for r in results) == 1
    final = store.order_get(order.order_id)
    assert [h.status for h in final.history].count(OrderStatus.PAYMENT_FAILED) == 1
    assert final.status_reason == "Payment failed: declined"


def test_release_of_a_never_reserved_order_changes_nothing(store: DynamoStore) -> None:
    # Given a rejected order
    name = _item(store, 0)
    order = order_submit(store=store, customer_name="Ed", items=[name])
    inventory_reserve(store=store, order_id=order.order_id)
    # When release is called
    result = inventory_release(store=store, order_id=order.order_id, reason="x")
    # Then it stays REJECTED and stock stays 0
    assert result.order.status == OrderStatus.REJECTED and not result.changed
    assert _stock(store, name) == 0


def test_fifty_concurrent_reservations_for_stock_ten_reserve_exactly_ten(
    store: DynamoStore,
) -> None:
    # Given an item with stock 10 and 50 pending orders for one unit each
    name = _item(store, 10)
    orders = [
        order_submit(store=store, customer_name=f"c{i}", items=[name]).order_id for i in range(50)
    ]
    observed: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            observed.append(_stock(store, name))

    watcher = threading.Thread(target=watch)
    watcher.start()
    # When 50 clients reserve at once
    try:
        with ThreadPoolExecutor(50) as pool:
            outcomes = list(
                pool.map(lambda oid: inventory_reserve(store=store, order_id=oid), orders)
            )
    finally:
        done.set()
        watcher.join()
    # Then exactly 10 are reserved, 40 rejected, stock is 0 and was never negative
    statuses = [store.order_get(oid).status for oid in orders]
    assert statuses.count(OrderStatus.RESERVED) == 10
    assert statuses.count(OrderStatus.REJECTED) == 40
    assert sum(o.reserved_now for o in outcomes) == 10
    assert _stock(store, name) == 0
    assert min(observed) >= 0


def test_concurrent_multi_line_orders_never_oversell_any_line(store: DynamoStore) -> None:
    # Given two items (stock 6 and 4) and 20 orders each wanting one of both
    a, b = _item(store, 6), _item(store, 4)
    orders = [
        order_submit(store=store, customer_name=f"m{i}", items=[a, b]).order_id for i in range(20)
    ]
    # When all reserve concurrently
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda oid: inventory_reserve(store=store, order_id=oid), orders))
    # Then exactly 4 (the smaller stock) are reserved, and both stocks moved by exactly 4
    reserved = [oid for oid in orders if store.order_get(oid).status == OrderStatus.RESERVED]
    assert len(reserved) == 4
    assert (_stock(store, a), _stock(store, b)) == (2, 0)


def test_submit_never_overwrites_an_order(store: DynamoStore) -> None:
    # Given an order with a chosen id
    order_id = str(uuid.uuid4())
    order_submit(store=store, customer_name="Fay", items=["x"], order_id=order_id)
    # When another order is submitted with the same id
    with pytest.raises(OrderAlreadyExists):
        order_submit(store=store, customer_name="Mallory", items=["y"], order_id=order_id)
    # Then the first is intact
    assert store.order_get(order_id).customer_name == "Fay"


def test_staff_cancel_of_a_reserved_order_gives_stock_back(store: DynamoStore) -> None:
    # Given a reserved order
    name = _item(store, 5)
    order = order_submit(
        store=store, customer_name="Gus", items=[{"ItemName": name, "Quantity": 2}]
    )
    inventory_reserve(store=store, order_id=order.order_id)
    # When staff cancel it
    cancelled = order_cancel(
        store=store, order_id=order.order_id, actor="staff@example.com", reason="test"
    )
    # Then it is CANCELLED and the stock is back
    assert cancelled.status == OrderStatus.CANCELLED
    assert _stock(store, name) == 5
    # And cancelling again is refused, not applied twice
    with pytest.raises(InvalidTransition):
        order_cancel(store=store, order_id=order.order_id, actor="staff@example.com", reason="test")
    assert _stock(store, name) == 5


def test_resubmitted_order_reserves_again_with_a_new_attempt(store: DynamoStore) -> None:
    # Given an order rejected for lack of stock, then restocked
    name = _item(store, 0)
    order = order_submit(store=store, customer_name="Hal", items=[name])
    inventory_reserve(store=store, order_id=order.order_id)
    store.inventory_adjust(name, 3)
    # When staff resubmit it and it is processed again
    order_resubmit(store=store, order_id=order.order_id, actor="staff", reason="test")
    outcome = inventory_reserve(store=store, order_id=order.order_id)
    # Then it is reserved as attempt 1 (its first reservation) and stock went down
    assert outcome.reserved_now
    assert outcome.order.attempt == 1
    assert _stock(store, name) == 2
    statuses = [h.status for h in outcome.order.history]
    assert statuses == ["PENDING", "REJECTED", "PENDING", "RESERVED"]


def test_a_stale_stream_image_never_reserves_on_old_data(store: DynamoStore) -> None:
    # Given an order that was reserved, failed payment and was resubmitted (attempt 1 done)
    name = _item(store, 10)
    order = order_submit(store=store, customer_name="Ivy", items=[name])
    first_image = store.order_get(order.order_id)  # PENDING, attempt 0
    inventory_reserve(store=store, order_id=order.order_id)
    inventory_release(store=store, order_id=order.order_id, reason="Payment failed: declined")
    order_resubmit(store=store, order_id=order.order_id, actor="staff", reason="test")
    # When the first INSERT's image (PENDING, attempt 0) is delivered again
    outcome = inventory_reserve(store=store, order_id=order.order_id, order=first_image)
    # Then the order is reserved as its second attempt, from its current state, once
    assert outcome.reserved_now
    current = store.order_get(order.order_id)
    assert current.attempt == 2 and outcome.order.attempt == 2
    assert current.status == OrderStatus.RESERVED
    assert [h.status for h in current.history] == [h.status for h in outcome.order.history]
    assert _stock(store, name) == 9
