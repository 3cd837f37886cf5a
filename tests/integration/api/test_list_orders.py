"""GET /orders on DynamoDB Local: one key's orders only, newest first, filtered, paged by cursor."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus
from tests.integration.api.conftest import KeyMaker

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

START = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: int) -> str:
    """OrderDate `minutes` after START, written as the pipeline writes it."""
    moment = START + timedelta(minutes=minutes)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_orders(store: DynamoStore, client_id: str, count: int, *, offset: int = 0) -> list[str]:
    """`count` orders of `client_id`, one a minute from START (+offset), every 10th REJECTED;
    their ids, oldest first."""

    def one(i: int) -> str:
        order = Order.new(
            customer_name=f"customer {i}",
            lines=[OrderLine("laptop", 1)],
            client_id=client_id,
            now=at(offset + i),
        )
        if i % 10 == 0:
            order = order.with_status(OrderStatus.REJECTED, "Insufficient stock", at(offset + i))
        store.order_put_new(order)
        return order.order_id

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def list_orders(api: Any, raw_key: str, **params: Any) -> Any:
    return api.get("/orders", params, HTTP_X_API_KEY=raw_key)


def test_a_thousand_orders_page_through_without_another_keys(
    api: Any, store: DynamoStore, make_key: KeyMaker
) -> None:
    # Given 1,000 orders of one key, and 300 of another key interleaved in time
    mine, raw = make_key("mine")
    other, _ = make_key("other")
    written = write_orders(store, mine.client_id, 1000)
    theirs = set(write_orders(store, other.client_id, 300, offset=1))

    # When the first key pages through GET /orders, 100 at a time
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        response = list_orders(api, raw, **params)
        assert response.status_code == 200, response.content
        body = response.json()
        seen += body["Orders"]
        pages += 1
        cursor = body["NextCursor"]
        if cursor is None:
            break
        assert pages < 20, "the cursor never ends"

    # Then it saw each of its 1,000 orders once, newest first, and none of the other key's
    ids = [order["OrderId"] for order in seen]
    assert ids == list(reversed(written))
    assert not theirs & set(ids)
    assert pages in (10, 11)
    dates = [order["OrderDate"] for order in seen]
    assert dates == sorted(dates, reverse=True)
    # And the client's secrets are not in them
    assert all("ClientId" not in order and "PaymentToken" not in order for order in seen)


def test_status_and_date_range_filter_and_page(
    api: Any, store: DynamoStore, make_key: KeyMaker
) -> None:
    # Given 200 orders of a key, every 10th REJECTED
    key, raw = make_key("filters")
    written = write_orders(store, key.client_id, 200)

    # When it asks for REJECTED orders, 7 a page
    rejected: list[str] = []
    cursor = None
    while True:
        extra = {"cursor": cursor} if cursor else {}
        body = list_orders(api, raw, status="REJECTED", limit=7, **extra).json()
        assert len(body["Orders"]) <= 7
        rejected += [o["OrderId"] for o in body["Orders"]]
        cursor = body["NextCursor"]
        if not cursor:
            break
    # Then exactly the 20 rejected ones come, newest first
    assert rejected == [written[i] for i in range(190, -1, -10)]

    # When it asks for orders placed from minute 50 to minute 59 (both included)
    body = list_orders(api, raw, since=at(50), until=at(59), limit=100).json()
    # Then those ten come, newest first, and no more pages
    assert [o["OrderId"] for o in body["Orders"]] == list(reversed(written[50:60]))
    assert body["NextCursor"] is None

    # And an offset in the range is read as the moment it names (minute 50 in UTC+01:00)
    local = (START + timedelta(minutes=50, hours=1)).replace(tzinfo=None).isoformat() + "+01:00"
    body = list_orders(api, raw, since=local, until=at(50), limit=100).json()
    assert [o["OrderId"] for o in body["Orders"]] == [written[50]]


def test_bad_queries_and_foreign_cursors_are_refused(
    api: Any, store: DynamoStore, make_key: KeyMaker
) -> None:
    # Given two keys with orders, and a cursor given to the first
    mine, raw = make_key("cursor owner")
    other, other_raw = make_key("cursor thief")
    write_orders(store, mine.client_id, 5)
    write_orders(store, other.client_id, 5)
    cursor = list_orders(api, raw, limit=2).json()["NextCursor"]
    assert cursor

    # When the other key sends it, or it is altered, or a filter is bad or unknown
    cases = {
        "other key's cursor": (other_raw, {"cursor": cursor}, "cursor"),
        "altered cursor": (raw, {"cursor": cursor[:-2] + "xx"}, "cursor"),
        "unknown status": (raw, {"status": "LOST"}, "status"),
        "limit 0": (raw, {"limit": 0}, "limit"),
        "limit 101": (raw, {"limit": 101}, "limit"),
        "bad date": (raw, {"since": "yesterday"}, "since"),
        "misspelt filter": (raw, {"stauts": "REJECTED"}, "stauts"),
    }
    for name, (key, params, field) in cases.items():
        response = list_orders(api, key, **params)
        # Then 400 names the parameter
        assert response.status_code == 400, (name, response.content)
        assert field in response.json()["errors"], (name, response.json())

    # And without a key nothing is listed
    assert api.get("/orders").status_code == 403
