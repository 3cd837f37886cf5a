"""The use cases and store methods added for the operations portal, on in-memory fakes:
inventory rules, DLQ peek / replay / discard, and the capped order count."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.dlq import dlq_discard, dlq_peek, dlq_replay
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.errors import (
    InsufficientStock,
    InvalidInventoryItem,
    InventoryItemExists,
    InventoryItemNotFound,
    MessageNotFound,
)
from pipeline.inventory import inventory_adjust_stock, inventory_create, inventory_update_details
from pipeline.ports import QueueMessage
from pipeline.statuses import OrderStatus
from tests.fakes import FakeQueue, FakeStore


def order_body(order_id: str, attempt: int = 1) -> str:
    """A fulfilment request as the Orders queue carries it."""
    return json.dumps({"OrderId": order_id, "Attempt": attempt})


# -- Inventory rules --------------------------------------------------------------------------


def test_an_item_is_created_with_its_price_kept_exact():
    # Given an empty inventory
    store = FakeStore()

    # When staff create an item from form text
    item = inventory_create(
        store=store, item_name="  Desk Lamp ", stock=3, price="19.9", description=" LED "
    )

    # Then the name and description are trimmed and the price is a two-place Decimal
    assert item == InventoryItem("Desk Lamp", 3, Decimal("19.90"), "LED")
    assert str(item.price) == "19.90"
    assert store.inventory["Desk Lamp"] == item


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"item_name": "bad/name"}, "ItemName", "may hold letters"),
        ({"item_name": ""}, "ItemName", "must not be empty"),
        ({"stock": -1}, "Stock", "0 or more"),
        ({"stock": True}, "Stock", "whole number"),
        ({"stock": "5"}, "Stock", "whole number"),
        ({"price": "19.999"}, "Price", "at most 2 decimal places"),
        ({"price": Decimal("-0.01")}, "Price", "0 or more"),
        ({"price": 19.99}, "Price", "decimal number"),  # a float: never
        ({"price": "NaN"}, "Price", "decimal number"),
        ({"price": "Infinity"}, "Price", "decimal number"),
        ({"price": "abc"}, "Price", "decimal number"),
        ({"price": False}, "Price", "decimal number"),
        ({"description": "x" * 501}, "Description", "at most 500"),
        ({"description": "bell\x07"}, "Description", "control characters"),
    ],
)
def test_invalid_items_are_refused_before_anything_is_written(
    fields: dict[str, Any], field: str, message: str
):
    # Given a valid item but for one field
    store = FakeStore()
    data = {"item_name": "lamp", "stock": 1, "price": "1.00", "description": "", **fields}

    # When it is created
    with pytest.raises(InvalidInventoryItem) as raised:
        inventory_create(store=store, **data)

    # Then the error names the field, and nothing was written
    assert message in raised.value.errors[field]
    assert store.writes == []


def test_every_bad_field_is_named_at_once():
    with pytest.raises(InvalidInventoryItem) as raised:
        inventory_create(store=FakeStore(), item_name="", stock=-1, price="x")
    assert set(raised.value.errors) == {"ItemName", "Stock", "Price"}


def test_a_price_with_trailing_zeros_beyond_two_places_is_still_two_places():
    item = inventory_create(store=FakeStore(), item_name="pen", stock=1, price="1.500")
    assert item.price == Decimal("1.50")


def test_creating_an_existing_item_is_refused():
    store = FakeStore(inventory=[InventoryItem("pen", 5, Decimal("1.00"))])
    with pytest.raises(InventoryItemExists):
        inventory_create(store=store, item_name="pen", stock=1, price="2.00")
    assert store.inventory["pen"].stock == 5


@pytest.mark.parametrize("delta", [0, True, 1.5, "3", 10**10])
def test_an_adjustment_must_be_a_non_zero_whole_number(delta: object):
    store = FakeStore(inventory=[InventoryItem("pen", 5, Decimal("1.00"))])
    with pytest.raises(InvalidInventoryItem):
        inventory_adjust_stock(store=store, item_name="pen", delta=delta)
    assert store.writes == []


def test_adjusting_an_unknown_item_says_it_does_not_exist():
    with pytest.raises(InventoryItemNotFound):
        inventory_adjust_stock(store=FakeStore(), item_name="ghost", delta=1)


def test_an_adjustment_below_zero_is_insufficient_stock():
    store = FakeStore(inventory=[InventoryItem("pen", 2, Decimal("1.00"))])
    with pytest.raises(InsufficientStock):
        inventory_adjust_stock(store=store, item_name="pen", delta=-3)
    assert store.inventory["pen"].stock == 2


def test_editing_details_validates_the_price_and_leaves_stock_to_the_store():
    store = FakeStore(inventory=[InventoryItem("pen", 2, Decimal("1.00"))])
    with pytest.raises(InvalidInventoryItem):
        inventory_update_details(store=store, item_name="pen", price="-1", description="")
    item = inventory_update_details(store=store, item_name="pen", price="3", description="Blue")
    assert item == InventoryItem("pen", 2, Decimal("3.00"), "Blue")


# -- DLQ peek ---------------------------------------------------------------------------------


def _order(order_id: str, status: OrderStatus) -> Order:
    """An order in `status`."""
    new = Order.new(customer_name="Ada", lines=[OrderLine("pen", 1)], order_id=order_id)
    return replace(new, status=status)


def test_peek_shows_each_message_once_with_its_order_and_releases_them_all():
    # Given a DLQ with two fulfilment requests (one for a missing order) and a stray body
    dlq = FakeQueue([order_body("o-1"), order_body("o-gone", 2), "garbage"])
    store = FakeStore([_order("o-1", OrderStatus.RESERVED)])
    dlq.advance(1)  # first looked at a second after they arrived

    # When it is peeked
    letters = dlq_peek(dlq=dlq, store=store)

    # Then each message appears once, with its order and that order's status
    assert [(x.message_id, x.order_id, x.attempt) for x in letters] == [
        ("m1", "o-1", 1),
        ("m2", "o-gone", 2),
        ("m3", None, None),
    ]
    assert letters[0].order_status == "RESERVED"
    assert letters[1].order_status is None and letters[1].lookup_error == "no such order"
    assert letters[0].receive_count == 1
    assert letters[0].first_received_at.isoformat() == "2026-01-01T00:00:01+00:00"
    # And every message is visible again at once
    assert dlq.visible == ["m1", "m2", "m3"]


def test_peek_stops_at_its_maximum_and_still_releases_what_it_received():
    dlq = FakeQueue([order_body(f"o-{n}") for n in range(25)])
    letters = dlq_peek(dlq=dlq, max_messages=12)
    assert len(letters) == 12
    assert len(dlq.visible) == 25


def test_peek_reports_a_store_failure_on_the_messages_and_asks_only_once():
    # Given an Orders table that cannot be reached
    dlq = FakeQueue([order_body("o-1"), order_body("o-2")])
    store = FakeStore()
    store.fail_reads = ConnectionError("DynamoDB unreachable")

    # When the DLQ is peeked
    letters = dlq_peek(dlq=dlq, store=store)

    # Then the messages list, each with the error, after a single failed lookup
    assert all("DynamoDB unreachable" in (x.lookup_error or "") for x in letters)
    assert len(store.order_reads) == 1


# -- DLQ replay -------------------------------------------------------------------------------


def test_replay_sends_each_message_before_deleting_it():
    # Given two messages in the DLQ
    dlq, target = FakeQueue([order_body("a"), order_body("b")]), FakeQueue()
    dlq.log = target.log  # one log for both queues: the order of operations

    # When they are replayed
    result = dlq_replay(dlq=dlq, target=target)

    # Then both moved, each sent first and deleted after
    assert (result.moved, result.failed, result.skipped) == (2, 0, 0)
    assert target.log == [
        f"send {order_body('a')}",
        "delete m1",
        f"send {order_body('b')}",
        "delete m2",
    ]
    assert dlq.messages == {}


def test_a_message_that_fails_to_send_stays_in_the_dlq_and_is_visible_again():
    # Given a target queue that refuses every message
    dlq, target = FakeQueue([order_body("a"), order_body("b")]), FakeQueue(fail_sends=True)

    # When a replay runs
    result = dlq_replay(dlq=dlq, target=target)

    # Then nothing moved and nothing is lost: both are in the DLQ, visible
    assert (result.moved, result.failed) == (0, 2)
    assert dlq.visible == ["m1", "m2"]


def test_skipped_and_over_the_limit_messages_are_released_and_reports_run_as_it_goes():
    # Given five messages, a filter that wants the even ones, and a limit of one
    dlq, target = FakeQueue([order_body(str(n)) for n in range(5)]), FakeQueue()
    reports: list[tuple[int, int, int]] = []
    moved_ids: list[str] = []

    # When a replay runs
    result = dlq_replay(
        dlq=dlq,
        target=target,
        limit=1,
        accept=lambda m: json.loads(m.body)["OrderId"] in {"0", "2", "4"},
        progress=lambda moved, message: moved_ids.append(message.message_id),
        report=lambda r: reports.append((r.moved, r.failed, r.skipped)),
    )

    # Then one moved, the others are all visible again, and the totals were reported
    assert (result.moved, result.skipped) == (1, 0)
    assert moved_ids == ["m1"]
    assert dlq.visible == ["m2", "m3", "m4", "m5"]
    assert reports[0] == (1, 0, 0)


def test_a_selection_skips_the_rest_and_leaves_them_visible():
    dlq, target = FakeQueue([order_body(str(n)) for n in range(3)]), FakeQueue()
    result = dlq_replay(
        dlq=dlq,
        target=target,
        accept=lambda m: m.message_id == "m2",
    )
    assert (result.moved, result.skipped) == (1, 2)
    assert [m.body for m in target.sent] == [order_body("1")]
    assert dlq.visible == ["m1", "m3"]


def test_a_replay_that_outlasts_the_visibility_timeout_stops_after_one_round():
    # Given a DLQ whose messages reappear at once (as they would after a long run), and a
    # selection that leaves most of them behind
    dlq, target = FakeQueue([order_body(str(n)) for n in range(4)]), FakeQueue()
    original = dlq.receive

    def receive_with_timeouts(**kwargs: Any) -> list[QueueMessage]:
        dlq.advance(3600)  # every earlier visibility timeout has run out
        return original(**kwargs)

    dlq.receive = receive_with_timeouts  # type: ignore[method-assign]

    # When the replay runs
    result = dlq_replay(
        dlq=dlq,
        target=target,
        accept=lambda m: m.message_id == "m1",
    )

    # Then it looked at each message once and stopped: one moved, three skipped, none twice
    assert (result.moved, result.failed, result.skipped) == (1, 0, 3)
    assert [m.body for m in target.sent] == [order_body("0")]


# -- DLQ discard ------------------------------------------------------------------------------


def test_discard_deletes_the_one_message_by_id_and_releases_the_others():
    dlq = FakeQueue([order_body("a"), order_body("b"), order_body("c")])
    gone = dlq_discard(dlq=dlq, message_id="m2")
    assert gone.body == order_body("b")
    assert list(dlq.messages) == ["m1", "m3"]
    assert dlq.visible == ["m1", "m3"]


def test_discarding_a_message_that_is_not_there_changes_nothing():
    dlq = FakeQueue([order_body("a")])
    with pytest.raises(MessageNotFound):
        dlq_discard(dlq=dlq, message_id="nope")
    assert dlq.visible == ["m1"]


# -- Order counts per status ------------------------------------------------------------------


class PagedCounts:
    """A DynamoDB client whose COUNT query answers in pages of `per_page`."""

    def __init__(self, total: int, per_page: int):
        self.total, self.per_page, self.calls = total, per_page, 0

    def query(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["Select"] == "COUNT" and kwargs["IndexName"] == "StatusIndex"
        self.calls += 1
        start = int(kwargs.get("ExclusiveStartKey", {}).get("n", {}).get("N", "0"))
        count = min(self.per_page, self.total - start)
        page: dict[str, Any] = {"Count": count}
        if start + count < self.total:
            page["LastEvaluatedKey"] = {"n": {"N": str(start + count)}}
        return page


def test_order_counts_add_up_every_page():
    client = PagedCounts(total=2500, per_page=1000)
    store = DynamoStore("orders", "inventory", client=client)
    assert store.orders_count_by_status(OrderStatus.SHIPPED, cap=10_000) == (2500, False)
    assert client.calls == 3


def test_order_counts_stop_at_the_cap_and_say_so():
    client = PagedCounts(total=1_000_000, per_page=1000)
    store = DynamoStore("orders", "inventory", client=client)
    assert store.orders_count_by_status(OrderStatus.SHIPPED, cap=3000) == (3000, True)
    assert client.calls == 3
