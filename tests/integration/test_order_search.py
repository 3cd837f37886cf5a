"""Staff search of orders by customer prefix, status and date range on DynamoDB Local."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from pipeline.orders import order_submit
from pipeline.reservation import inventory_reserve
from pipeline.statuses import OrderStatus

pytestmark = pytest.mark.integration


def _customer_orders(store: DynamoStore, stem: str) -> dict[str, str]:
    """Five orders of customers sharing a rare stem, on five days; name -> order id."""
    item = f"item-{uuid.uuid4().hex[:10]}"
    store.inventory_put(InventoryItem(item, 100, Decimal("1.00"), "test item"))
    made = {}
    for day, suffix in enumerate(["anne", "anna", "bert", "annika", "zed"], start=1):
        name = f"{stem.title()} {suffix.title()}"
        order = order_submit(
            store=store, customer_name=name, items=[item], now=f"2026-03-0{day}T10:00:00.000Z"
        )
        made[name] = order.order_id
    # Two of them reserved, so a status filter has something to tell apart
    for name in (f"{stem.title()} Anne", f"{stem.title()} Annika"):
        inventory_reserve(store=store, order_id=made[name])
    return made


def test_prefix_search_is_case_and_accent_blind_and_newest_first(store: DynamoStore) -> None:
    # Given customers "Xq.. Anne", "Xq.. Anna", "Xq.. Annika", ... (a stem no other test uses)
    stem = "x" + uuid.uuid4().hex[:6]
    made = _customer_orders(store, stem)
    # When staff type the stem and "ANN" in another case
    page = store.orders_by_customer_prefix(f"{stem.upper()}  ann", limit=10)
    # Then the three Ann* customers come back, newest first, and no one else
    names = [order.customer_name for order in page.items]
    assert names == [f"{stem.title()} Annika", f"{stem.title()} Anna", f"{stem.title()} Anne"]
    assert page.cursor is None
    assert {order.order_id for order in page.items} <= set(made.values())


def test_prefix_search_combines_status_and_date_range(store: DynamoStore) -> None:
    stem = "x" + uuid.uuid4().hex[:6]
    _customer_orders(store, stem)
    # Status: only the reserved Ann* orders
    reserved = store.orders_by_customer_prefix(f"{stem} ann", status=OrderStatus.RESERVED, limit=10)
    assert [o.customer_name for o in reserved.items] == [
        f"{stem.title()} Annika",
        f"{stem.title()} Anne",
    ]
    # Date range: days 2 to 4 of every customer of the stem
    ranged = store.orders_by_customer_prefix(
        stem,
        placed_after="2026-03-02T00:00:00.000Z",
        placed_before="2026-03-04T23:59:59.999Z",
        limit=10,
    )
    assert [o.order_date[:10] for o in ranged.items] == ["2026-03-04", "2026-03-03", "2026-03-02"]
    # A range that ends before it starts, or a prefix too short, is refused
    with pytest.raises(ValueError, match="ends before"):
        store.orders_by_customer_prefix(
            stem, placed_after="2026-03-04T00:00:00Z", placed_before="2026-03-01T00:00:00Z"
        )
    with pytest.raises(ValueError, match="at least 3"):
        store.orders_by_customer_prefix("x ")


def test_prefix_search_pages_with_a_cursor(store: DynamoStore) -> None:
    stem = "x" + uuid.uuid4().hex[:6]
    _customer_orders(store, stem)
    seen = []
    cursor = None
    for _ in range(5):
        page = store.orders_by_customer_prefix(stem, limit=2, cursor=cursor)
        seen.extend(o.order_date[:10] for o in page.items)
        cursor = page.cursor
        if cursor is None:
            break
    # Every order once, newest first, across pages of two
    assert seen == [f"2026-03-0{day}" for day in (5, 4, 3, 2, 1)]


def test_status_listing_takes_a_date_range(store: DynamoStore) -> None:
    stem = "x" + uuid.uuid4().hex[:6]
    made = _customer_orders(store, stem)
    page = store.orders_by_status(
        OrderStatus.RESERVED,
        placed_after="2026-03-04T00:00:00.000Z",
        placed_before="2026-03-04T23:59:59.999Z",
        limit=100,
    )
    assert made[f"{stem.title()} Annika"] in {o.order_id for o in page.items}
    assert all(o.order_date.startswith("2026-03-04") for o in page.items)


def test_orders_written_before_the_index_are_found_after_the_backfill(
    store: DynamoStore,
) -> None:
    # Given an order as written before the search attributes existed (removed here)
    stem = "x" + uuid.uuid4().hex[:6]
    item = f"item-{uuid.uuid4().hex[:10]}"
    store.inventory_put(InventoryItem(item, 1, Decimal("1.00"), "test item"))
    order = order_submit(store=store, customer_name=f"{stem} Old", items=[item])
    store.client.update_item(
        TableName=store.orders_table,
        Key={"OrderId": {"S": order.order_id}},
        UpdateExpression="REMOVE CustomerKey, CustomerPrefix",
    )
    # Then the prefix search does not find it
    assert store.orders_by_customer_prefix(stem).items == []
    # When the backfill runs (twice: the second finds nothing to do for it)
    read, written = store.orders_backfill_search_keys()
    assert read >= 1 and written >= 1
    assert store.orders_backfill_search_keys()[1] == 0
    # Then it is found
    assert [o.order_id for o in store.orders_by_customer_prefix(stem).items] == [order.order_id]
