"""DataAdmin over DynamoDB Local: the inventory and orders changelists page with opaque
cursors (next and previous), search, filter and sort as the admin's own pages do; a cursor
that was edited is refused; detail and history pages read one object and its audit entries."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import pytest

from operations.admin.inventory import InventoryItemAdmin
from operations.audit import Action, record
from operations.models import InventoryItem as InventoryRow
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from pipeline.statuses import OrderStatus
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


def test_the_changelist_pages_forward_and_back_with_opaque_cursors(
    store: DynamoStore, role_client: Any
):
    # Given 7 items sharing a word, on pages of 3
    word = uuid.uuid4().hex[:8]
    names = sorted(f"{word}-{n}" for n in range(7))
    for name in names:
        store.inventory_put(InventoryItem(name, 1, Decimal("1.00"), "paged"))
    InventoryItemAdmin.list_per_page = 3
    try:
        client = role_client("viewer")
        # When a viewer searches for the word, sorted by name, and walks the pages
        first = client.get(ITEMS, {"q": word, "o": "item_name"}).content.decode()
        second = client.get(ITEMS + link(first, "page-next")).content.decode()
        third = client.get(ITEMS + link(second, "page-next")).content.decode()
        back = client.get(ITEMS + link(third, "page-previous")).content.decode()
        back_again = client.get(ITEMS + link(back, "page-previous")).content.decode()
    finally:
        InventoryItemAdmin.list_per_page = 25

    # Then the pages hold 3, 3 and 1 rows in order, the last has no next link, and previous
    # leads back to the same pages
    assert pks(first) + pks(second) + pks(third) == names
    assert link(third, "page-next") is None and link(first, "page-previous") is None
    assert pks(back) == pks(second) and pks(back_again) == pks(first)
    # And the page is the admin's: search box with the term, sortable header, count
    assert 'id="searchbar"' in first and f'value="{word}"' in first
    assert "sorted ascending" in first and "7 in all" in first


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
