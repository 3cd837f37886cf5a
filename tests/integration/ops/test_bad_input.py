"""Bad text on the staff pages: the form says what is wrong, and nothing is written or logged."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from operations.models import AuditLogEntry
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from tests.integration.ops.orders import make_item, unique

pytestmark = pytest.mark.integration

# (text, what the page says). Lone surrogates cannot be sent by a browser (a form body is
# UTF-8, which has none); tests/unit/test_ops_forms_text.py checks the forms refuse them.
HIDDEN = {
    "bidi override": ("Desk\u202elamp", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    "bidi isolate": ("Desk\u2067lamp", "U+2067 RIGHT-TO-LEFT ISOLATE"),
    "zero-width space": ("Desk\u200blamp", "U+200B ZERO WIDTH SPACE"),
    "byte order mark": ("Desk\ufefflamp", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    "escape sequence": ("Desk\x1b[2Jlamp", "must not contain control characters"),
}


@pytest.mark.parametrize("text", HIDDEN.values(), ids=HIDDEN.keys())
def test_a_new_item_with_a_hidden_character_in_its_description_is_not_created(
    staff: Client, store: DynamoStore, text: tuple[str, str]
):
    # Given a new item whose description holds a hidden character
    name = unique("item")
    data = {"item_name": name, "stock": "5", "price": "9.99", "description": text[0]}

    # When staff submit it
    response = staff.post("/ops/inventory/new/", data)

    # Then the form is shown again saying what is wrong, and nothing was written or logged
    assert response.status_code == 200
    assert text[1] in response.content.decode()
    assert store.inventory_get(name) is None
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize("name", ["Desk\u202elamp", "Desk\u200blamp", "lamp\x00", "x" * 101])
def test_a_new_item_with_a_bad_or_long_name_is_not_created(
    staff: Client, store: DynamoStore, name: str
):
    # When staff submit an item whose name has a hidden character or is one too long
    response = staff.post("/ops/inventory/new/", {"item_name": name, "stock": "5", "price": "1"})

    # Then the form refuses it, and no item was written or logged
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert store.inventory_get(name) is None and store.inventory_get(name.strip()) is None
    assert not AuditLogEntry.objects.exists()


def test_an_edit_with_a_hidden_character_or_too_long_changes_nothing(
    staff: Client, store: DynamoStore
):
    # Given an existing item
    name = make_item(store, stock=7, price="5.00")
    url = reverse("operations:inventory-edit", args=[name])

    # When staff save a description with a bidi override, then one of 501 characters
    hidden = staff.post(url, {"price": "6.00", "description": "Warm\u202dlight"})
    long = staff.post(url, {"price": "6.00", "description": "x" * 501})

    # Then both forms say why, and the item and the audit log are as they were
    assert "U+202D LEFT-TO-RIGHT OVERRIDE" in hidden.content.decode()
    assert "at most 500 characters" in long.content.decode()
    assert store.inventory_get(name) == InventoryItem(name, 7, Decimal("5.00"), "test item")
    assert not AuditLogEntry.objects.exists()


def test_a_stock_adjustment_whose_reason_hides_text_moves_no_stock(
    staff: Client, store: DynamoStore
):
    # Given an item with 10 in stock
    name = make_item(store, stock=10)

    # When staff adjust it with a reason that reverses the text after it
    response = staff.post(
        reverse("operations:inventory-adjust", args=[name]),
        {"delta": "-3", "reason": "count fixed \u202e 01 ot 3"},
    )

    # Then the reason is refused on the form, and the stock and audit log are unchanged
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in response.content.decode()
    assert store.inventory_get(name).stock == 10
    assert not AuditLogEntry.objects.exists()


# The order actions' and the customer search's bad input: tests/integration/admin/test_orders.py.
