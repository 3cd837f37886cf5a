"""DataAdmin over DynamoDB Local: the inventory and orders changelists page with opaque
cursors (next and previous), search, filter and sort as the admin's own pages do; a cursor
that was edited is refused; detail and history pages read one object and its audit entries."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

from operations.admin.orders import OrderAdmin
from operations.audit import Action, record
from operations.models import InventoryItem as InventoryRow
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.statuses import OrderStatus
from tests.integration.admin.mechanism_urls import ROWS
from tests.integration.ops.orders import make_item, make_order

pytestmark = pytest.mark.integration

ITEMS = "/admin/operations/inventoryitem/"
ORDERS = "/admin/operations/order/"


def pks(page: str) -> list[str]:
    """The row keys a changelist shows, in order."""
    return re.findall(r'<tr data-pk="([^"]+)">', page)


def link(page: str, element_id: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)"[^>]*id="{element_id}"', page)
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.mark.urls("tests.integration.admin.mechanism_urls")
def test_the_changelist_pages_forward_and_back_with_opaque_cursors(role_client: Any):
    # Given seven rows on pages of three (an in-memory source on a second admin site)
    client = role_client("viewer")
    rows = "/mechanism/operations/inventoryitem/"

    # When a viewer searches, sorts by stock (descending) and walks the pages and back
    first = client.get(rows, {"q": "row", "o": "-stock"}).content.decode()
    second = client.get(rows + link(first, "page-next")).content.decode()
    third = client.get(rows + link(second, "page-next")).content.decode()
    back = client.get(rows + link(third, "page-previous")).content.decode()
    back_again = client.get(rows + link(back, "page-previous")).content.decode()

    # Then the pages hold 3, 3 and 1 rows in the order asked, the last has no next link, and
    # previous leads back to the same pages
    expected = [
        r.item_name for r in sorted(ROWS, key=lambda r: (r.stock, r.item_name), reverse=True)
    ]
    assert pks(first) + pks(second) + pks(third) == expected
    assert link(third, "page-next") is None and link(first, "page-previous") is None
    assert pks(back) == pks(second) and pks(back_again) == pks(first)
    # And the page is the admin's: search box with the term, sorted header, count
    assert 'id="searchbar"' in first and 'value="row"' in first
    assert "sorted descending" in first and "7 in all" in first


def test_an_edited_cursor_is_refused_with_a_message(store: DynamoStore, role_client: Any):
    response = role_client("viewer").get(ITEMS, {"cursor": "made-up"}, follow=True)
    assert response.status_code == 200
    assert "This page link is not valid" in response.content.decode()


def test_an_unknown_filter_or_sort_is_refused(store: DynamoStore, role_client: Any):
    client = role_client("viewer")
    page = client.get(ORDERS, {"colour": "red"}, follow=True).content.decode()
    assert "Unknown filter: colour." in page
    page = client.get(ORDERS, {"o": "customer_name"}, follow=True).content.decode()
    assert "cannot be sorted by customer_name" in page


def test_orders_filter_by_status_through_the_index_and_search_by_id(
    store: DynamoStore, role_client: Any
):
    # Given a cancelled order and a pending one
    cancelled = make_order(store, OrderStatus.CANCELLED)
    pending = make_order(store, OrderStatus.PENDING)
    client = role_client("viewer")

    # When a viewer filters by CANCELLED, and searches the pending order's id
    by_status = client.get(ORDERS, {"status": "CANCELLED"}).content.decode()
    by_id = client.get(ORDERS, {"q": pending.order_id}).content.decode()
    nothing = client.get(ORDERS).content.decode()

    # Then the filter sidebar marks the choice and the rows match; the search finds the order
    assert cancelled.order_id in pks(by_status) and pending.order_id not in pks(by_status)
    assert re.search(r'<li class="selected"><a href="[^"]*status=CANCELLED', by_status)
    assert pks(by_id) == [pending.order_id]
    assert "Pick a status, or search" in nothing


def test_the_detail_and_history_pages_read_one_object_and_its_audit_entries(
    store: DynamoStore, role_client: Any
):
    # Given an item and an audit entry about it
    name = make_item(store, stock=5)
    record(
        user=None,
        actor="someone",
        action=Action.INVENTORY_ADJUST,
        outcome="succeeded",
        obj=("operations.inventoryitem", name),
        before={"stock": 5},
        after={"stock": 7},
    )
    client = role_client("viewer")

    # When a viewer opens its page and its history
    detail = client.get(f"{ITEMS}{name}/change/").content.decode()
    history = client.get(f"{ITEMS}{name}/history/").content.decode()
    missing = client.get(f"{ITEMS}no-such-item-{uuid.uuid4().hex}/change/")

    # Then the detail shows its fields read-only, without a save button; the history the entry
    assert 'class="readonly">5<' in detail and 'name="_save"' not in detail
    assert "historylink" in detail
    assert "someone" in history and "{&#x27;stock&#x27;: 5}" in history
    assert missing.status_code == 404


def test_unmanaged_models_have_no_table_and_are_never_queried(db: None):
    with pytest.raises(NotImplementedError):
        from django.contrib import admin

        admin.site._registry[InventoryRow].get_queryset(None)


@pytest.mark.urls("tests.integration.admin.mechanism_urls")
def test_a_cursor_is_good_for_its_own_list_only(store: DynamoStore, role_client: Any):
    # Given a next-page link of one list (the in-memory one)
    client = role_client("viewer")
    first = client.get("/mechanism/operations/inventoryitem/").content.decode()
    cursor = re.search(r"cursor=([^&\"]+)", link(first, "page-next")).group(1)

    # When its cursor is handed to the orders list
    page = client.get(ORDERS, {"status": "PENDING", "cursor": cursor}, follow=True)

    # Then the orders list refuses it
    assert "This page link is not valid" in page.content.decode()


def test_orders_page_through_the_status_index(store: DynamoStore, role_client: Any):
    # Given three cancelled orders (and whatever other tests left in that status)
    made = {make_order(store, OrderStatus.CANCELLED).order_id for _ in range(3)}
    OrderAdmin.list_per_page = 2
    try:
        client = role_client("viewer")
        seen: list[str] = []
        page = client.get(ORDERS, {"status": "CANCELLED"}).content.decode()
        seen += pks(page)
        while (following := link(page, "page-next")) is not None:
            page = client.get(ORDERS + following).content.decode()
            seen += pks(page)
    finally:
        OrderAdmin.list_per_page = 25

    # Then every page held at most 2, no order showed twice, and all three were listed
    assert len(seen) == len(set(seen)) and made <= set(seen)
