"""OrderProcessing reads a stream batch's inventory once: prices and pre-checks per order come
from that one read, units taken by one order are gone for the next, a rejection is confirmed
by a fresh read, and a failed read only means each order reads for itself."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from pipeline.adapters.dynamodb import serialize
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.statuses import OrderStatus
from tests.fakes import FakeQueue, FakeStore
from tests.lambda_harness import FakeLambdaContext, use_fakes


class CountingStore(FakeStore):
    """A FakeStore that records each inventory read, and can fail the first ones."""

    def __init__(self, orders: Iterable[Order], inventory: Iterable[InventoryItem]) -> None:
        super().__init__(orders, inventory)
        self.inventory_reads: list[list[str]] = []
        self.failing_reads = 0

    def inventory_get_many(
        self, names: Iterable[str], *, consistent: bool = True
    ) -> dict[str, InventoryItem]:
        names = list(names)
        self.inventory_reads.append(sorted(names))
        if self.failing_reads:
            self.failing_reads -= 1
            raise ConnectionError("the Inventory table did not answer")
        return super().inventory_get_many(names, consistent=consistent)


def _orders(*lines: list[OrderLine]) -> list[Order]:
    return [
        Order.new(customer_name=f"customer {n}", lines=each, order_id=f"order-{n}")
        for n, each in enumerate(lines)
    ]


def _stream_event(orders: list[Order]) -> dict[str, Any]:
    """The stream batch DynamoDB sends when `orders` are written, in that order."""
    return {
        "Records": [
            {
                "eventID": f"event-{n}",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "dynamodb": {
                    "Keys": {"OrderId": {"S": order.order_id}},
                    "NewImage": serialize(order.as_item()),
                    "SequenceNumber": f"{n + 1:021d}",
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
            }
            for n, order in enumerate(orders)
        ]
    }


def _row(name: str, stock: int, price: str = "10.00") -> InventoryItem:
    return InventoryItem(name, stock, Decimal(price))


def _run(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    store: FakeStore,
    orders: list[Order],
) -> tuple[dict[str, Any], FakeQueue]:
    app = load_app("order_processing")
    queue = FakeQueue()
    use_fakes(monkeypatch, app, store=store, queue=queue)
    return app.handler(_stream_event(orders), FakeLambdaContext()), queue


def test_a_batch_reads_its_inventory_once_and_prices_every_order_from_it(
    load_app: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch of three orders over three items
    orders = _orders(
        [OrderLine("lamp", 1)],
        [OrderLine("desk", 2), OrderLine("lamp", 1)],
        [OrderLine("chair", 4)],
    )
    store = CountingStore(
        orders, [_row("lamp", 5, "20.00"), _row("desk", 5, "150.00"), _row("chair", 9, "35.50")]
    )

    # When OrderProcessing handles it
    result, queue = _run(load_app, monkeypatch, store, orders)

    # Then one read served the whole batch, and every order was reserved at its items' prices
    assert result == {"batchItemFailures": []}
    assert store.inventory_reads == [["chair", "desk", "lamp"]]
    totals = [(store.order(o.order_id).status, store.order(o.order_id).total) for o in orders]
    assert totals == [
        (OrderStatus.RESERVED, Decimal("20.00")),
        (OrderStatus.RESERVED, Decimal("320.00")),
        (OrderStatus.RESERVED, Decimal("142.00")),
    ]
    assert {n: r.stock for n, r in store.inventory.items()} == {"lamp": 3, "desk": 3, "chair": 5}
    assert [m.json()["OrderId"] for m in queue.sent] == [o.order_id for o in orders]


def test_units_one_order_takes_are_gone_for_the_next_order_of_the_batch(
    load_app: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three orders of two lamps each in one batch, and five lamps
    orders = _orders(*[[OrderLine("lamp", 2)]] * 3)
    store = CountingStore(orders, [_row("lamp", 5)])

    # When OrderProcessing handles it
    _run(load_app, monkeypatch, store, orders)

    # Then two are reserved and the third is rejected, without a transaction that was bound to
    # fail: the batch's own count found it short, and one read of the lamp confirmed it
    statuses = [store.order(o.order_id).status for o in orders]
    assert statuses == [OrderStatus.RESERVED, OrderStatus.RESERVED, OrderStatus.REJECTED]
    third = store.order(orders[2].order_id)
    assert "insufficient stock for 'lamp' (requested 2, available 1)" in third.status_reason
    assert [w for w in store.writes if w.startswith("reserve")] == [
        f"reserve {orders[0].order_id}",
        f"reserve {orders[1].order_id}",
    ]
    assert store.inventory_reads == [["lamp"], ["lamp"]]
    assert store.inventory["lamp"].stock == 1


def test_a_restock_during_the_batch_is_seen_before_an_order_is_rejected(
    load_app: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three orders for a lamp in one batch, one lamp at the batch's read, and staff
    # adding five more just after it
    orders = _orders(*[[OrderLine("lamp", 1)]] * 3)
    store = CountingStore(orders, [_row("lamp", 1)])
    read = store.inventory_get_many

    def read_then_restock(names: Iterable[str], *, consistent: bool = True) -> Any:
        rows = read(names, consistent=consistent)
        if len(store.inventory_reads) == 1:
            store.inventory["lamp"] = _row("lamp", store.inventory["lamp"].stock + 5)
        return rows

    monkeypatch.setattr(store, "inventory_get_many", read_then_restock)

    # When OrderProcessing handles it
    _run(load_app, monkeypatch, store, orders)

    # Then the orders the snapshot found short were judged on the stock read again, and all
    # three are reserved
    assert [store.order(o.order_id).status for o in orders] == [OrderStatus.RESERVED] * 3
    assert store.inventory_reads == [["lamp"], ["lamp"]]
    assert store.inventory["lamp"].stock == 3


def test_stock_that_went_after_the_read_is_found_by_the_transaction_and_learnt(
    load_app: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two orders for a lamp in one batch, and lamps that another lane sells between the
    # batch's read and its transactions
    orders = _orders([OrderLine("lamp", 1)], [OrderLine("lamp", 1)])
    store = CountingStore(orders, [_row("lamp", 3)])
    read = store.inventory_get_many

    def read_then_sell_out(names: Iterable[str], *, consistent: bool = True) -> Any:
        rows = read(names, consistent=consistent)
        store.inventory["lamp"] = _row("lamp", 0)
        return rows

    monkeypatch.setattr(store, "inventory_get_many", read_then_sell_out)

    # When OrderProcessing handles it
    _run(load_app, monkeypatch, store, orders)

    # Then the first order's transaction is refused and it is rejected with what is really
    # there; the second is rejected from what the first learnt, with no transaction or read of
    # its own
    first, second = (store.order(o.order_id) for o in orders)
    assert (first.status, second.status) == (OrderStatus.REJECTED, OrderStatus.REJECTED)
    assert "available 0" in first.status_reason and "available 0" in second.status_reason
    assert [w for w in store.writes if w.startswith("reserve")] == [f"reserve {orders[0].order_id}"]
    assert len(store.inventory_reads) == 1
    assert store.inventory["lamp"].stock == 0


def test_a_failed_batch_read_leaves_each_order_to_read_for_itself(
    load_app: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a batch of two orders, and an Inventory table that fails the first read
    orders = _orders([OrderLine("lamp", 1)], [OrderLine("desk", 1)])
    store = CountingStore(orders, [_row("lamp", 1), _row("desk", 1)])
    store.failing_reads = 1

    # When OrderProcessing handles it
    result, queue = _run(load_app, monkeypatch, store, orders)

    # Then each order read its own rows and was reserved; nothing is reported failed
    assert result == {"batchItemFailures": []}
    assert store.inventory_reads == [["desk", "lamp"], ["lamp"], ["desk"]]
    assert [store.order(o.order_id).status for o in orders] == [OrderStatus.RESERVED] * 2
    assert len(queue.sent) == 2


def test_an_order_the_batch_read_does_not_cover_reads_its_own_rows(
    load_app: Callable[[str], ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an order whose image in the batch is stale: it was resubmitted with other lines
    # before its record is handled, so the reservation is refused and the order read again
    stale = _orders([OrderLine("lamp", 1)])
    store = CountingStore(stale, [_row("lamp", 1), _row("desk", 1)])
    stored = store.orders[stale[0].order_id]
    stored["Attempt"] = 1
    stored["Items"] = [OrderLine("desk", 1).as_item()]

    # When OrderProcessing handles it
    _run(load_app, monkeypatch, store, stale)

    # Then the order as it is now was reserved, from a read of its own new line
    assert store.inventory_reads == [["lamp"], ["desk"]]
    now = store.order(stale[0].order_id)
    assert now.status is OrderStatus.RESERVED
    assert [line.item_name for line in now.lines] == ["desk"]
    assert (store.inventory["desk"].stock, store.inventory["lamp"].stock) == (0, 1)
