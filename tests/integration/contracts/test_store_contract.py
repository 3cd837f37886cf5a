"""The ReservationStore contract: FakeStore and DynamoStore (on DynamoDB Local) alike."""

from __future__ import annotations

import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.errors import (
    InsufficientStock,
    InvalidTransition,
    InventoryChangedMeanwhile,
    InventoryItemNotFound,
    OrderAlreadyExists,
    OrderNotFound,
    Shortage,
)
from pipeline.statuses import OrderStatus
from tests.fakes import FakeStore

pytestmark = pytest.mark.integration

Store = FakeStore | DynamoStore

T0 = "2024-05-01T10:00:00.000Z"
T1 = "2024-05-01T10:00:01.000Z"
T2 = "2024-05-01T10:00:02.000Z"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _item(store: Store, stock: int, price: str = "10.00") -> str:
    """A new inventory row; its name."""
    name = _unique("item")
    assert store.inventory_put_if_absent(InventoryItem(name, stock, Decimal(price), "contract"))
    return name


def _stock(store: Store, name: str) -> int | None:
    row = store.inventory_get(name)
    return None if row is None else row.stock


def _order(
    store: Store,
    lines: list[OrderLine] | None = None,
    *,
    status: OrderStatus = OrderStatus.PENDING,
    attempt: int = 0,
    customer: str | None = None,
    at: str = T0,
    extra: dict[str, Any] | None = None,
    rejection: tuple[dict[str, Any], ...] = (),
) -> Order:
    """A new order written with put_new, in `status` (history and Attempt as given)."""
    order = Order.new(
        customer_name=customer or _unique("customer"),
        lines=lines or [OrderLine("anything", 1)],
        payment_token="tok_approve",
        shipping_address={"Line1": "1 Contract Way", "City": "Leeds", "PostalCode": "LS1 1AA"},
        now=at,
    )
    if status != OrderStatus.PENDING:
        order = order.with_status(status, f"set up as {status}", at)
    order = replace(order, attempt=attempt, extra=extra or {}, rejection=rejection)
    store.order_put_new(order)
    return order


def _reservation(lines: list[OrderLine], unit_price: str = "10.00") -> dict[str, Any]:
    price = Decimal(unit_price)
    return {
        "Lines": [
            {"ItemName": line.item_name, "Quantity": line.quantity, "UnitPrice": price}
            for line in lines
        ],
        "Total": price * sum(line.quantity for line in lines),
        "Currency": "USD",
        "ReservedAt": T1,
    }


# -- Orders: put and read ---------------------------------------------------------------------


def test_an_order_put_new_reads_back_as_written(reservation_store: Store) -> None:
    # Given a new order with every optional field
    store = reservation_store

    # When it is put and read back
    order = _order(store, [OrderLine("lamp", 2), OrderLine("desk", 1)])

    # Then it reads back equal, by either read; an unknown id is None or OrderNotFound
    assert store.order_get(order.order_id) == order
    assert store.order_find(order.order_id, consistent=False) == order
    assert store.order_find(_unique("nope")) is None
    with pytest.raises(OrderNotFound):
        store.order_get(_unique("nope"))


def test_orders_are_found_together_by_id_in_reads_of_a_hundred(reservation_store: Store) -> None:
    # Given 105 orders (more than one BatchGetItem takes) and ids of none
    store = reservation_store
    orders = [_order(store) for _ in range(105)]
    missing = [_unique("nope"), _unique("nope")]
    ids = [o.order_id for o in orders]

    # When they are found together, with a repeated id and the missing ones among them
    found = store.orders_find([*ids, ids[0], *missing])

    # Then each order is there, once, as written; the missing ids are left out
    assert found == {o.order_id: o for o in orders}
    assert store.orders_find([]) == {}


def test_putting_an_order_id_twice_is_refused_and_keeps_the_first(
    reservation_store: Store,
) -> None:
    # Given an order
    store = reservation_store
    first = _order(store)

    # When another order with the same id is put
    second = replace(first, customer_name="Somebody Else")
    with pytest.raises(OrderAlreadyExists) as raised:
        store.order_put_new(second)

    # Then it is refused by id and the first one stays
    assert raised.value.order_id == first.order_id
    assert store.order_get(first.order_id).customer_name == first.customer_name


# -- Orders: transitions ----------------------------------------------------------------------


def test_an_allowed_transition_writes_status_history_and_fields(reservation_store: Store) -> None:
    # Given a PAYMENT_FAILED order carrying a payment
    store = reservation_store
    order = _order(store, status=OrderStatus.PAYMENT_FAILED, attempt=1)
    store.order_set_fields(
        order.order_id, {"Payment": {"TransactionId": "t1"}}, expected=[order.status]
    )

    # When it moves back to PENDING (allowed by its sources), setting one field, removing one
    moved = store.order_transition(
        order.order_id,
        OrderStatus.PENDING,
        "Resubmitted by staff",
        T1,
        set_fields={"Note": "again", "Tries": 2},
        remove_fields=["Payment"],
    )

    # Then the order as written is returned: status, reason, time, history, the fields
    assert moved == store.order_get(order.order_id)
    assert (moved.status, moved.status_reason, moved.last_updated) == (
        OrderStatus.PENDING,
        "Resubmitted by staff",
        T1,
    )
    assert [h.status for h in moved.history] == [
        OrderStatus.PENDING,
        OrderStatus.PAYMENT_FAILED,
        OrderStatus.PENDING,
    ]
    assert moved.history[-1].at == T1 and moved.history[-1].reason == "Resubmitted by staff"
    assert moved.extra == {"Note": "again", "Tries": 2}
    assert moved.payment is None
    assert moved.attempt == 1


def test_a_refused_transition_names_the_real_status_and_changes_nothing(
    reservation_store: Store,
) -> None:
    # Given a PENDING order
    store = reservation_store
    order = _order(store)

    # When it is moved to PAID (only RESERVED may), or to CANCELLED from RESERVED only
    with pytest.raises(InvalidTransition) as by_rule:
        store.order_transition(order.order_id, OrderStatus.PAID, "paid?", T1)
    with pytest.raises(InvalidTransition) as by_expected:
        store.order_transition(
            order.order_id, OrderStatus.CANCELLED, "x", T1, expected=[OrderStatus.RESERVED]
        )

    # Then both are refused naming the status it really has, and the order is unchanged
    for raised, target in ((by_rule, "PAID"), (by_expected, "CANCELLED")):
        assert (raised.value.order_id, raised.value.current, raised.value.target) == (
            order.order_id,
            "PENDING",
            target,
        )
    assert store.order_get(order.order_id) == order


def test_a_transition_of_a_missing_order_is_order_not_found(reservation_store: Store) -> None:
    # Given no order with this id
    order_id = _unique("missing")

    # When it is moved
    # Then OrderNotFound, and no order was created
    with pytest.raises(OrderNotFound):
        reservation_store.order_transition(order_id, OrderStatus.CANCELLED, "x", T1)
    assert reservation_store.order_find(order_id) is None


def test_a_transition_naming_one_attribute_twice_is_refused(reservation_store: Store) -> None:
    # Given an order
    store = reservation_store
    order = _order(store, status=OrderStatus.PAYMENT_FAILED)

    # When a transition both sets and removes Payment
    with pytest.raises(ClientError) as raised:
        store.order_transition(
            order.order_id,
            OrderStatus.PENDING,
            "x",
            T1,
            set_fields={"Payment": {"TransactionId": "t"}},
            remove_fields=["Payment"],
        )

    # Then DynamoDB's validation refuses it and nothing changed
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert store.order_get(order.order_id) == order


def test_set_fields_writes_without_a_status_change_only_in_an_expected_status(
    reservation_store: Store,
) -> None:
    # Given a RESERVED order
    store = reservation_store
    order = _order(store, status=OrderStatus.RESERVED, attempt=1, extra={"RefundDue": {"K": 1}})

    # When fields are set in RESERVED, then asked for in PAID only
    written = store.order_set_fields(
        order.order_id,
        {"Refund": {"RefundId": "rfd_1", "RefundedAt": T1}},
        expected=[OrderStatus.RESERVED],
        remove_fields=["RefundDue"],
    )
    with pytest.raises(InvalidTransition) as raised:
        store.order_set_fields(order.order_id, {"X": 1}, expected=[OrderStatus.PAID])

    # Then the first is written (status, history untouched), the second refused with the
    # real status
    assert written == store.order_get(order.order_id)
    assert written.refund == {"RefundId": "rfd_1", "RefundedAt": T1}
    assert written.refund_due is None
    assert (written.status, written.history) == (order.status, order.history)
    assert (raised.value.current, raised.value.target) == ("RESERVED", "RESERVED (update)")
    assert "X" not in store.order_get(order.order_id).extra
    # And a missing order is OrderNotFound; an update of nothing is refused by validation
    with pytest.raises(OrderNotFound):
        store.order_set_fields(_unique("missing"), {"X": 1}, expected=[OrderStatus.RESERVED])
    with pytest.raises(ClientError) as empty:
        store.order_set_fields(order.order_id, {}, expected=[OrderStatus.RESERVED])
    assert empty.value.response["Error"]["Code"] == "ValidationException"


# -- Reservation ------------------------------------------------------------------------------


def test_reserve_takes_every_lines_stock_and_returns_the_order_as_written(
    reservation_store: Store,
) -> None:
    # Given stock for two lines and a PENDING order rejected once before
    store = reservation_store
    lamp, desk = _item(store, 5), _item(store, 3)
    lines = [OrderLine(lamp, 2), OrderLine(desk, 3)]
    order = _order(store, lines, rejection=({"ItemName": lamp, "Problem": "UNKNOWN_ITEM"},))
    image = store.order_get(order.order_id)

    # When it is reserved
    reserved = store.reserve(image, _reservation(lines), "Reserved 5 unit(s)", T1)

    # Then both lines' stock went, the order is RESERVED on its next attempt with the
    # reservation, the old rejection gone, and what was returned is what was written
    assert (_stock(store, lamp), _stock(store, desk)) == (3, 0)
    assert reserved == store.order_get(order.order_id)
    assert (reserved.status, reserved.attempt, reserved.total) == (
        OrderStatus.RESERVED,
        1,
        Decimal("50.00"),
    )
    assert reserved.rejection == () and "Rejection" not in reserved.extra
    assert [h.status for h in reserved.history] == [OrderStatus.PENDING, OrderStatus.RESERVED]


def test_reserve_is_all_or_nothing_and_names_every_short_or_unknown_line(
    reservation_store: Store,
) -> None:
    # Given plenty of one item, too little of another, and an item that does not exist
    store = reservation_store
    plenty, short, unknown = _item(store, 100), _item(store, 1), _unique("unicorn")
    lines = [OrderLine(plenty, 5), OrderLine(short, 3), OrderLine(unknown, 1)]
    order = _order(store, lines)

    # When the order is reserved
    with pytest.raises(InsufficientStock) as raised:
        store.reserve(order, _reservation(lines), "Reserved", T1)

    # Then the short and the unknown line are named, in order, and nothing moved
    assert raised.value.shortages == (Shortage(short, 3, 1), Shortage(unknown, 1, None))
    assert (_stock(store, plenty), _stock(store, short), _stock(store, unknown)) == (100, 1, None)
    assert store.order_get(order.order_id) == order


def test_reserve_refuses_an_image_whose_attempt_is_stale(reservation_store: Store) -> None:
    # Given an order PENDING again on its second attempt (resubmitted after a failed payment)
    store = reservation_store
    name = _item(store, 10)
    lines = [OrderLine(name, 4)]
    order = _order(store, lines, attempt=1)

    # When it is reserved from an image of its first attempt, or of an attempt to come
    for attempt in (0, 2):
        with pytest.raises(InvalidTransition) as raised:
            store.reserve(replace(order, attempt=attempt), _reservation(lines), "Reserved", T1)
        # Then it is refused like a wrong status, naming the real one
        assert (raised.value.current, raised.value.target) == ("PENDING", "RESERVED")

    # And no stock moved, the order is as it was; its current image reserves
    assert _stock(store, name) == 10
    assert store.order_get(order.order_id) == order
    assert store.reserve(order, _reservation(lines), "Reserved", T1).attempt == 2
    assert _stock(store, name) == 6


def test_reserving_twice_reserves_once(reservation_store: Store) -> None:
    # Given an order reserved from its image
    store = reservation_store
    name = _item(store, 10)
    lines = [OrderLine(name, 4)]
    image = _order(store, lines)
    store.reserve(image, _reservation(lines), "Reserved", T1)

    # When the same image (a redelivered stream record) and the fresh order are reserved again
    for again in (image, store.order_get(image.order_id)):
        with pytest.raises(InvalidTransition) as raised:
            store.reserve(again, _reservation(lines), "Reserved", T2)
        # Then each is refused naming RESERVED
        assert raised.value.current == "RESERVED"

    # And the stock went down once, the attempt counted once
    assert _stock(store, name) == 6
    assert store.order_get(image.order_id).attempt == 1


def test_reserving_a_missing_order_is_order_not_found_and_takes_no_stock(
    reservation_store: Store,
) -> None:
    # Given stock and an order that was never written
    store = reservation_store
    name = _item(store, 10)
    lines = [OrderLine(name, 1)]
    ghost = Order.new(customer_name="Nobody", lines=lines, now=T0)

    # When it is reserved
    # Then OrderNotFound, and the stock is untouched
    with pytest.raises(OrderNotFound):
        store.reserve(ghost, _reservation(lines), "Reserved", T1)
    assert _stock(store, name) == 10


def test_release_gives_the_stock_back_once(reservation_store: Store) -> None:
    # Given a reserved order for 3 of an item (stock now 7)
    store = reservation_store
    name = _item(store, 10)
    lines = [OrderLine(name, 3)]
    order = _order(store, lines)
    store.reserve(order, _reservation(lines), "Reserved", T1)

    # When it is released twice, writing a field the first time
    released = store.release(
        order.order_id,
        lines,
        OrderStatus.PAYMENT_FAILED,
        "Payment failed",
        T2,
        set_fields={"RefundDue": {"IdempotencyKey": "k"}},
    )
    with pytest.raises(InvalidTransition) as raised:
        store.release(order.order_id, lines, OrderStatus.PAYMENT_FAILED, "again", T2)

    # Then the stock came back once, the order moved once, with the field
    assert _stock(store, name) == 10
    assert released == store.order_get(order.order_id)
    assert (released.status, released.status_reason) == (
        OrderStatus.PAYMENT_FAILED,
        "Payment failed",
    )
    assert released.refund_due == {"IdempotencyKey": "k"}
    assert (raised.value.current, raised.value.target) == ("PAYMENT_FAILED", "PAYMENT_FAILED")
    # And a missing order is OrderNotFound, with no stock given back
    with pytest.raises(OrderNotFound):
        store.release(_unique("missing"), lines, OrderStatus.CANCELLED, "x", T2)
    assert _stock(store, name) == 10


def test_release_to_an_item_deleted_meanwhile_leaves_no_ghost(reservation_store: Store) -> None:
    # Given a reserved order of two items, one of which staff then deleted
    store = reservation_store
    gone, kept = _item(store, 5, "7.50"), _item(store, 4)
    lines = [OrderLine(gone, 2), OrderLine(kept, 1)]
    order = _order(store, lines)
    store.reserve(order, _reservation(lines), "Reserved", T1)
    store.inventory_delete_existing(gone)

    # When the order is cancelled with its stock released
    released = store.release(order.order_id, lines, OrderStatus.CANCELLED, "Cancelled", T2)

    # Then the deleted item is not re-created (no priceless row an order could buy), the other
    # item gets its unit back, and the lost units are recorded on the order
    assert store.inventory_get(gone) is None
    assert _stock(store, kept) == 4
    assert released.status == OrderStatus.CANCELLED
    recorded = store.order_get(order.order_id).extra["StockNotReturned"]
    assert [(r["ItemName"], int(r["Quantity"])) for r in recorded] == [(gone, 2)]
    # And an order for the deleted item is short, not sold at 0.00
    buyer = _order(store, [OrderLine(gone, 1)])
    with pytest.raises(InsufficientStock) as short:
        store.reserve(buyer, _reservation([OrderLine(gone, 1)]), "Reserved", T2)
    assert short.value.shortages == (Shortage(gone, 1, None),)


# -- Inventory --------------------------------------------------------------------------------


def test_put_if_absent_creates_once_and_never_overwrites(reservation_store: Store) -> None:
    # Given a new item
    store = reservation_store
    row = InventoryItem(_unique("pen"), 5, Decimal("1.25"), "Blue pen")

    # When it is put twice, the second time with other values
    first = store.inventory_put_if_absent(row)
    second = store.inventory_put_if_absent(replace(row, stock=99, price=Decimal("9.99")))

    # Then only the first was written
    assert (first, second) == (True, False)
    assert store.inventory_get(row.item_name) == row
    assert store.inventory_get(_unique("absent")) is None


def test_adjust_moves_stock_atomically_and_never_below_zero(reservation_store: Store) -> None:
    # Given an item with stock 2
    store = reservation_store
    name = _item(store, 2)

    # When stock is added, taken to exactly zero, then taken below it
    assert store.inventory_adjust(name, 3).stock == 5
    assert store.inventory_adjust(name, -5).stock == 0
    with pytest.raises(InsufficientStock) as below:
        store.inventory_adjust(name, -1)

    # Then the last is refused naming what was asked and what there is, and stock stays 0
    assert below.value.shortages == (Shortage(name, 1, 0),)
    assert _stock(store, name) == 0
    # And an unknown item is a shortage with nothing available, and is not created
    ghost = _unique("ghost")
    with pytest.raises(InsufficientStock) as unknown:
        store.inventory_adjust(ghost, 4)
    assert unknown.value.shortages == (Shortage(ghost, -4, None),)
    assert store.inventory_get(ghost) is None


def test_update_details_sets_price_and_description_but_never_stock(
    reservation_store: Store,
) -> None:
    # Given an item with stock 7
    store = reservation_store
    name = _item(store, 7, "1.00")

    # When its details are edited
    updated = store.inventory_update_details(name, price=Decimal("2.50"), description="Red")

    # Then price and description changed, stock did not
    assert updated == InventoryItem(name, 7, Decimal("2.50"), "Red")
    assert store.inventory_get(name) == updated
    # And a missing item is InventoryItemNotFound, and is not created
    ghost = _unique("ghost")
    with pytest.raises(InventoryItemNotFound):
        store.inventory_update_details(ghost, price=Decimal("1"), description="")
    assert store.inventory_get(ghost) is None


def test_delete_existing_returns_the_row_and_a_second_delete_is_not_found(
    reservation_store: Store,
) -> None:
    # Given an item
    store = reservation_store
    name = _item(store, 4, "3.00")

    # When it is deleted twice
    gone = store.inventory_delete_existing(name)
    with pytest.raises(InventoryItemNotFound):
        store.inventory_delete_existing(name)

    # Then the first returned the row as it was, and it is gone
    assert gone == InventoryItem(name, 4, Decimal("3.00"), "contract")
    assert store.inventory_get(name) is None


def test_get_many_and_scan_return_the_rows_that_exist(reservation_store: Store) -> None:
    # Given two items
    store = reservation_store
    a, b = _item(store, 1), _item(store, 2)

    # When they are read with a missing name and a repeat, and the table is scanned
    found = store.inventory_get_many([a, _unique("missing"), b, a])
    scanned = {row.item_name: row for row in store.inventory_scan()}

    # Then only the existing rows come back, once each, in both
    assert set(found) == {a, b}
    assert (found[a].stock, found[b].stock) == (1, 2)
    assert scanned[a] == found[a] and scanned[b] == found[b]


# -- Listings ---------------------------------------------------------------------------------


def test_orders_by_status_are_newest_first_a_page_at_a_time(
    reservation_store: Store, forget_orders: list[str]
) -> None:
    # Given three orders in one status, newer than any other order in the table
    store = reservation_store
    dates = ["2999-12-31T23:59:57.000Z", "2999-12-31T23:59:58.000Z", "2999-12-31T23:59:59.000Z"]
    made = [_order(store, status=OrderStatus.PAYMENT_FAILED, at=at) for at in dates]
    forget_orders.extend(o.order_id for o in made)

    # When the status is listed two at a time
    first = store.orders_by_status(OrderStatus.PAYMENT_FAILED, limit=2)
    second = store.orders_by_status(OrderStatus.PAYMENT_FAILED, limit=2, cursor=first.cursor)

    # Then newest first, each once, and the cursor is the last item's keys
    assert [o.order_id for o in first.items] == [made[2].order_id, made[1].order_id]
    assert first.cursor == {
        "OrderId": made[1].order_id,
        "Status": "PAYMENT_FAILED",
        "OrderDate": dates[1],
    }
    assert second.items[0].order_id == made[0].order_id
    assert all(o.status == OrderStatus.PAYMENT_FAILED for o in [*first.items, *second.items])


def test_orders_by_status_placed_before_lists_only_orders_placed_by_then(
    reservation_store: Store, forget_orders: list[str]
) -> None:
    # Given three orders in one status, newer than any other order in the table
    store = reservation_store
    dates = ["2999-12-30T23:59:57.000Z", "2999-12-30T23:59:58.000Z", "2999-12-30T23:59:59.000Z"]
    made = [_order(store, status=OrderStatus.SHIPPED, at=at) for at in dates]
    forget_orders.extend(o.order_id for o in made)

    # When the status is listed up to the middle one's OrderDate, one at a time
    first = store.orders_by_status(OrderStatus.SHIPPED, limit=1, placed_before=dates[1])
    second = store.orders_by_status(
        OrderStatus.SHIPPED, limit=1, cursor=first.cursor, placed_before=dates[1]
    )

    # Then the newest is left out, the bound is inclusive, and the cursor pages on below it
    assert [o.order_id for o in first.items] == [made[1].order_id]
    assert [o.order_id for o in second.items] == [made[0].order_id]
    assert first.cursor == {"OrderId": made[1].order_id, "Status": "SHIPPED", "OrderDate": dates[1]}


def test_set_fields_if_unchanged_writes_for_one_of_two_writers_that_read_the_same_order(
    reservation_store: Store,
) -> None:
    # Given a RESERVED order carrying a map attribute, read by two writers
    store = reservation_store
    run = {"Attempt": 1, "Run": 2, "At": T1, "Resends": 0, "Reason": "run 1 FAILED"}
    order = _order(store, status=OrderStatus.RESERVED, attempt=1, extra={"WorkflowRun": run})
    seen = {"WorkflowRun": order.extra["WorkflowRun"], "Attempt": 1}
    claim = {**run, "Run": 3, "At": T2}

    # When both write a new value, each on condition that nothing changed since its read
    written = store.order_set_fields_if_unchanged(
        order.order_id,
        {"WorkflowRun": claim},
        expected=[OrderStatus.RESERVED],
        unchanged=seen,
    )
    with pytest.raises(InvalidTransition) as raised:
        store.order_set_fields_if_unchanged(
            order.order_id,
            {"WorkflowRun": {**claim, "At": T0}},
            expected=[OrderStatus.RESERVED],
            unchanged=seen,
        )

    # Then the first is written (status and history untouched), the second refused with the
    # real status, and the order is as the first left it
    assert written == store.order_get(order.order_id)
    assert written.extra["WorkflowRun"] == claim and written.workflow_run == 3
    assert (written.status, written.history) == (order.status, order.history)
    assert (raised.value.current, raised.value.target) == ("RESERVED", "RESERVED (update)")
    assert store.order_get(order.order_id).extra["WorkflowRun"] == claim
    # And None means "absent": true of an attribute never written, false of one that was
    store.order_set_fields_if_unchanged(
        order.order_id, {"X": 1}, expected=[OrderStatus.RESERVED], unchanged={"Nothing": None}
    )
    with pytest.raises(InvalidTransition):
        store.order_set_fields_if_unchanged(
            order.order_id, {"X": 2}, expected=[OrderStatus.RESERVED], unchanged={"X": None}
        )
    assert store.order_get(order.order_id).extra["X"] == 1
    # And the status guards it too; a missing order is OrderNotFound
    with pytest.raises(InvalidTransition) as wrong:
        store.order_set_fields_if_unchanged(
            order.order_id, {"X": 3}, expected=[OrderStatus.PAID], unchanged={}
        )
    assert wrong.value.current == "RESERVED"
    with pytest.raises(OrderNotFound):
        store.order_set_fields_if_unchanged(
            _unique("missing"), {"X": 1}, expected=[OrderStatus.RESERVED], unchanged={}
        )


def test_a_requeue_is_counted_only_on_a_reserved_order(reservation_store: Store) -> None:
    # Given a RESERVED and a PENDING order
    store = reservation_store
    reserved = _order(store, status=OrderStatus.RESERVED, attempt=1)
    pending = _order(store)
    missing = _unique("missing")

    # When a requeue is counted twice on each, and once on an order that does not exist
    for order_id in (reserved.order_id, reserved.order_id, pending.order_id, pending.order_id):
        store.order_count_requeue(order_id, T1)
    store.order_count_requeue(missing, T1)

    # Then only the RESERVED order counts them, with its status unchanged
    counted = store.order_get(reserved.order_id)
    assert (counted.requeue_count, counted.extra["RequeuedAt"]) == (2, T1)
    assert (counted.status, counted.history) == (reserved.status, reserved.history)
    assert store.order_get(pending.order_id) == pending
    assert store.order_find(missing) is None


def test_guarded_detail_edit_refuses_a_stale_view(reservation_store: Store) -> None:
    # Given an item two editors looked at
    store = reservation_store
    name = _item(store, 5, "7.50")
    seen = store.inventory_get(name)
    assert seen is not None

    # When the first saves a new price and threshold, and the second saves on the old view
    first = store.inventory_update_details_if(
        seen, price=Decimal("8.00"), description="first", low_stock_threshold=3
    )
    with pytest.raises(InventoryChangedMeanwhile) as stale:
        store.inventory_update_details_if(
            seen, price=Decimal("9.00"), description="second", low_stock_threshold=None
        )

    # Then the first edit stands, the second wrote nothing and was shown the current row
    assert (first.price, first.description, first.low_stock_threshold) == (
        Decimal("8.00"),
        "first",
        3,
    )
    assert store.inventory_get(name) == first
    assert stale.value.current == first
    # And the threshold can be cleared again from the fresh view; a missing row is NotFound
    cleared = store.inventory_update_details_if(
        first, price=Decimal("8.00"), description="first", low_stock_threshold=None
    )
    assert cleared.low_stock_threshold is None and cleared.stock == 5
    with pytest.raises(InventoryItemNotFound):
        store.inventory_update_details_if(
            replace(first, item_name=_unique("absent")),
            price=Decimal("1"),
            description="",
            low_stock_threshold=None,
        )


def test_set_stock_only_if_unchanged(reservation_store: Store) -> None:
    # Given an item with stock 5, read by an editor, then reserved from
    store = reservation_store
    name = _item(store, 5)
    store.inventory_adjust(name, -2)

    # When the editor sets an absolute stock on what they saw (5)
    with pytest.raises(InventoryChangedMeanwhile) as stale:
        store.inventory_set_stock_if(name, seen_stock=5, stock=20)

    # Then nothing was written (the reservation is not undone); on the fresh value it works
    assert stale.value.current.stock == 3 and _stock(store, name) == 3
    assert store.inventory_set_stock_if(name, seen_stock=3, stock=20).stock == 20
    with pytest.raises(InventoryItemNotFound):
        store.inventory_set_stock_if(_unique("absent"), seen_stock=0, stock=1)
