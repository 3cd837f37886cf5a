"""/ops/inventory/: the Inventory table (DynamoDB) managed by staff, never losing stock."""

from __future__ import annotations

import random
import threading
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.urls import reverse

from operations.models import AuditLogEntry
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from pipeline.orders import order_submit
from pipeline.reservation import inventory_reserve
from pipeline.statuses import OrderStatus
from tests.integration.ops.conftest import last_audit
from tests.integration.ops.orders import make_item, make_order, unique

pytestmark = pytest.mark.integration

Outcome = AuditLogEntry.Outcome


def adjust(client: Client, name: str, delta: int, reason: str = "stock count") -> Any:
    return client.post(
        reverse("operations:inventory-adjust", args=[name]),
        {"delta": delta, "reason": reason},
        follow=True,
    )


# -- Listing and creating ---------------------------------------------------------------------


def test_the_list_shows_every_item_with_stock_and_price(staff: Client, store: DynamoStore):
    # Given an item priced with two decimals
    name = make_item(store, stock=42, price="19.90")

    # When staff open the inventory
    page = staff.get("/ops/inventory/?page=1").content.decode()

    # Then the item shows with its stock and its price as money, with links to change it
    row = page[page.index(f'data-item="{name}"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="stock">42</td>' in row
    assert '<td class="price">19.90</td>' in row
    assert f"/ops/inventory/{name}/adjust/" in row


def test_creating_an_item_writes_it_with_a_decimal_price(
    staff: Client, store: DynamoStore, staff_user: Any
):
    # Given a name nobody uses yet
    name = unique("Desk Fan")

    # When staff create it
    response = staff.post(
        "/ops/inventory/new/",
        {"item_name": f"  {name} ", "stock": 12, "price": "24.99", "description": "Quiet"},
        follow=True,
    )

    # Then the Inventory table has it, price exact, name trimmed, and staff are told
    item = store.inventory_get(name)
    assert item == InventoryItem(name, 12, Decimal("24.99"), "Quiet")
    assert f"Created {name}: stock 12, price 24.99." in response.content.decode()
    # And it is in the audit log
    entry = last_audit()
    assert (entry.action, entry.item_name, entry.outcome, entry.actor) == (
        "inventory_create",
        name,
        Outcome.SUCCEEDED,
        staff_user.username,
    )
    assert entry.detail == {"stock": 12, "price": "24.99", "description": "Quiet"}


def test_creating_an_item_that_exists_is_refused_and_keeps_the_existing_one(
    staff: Client, store: DynamoStore
):
    # Given an existing item
    name = make_item(store, stock=7, price="5.00")

    # When staff try to create one with the same name
    page = staff.post(
        "/ops/inventory/new/", {"item_name": name, "stock": 999, "price": "1.00"}
    ).content.decode()

    # Then it is refused and the existing item keeps its stock and price
    assert f"Refused: an item named {name} exists. Nothing was changed." in page
    assert store.inventory_get(name) == InventoryItem(name, 7, Decimal("5.00"), "test item")
    assert last_audit().outcome == Outcome.REFUSED


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"item_name": "bad/name"}, "item name may hold letters, digits"),
        ({"item_name": "-leading-dash"}, "must start with a letter or digit"),
        ({"price": "19.999"}, "Ensure that there are no more than 2 decimal places."),
        ({"price": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"price": "abc"}, "Enter a number."),
        ({"stock": "-1"}, "Ensure this value is greater than or equal to 0."),
        ({"stock": "2.5"}, "Enter a whole number."),
    ],
)
def test_invalid_items_are_refused_with_the_reason_and_nothing_is_written(
    staff: Client, store: DynamoStore, fields: dict[str, str], message: str
):
    # Given an otherwise valid new item with one bad field
    name = unique("item")
    data = {"item_name": name, "stock": "5", "price": "9.99", **fields}

    # When staff submit it
    response = staff.post("/ops/inventory/new/", data)

    # Then the form says what is wrong, and no item was written or logged
    assert response.status_code == 200
    assert message in response.content.decode()
    assert store.inventory_get(data["item_name"].strip()) is None
    assert not AuditLogEntry.objects.exists()


# -- Adjusting stock --------------------------------------------------------------------------


def test_adjusting_stock_adds_to_the_stock_as_it_is_when_submitted(
    staff: Client, store: DynamoStore
):
    # Given the adjust form opened while the item had 10 in stock
    name = make_item(store, stock=10)
    form = staff.get(f"/ops/inventory/{name}/adjust/").content.decode()
    assert '<td class="stock">10</td>' in form

    # And an order reserved 3 meanwhile
    make_order(store, OrderStatus.RESERVED, lines=[(name, 3)])

    # When staff add 5
    page = adjust(staff, name, 5).content.decode()

    # Then the stock is 7 + 5, not the 10 + 5 the form showed: the reservation is kept
    assert store.inventory_get(name).stock == 12
    assert f"Stock of {name} is now 12 (+5)." in page
    entry = last_audit()
    assert (entry.action, entry.item_name, entry.detail) == (
        "inventory_adjust_stock",
        name,
        {"delta": 5, "stock_after": 12},
    )


def test_removing_more_than_the_stock_is_refused_and_changes_nothing(
    staff: Client, store: DynamoStore
):
    # Given an item with 2 in stock
    name = make_item(store, stock=2)

    # When staff try to remove 3
    page = adjust(staff, name, -3).content.decode()

    # Then it is refused, the stock stays 2, and the refusal is logged
    assert f"Refused: {name} has 2 in stock; removing 3 would take it below zero." in page
    assert store.inventory_get(name).stock == 2
    assert (last_audit().action, last_audit().outcome) == ("inventory_adjust_stock", "refused")


def test_adjusting_an_item_that_does_not_exist_is_refused(staff: Client, store: DynamoStore):
    # When staff adjust an unknown item
    page = adjust(staff, "no-such-item", 5).content.decode()

    # Then it is refused, and no item was created by the update
    assert "Refused: there is no item named no-such-item." in page
    assert store.inventory_get("no-such-item") is None


def test_a_zero_adjustment_is_refused_by_the_form(staff: Client, store: DynamoStore):
    # Given an item
    name = make_item(store, stock=4)

    # When staff submit a change of 0
    response = staff.post(f"/ops/inventory/{name}/adjust/", {"delta": 0, "reason": "x"})

    # Then the form says so and nothing is logged
    assert "must not be 0" in response.content.decode()
    assert not AuditLogEntry.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_adjustments_racing_with_reservations_lose_no_stock(staff_user: Any, store: DynamoStore):
    # Given an item with 200 in stock, 40 pending orders for one unit each, and staff adjustments
    name = make_item(store, stock=200)
    orders = [
        order_submit(store=store, customer_name="Racer", items=[name]).order_id for _ in range(40)
    ]
    deltas = [5] * 20 + [-3] * 10
    work: list[tuple[str, Any]] = [("reserve", oid) for oid in orders] + [
        ("adjust", d) for d in deltas
    ]
    random.Random(7).shuffle(work)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(chunk: list[tuple[str, Any]]) -> None:
        # Each thread is a staff browser (its own session) or the stream's handler.
        client = Client()
        client.force_login(staff_user)
        try:
            for kind, value in chunk:
                if kind == "reserve":
                    outcome = inventory_reserve(store=store, order_id=value)
                    assert outcome.reserved_now, outcome.order.status_reason
                else:
                    response = adjust(client, name, value)
                    assert "is now" in response.content.decode()
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    # When they all run at once, through the portal's adjust page and the reservation use case
    threads = [threading.Thread(target=worker, args=(work[i::6],)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    # Then every reservation and every adjustment counted: 200 - 40 + 100 - 30
    assert not errors, errors
    assert store.inventory_get(name).stock == 200 - 40 + sum(deltas) == 230
    assert all(store.order_get(oid).status == OrderStatus.RESERVED for oid in orders)
    # And each adjustment is in the audit log
    assert AuditLogEntry.objects.filter(item_name=name, outcome="succeeded").count() == len(deltas)


# -- Editing and deleting ---------------------------------------------------------------------


def test_editing_price_and_description_never_touches_the_stock(staff: Client, store: DynamoStore):
    # Given the edit form opened while the item had 10 in stock
    name = make_item(store, stock=10, price="10.00")
    form = staff.get(f"/ops/inventory/{name}/edit/").content.decode()
    assert 'value="10.00"' in form

    # And an order reserved 4 meanwhile
    make_order(store, OrderStatus.RESERVED, lines=[(name, 4)])

    # When staff save a new price and description
    page = staff.post(
        f"/ops/inventory/{name}/edit/",
        {"price": "12.50", "description": "New model"},
        follow=True,
    ).content.decode()

    # Then price and description changed, and the reservation's 4 units are still gone
    assert store.inventory_get(name) == InventoryItem(name, 6, Decimal("12.50"), "New model")
    assert f"Saved {name}: price 12.50." in page
    assert last_audit().action == "inventory_update_details"


def test_editing_an_item_deleted_meanwhile_is_refused_and_does_not_recreate_it(
    staff: Client, store: DynamoStore
):
    # Given an item deleted after its edit form was opened
    name = make_item(store)
    staff.get(f"/ops/inventory/{name}/edit/")
    store.inventory_delete(name)

    # When the form is saved
    page = staff.post(
        f"/ops/inventory/{name}/edit/", {"price": "1.00", "description": ""}, follow=True
    ).content.decode()

    # Then it is refused and the item stays gone
    assert f"Refused: there is no item named {name}." in page
    assert store.inventory_get(name) is None


def test_deleting_an_item_after_confirmation(staff: Client, store: DynamoStore):
    # Given an item
    name = make_item(store, stock=3)
    confirm = staff.get(f"/ops/inventory/{name}/delete/").content.decode()

    # When staff confirm the deletion with a reason
    page = staff.post(
        f"/ops/inventory/{name}/delete/", {"reason": "discontinued"}, follow=True
    ).content.decode()

    # Then the confirmation showed the item, and the item is gone, with what it had logged
    assert '<td class="stock">3</td>' in confirm
    assert store.inventory_get(name) is None
    assert f"Deleted {name} (it had 3 in stock)." in page
    entry = last_audit()
    assert (entry.action, entry.reason, entry.detail["stock"]) == (
        "inventory_remove",
        "discontinued",
        3,
    )


def test_deleting_needs_a_reason_and_a_missing_item_is_refused(staff: Client, store: DynamoStore):
    # Given an item
    name = make_item(store)

    # When the deletion is posted without a reason
    response = staff.post(f"/ops/inventory/{name}/delete/", {"reason": ""})

    # Then nothing is deleted
    assert "This field is required." in response.content.decode()
    assert store.inventory_get(name) is not None

    # When an item that does not exist is deleted
    page = staff.post(
        "/ops/inventory/no-such-item/delete/", {"reason": "cleanup"}, follow=True
    ).content.decode()

    # Then it is refused
    assert "Refused: there is no item named no-such-item." in page
