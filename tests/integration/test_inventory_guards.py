"""Staff inventory changes racing each other and the pipeline, on DynamoDB Local: guarded edits,
absolute stock, restocks during reservations, and deleted items that must not come back."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from pipeline.errors import InvalidInventoryItem, InventoryChangedMeanwhile, PipelineError
from pipeline.inventory import (
    inventory_adjust_stock,
    inventory_create,
    inventory_edit,
    inventory_remove,
    inventory_set_stock,
)
from pipeline.orders import order_submit
from pipeline.reservation import inventory_reserve
from pipeline.staff_actions import order_cancel
from pipeline.statuses import OrderStatus

pytestmark = pytest.mark.integration


def _name() -> str:
    return f"guard-{uuid.uuid4().hex[:10]}"


def _together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment (a barrier releases them); each result or error."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except PipelineError as exc:
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_editors_one_wins_the_other_is_told(store: DynamoStore) -> None:
    # Given an item two editors opened at the same time
    name = _name()
    inventory_create(store=store, item_name=name, stock=7, price="10.00", description="old")
    seen = store.inventory_get(name)
    assert seen is not None

    # When both save different prices at once, many times over
    for round_ in range(5):
        current = store.inventory_get(name)
        assert current is not None
        first, second = _together(
            lambda c=current, r=round_: inventory_edit(
                store=store, seen=c, price=f"{11 + r}.00", description="first"
            ),
            lambda c=current, r=round_: inventory_edit(
                store=store,
                seen=c,
                price=f"{50 + r}.00",
                description="second",
                low_stock_threshold=2,
            ),
        )
        # Then exactly one wrote; the other wrote nothing and was told, with the winner's row
        outcomes = [first, second]
        won = [o for o in outcomes if isinstance(o, InventoryItem)]
        lost = [o for o in outcomes if isinstance(o, InventoryChangedMeanwhile)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert store.inventory_get(name) == won[0] == lost[0].current
    # And stock was never touched by any edit
    final = store.inventory_get(name)
    assert final is not None and final.stock == 7


def test_restock_during_reservations_loses_nothing(store: DynamoStore) -> None:
    # Given an item with 40 units and 30 orders of one unit each
    name = _name()
    inventory_create(store=store, item_name=name, stock=40, price="1.00")
    orders = [
        order_submit(store=store, customer_name="Racer", items=[name]).order_id for _ in range(30)
    ]

    # When the orders are reserved while staff restock +3 twenty times, all at once
    calls: list[Callable[[], Any]] = [
        (lambda oid=oid: inventory_reserve(store=store, order_id=oid)) for oid in orders
    ]
    calls += [lambda: inventory_adjust_stock(store=store, item_name=name, delta=3)] * 20
    results = _together(*calls)

    # Then every call succeeded and every unit is accounted for: 40 + 60 - 30
    assert not [r for r in results if isinstance(r, PipelineError)], results
    reserved = [store.order_get(oid).status for oid in orders]
    assert reserved == [OrderStatus.RESERVED] * 30
    final = store.inventory_get(name)
    assert final is not None and final.stock == 40 + 60 - 30


def test_absolute_stock_never_undoes_a_reservation(store: DynamoStore) -> None:
    # Given an editor who saw stock 10, and an order reserving 4 before they save
    name = _name()
    inventory_create(store=store, item_name=name, stock=10, price="2.50")
    order = order_submit(
        store=store, customer_name="Buyer", items=[{"ItemName": name, "Quantity": 4}]
    )
    inventory_reserve(store=store, order_id=order.order_id)

    # When they set the stock to 25 on what they saw
    with pytest.raises(InventoryChangedMeanwhile) as stale:
        inventory_set_stock(store=store, item_name=name, seen_stock=10, stock=25)

    # Then nothing was written and they are shown the current stock; on it, the set works
    assert stale.value.current.stock == 6
    assert inventory_set_stock(store=store, item_name=name, seen_stock=6, stock=25).stock == 25
    # And setting what is already there writes nothing; bad values are refused
    assert inventory_set_stock(store=store, item_name=name, seen_stock=25, stock=25).stock == 25
    with pytest.raises(InvalidInventoryItem):
        inventory_set_stock(store=store, item_name=name, seen_stock=25, stock=-1)


def test_set_stock_racing_a_reservation_never_loses_units(store: DynamoStore) -> None:
    # Given an item with stock 5 and an order of 2, racing a staff set to 9 on the seen 5
    for _ in range(5):
        name = _name()
        inventory_create(store=store, item_name=name, stock=5, price="1.00")
        order = order_submit(
            store=store, customer_name="Racer", items=[{"ItemName": name, "Quantity": 2}]
        )
        _reserved, setting = _together(
            lambda o=order: inventory_reserve(store=store, order_id=o.order_id),
            lambda n=name: inventory_set_stock(store=store, item_name=n, seen_stock=5, stock=9),
        )
        # Then either the set came first (9 - 2 = 7) or it was refused (5 - 2 = 3)
        stock = store.inventory_get(name).stock  # type: ignore[union-attr]
        if isinstance(setting, InventoryChangedMeanwhile):
            assert stock == 3
        else:
            assert stock == 7
        assert store.order_get(order.order_id).status == OrderStatus.RESERVED


def test_deleted_item_is_not_brought_back_by_a_release(store: DynamoStore) -> None:
    # Given a reserved order for an item staff then delete
    name = _name()
    inventory_create(store=store, item_name=name, stock=5, price="9.99")
    order = order_submit(
        store=store, customer_name="Ghost", items=[{"ItemName": name, "Quantity": 3}]
    )
    inventory_reserve(store=store, order_id=order.order_id)
    assert inventory_remove(store=store, item_name=name).stock == 2

    # When the order is cancelled (its stock released)
    cancelled = order_cancel(store=store, order_id=order.order_id, actor="staff", reason="test")

    # Then no row came back (no price-0.00 ghost), and the 3 units are recorded on the order
    assert cancelled.status == OrderStatus.CANCELLED
    assert store.inventory_get(name) is None
    lost = store.order_get(order.order_id).extra["StockNotReturned"]
    assert [(r["ItemName"], int(r["Quantity"])) for r in lost] == [(name, 3)]
    # And a new order for it is rejected, not sold at 0.00
    buyer = order_submit(store=store, customer_name="Late", items=[name])
    outcome = inventory_reserve(store=store, order_id=buyer.order_id)
    assert outcome.order.status == OrderStatus.REJECTED
    # And staff can create it again cleanly, with a real price
    again = inventory_create(store=store, item_name=name, stock=1, price="9.99")
    assert again.price == Decimal("9.99")


def test_release_racing_a_delete_keeps_every_unit(store: DynamoStore) -> None:
    # Given reserved orders for an item that staff delete while the orders are cancelled
    for _ in range(4):
        name = _name()
        inventory_create(store=store, item_name=name, stock=6, price="3.00")
        order = order_submit(
            store=store, customer_name="Race", items=[{"ItemName": name, "Quantity": 2}]
        )
        inventory_reserve(store=store, order_id=order.order_id)
        removed, cancelled = _together(
            lambda n=name: inventory_remove(store=store, item_name=n),
            lambda o=order: order_cancel(
                store=store, order_id=o.order_id, actor="staff", reason="test"
            ),
        )
        # Then the row never comes back, and the 2 units are in the removed row or recorded
        assert store.inventory_get(name) is None
        lost = sum(
            int(r["Quantity"])
            for r in store.order_get(order.order_id).extra.get("StockNotReturned", [])
        )
        assert cancelled.status == OrderStatus.CANCELLED
        assert removed.stock + lost == 6, (removed, lost)
