"""Bad text on the inventory admin pages: the form says what is wrong, and nothing is written
or logged (the same rules as the API and the CSV import)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest

from operations.models import AuditLogEntry
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from tests.integration.admin.conftest import csrf_post

pytestmark = pytest.mark.integration

BASE = "/admin/operations/inventoryitem/"

# (text, what the page says). Lone surrogates cannot be sent by a browser (a form body is
# UTF-8, which has none); tests/unit/test_ops_forms_text.py checks the forms refuse them.
HIDDEN = {
    "bidi override": ("Desk\u202elamp", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    "bidi isolate": ("Desk\u2067lamp", "U+2067 RIGHT-TO-LEFT ISOLATE"),
    "zero-width space": ("Desk\u200blamp", "U+200B ZERO WIDTH SPACE"),
    "byte order mark": ("Desk\ufefflamp", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    "escape sequence": ("Desk\x1b[2Jlamp", "must not contain control characters"),
}


def _item(store: DynamoStore) -> str:
    name = f"bad-{uuid.uuid4().hex[:10]}"
    assert store.inventory_put_if_absent(InventoryItem(name, 7, Decimal("5.00"), "test item"))
    return name


@pytest.mark.parametrize("text", HIDDEN.values(), ids=HIDDEN.keys())
def test_a_new_item_with_a_hidden_character_in_its_description_is_not_created(
    role_client: Any, store: DynamoStore, text: tuple[str, str]
):
    # Given a new item whose description holds a hidden character
    name = f"new-{uuid.uuid4().hex[:10]}"
    data = {"item_name": name, "stock": "5", "price": "9.99", "description": text[0]}

    # When an operator submits it
    response = csrf_post(role_client("operator"), BASE + "create/", data)

    # Then the form is shown again saying what is wrong, and nothing was written or logged
    assert response.status_code == 200
    assert text[1] in response.content.decode()
    assert store.inventory_get(name) is None
    assert not AuditLogEntry.objects.exists()


@pytest.mark.parametrize(
    "name", ["Desk\u202elamp", "Desk\u200blamp", "lamp\x00", "x" * 101, "pen<script>"]
)
def test_a_new_item_with_a_bad_or_long_name_is_not_created(
    role_client: Any, store: DynamoStore, name: str
):
    data = {"item_name": name, "stock": "5", "price": "1"}
    response = csrf_post(role_client("operator"), BASE + "create/", data)
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert store.inventory_get(name) is None and store.inventory_get(name.strip()) is None
    assert not AuditLogEntry.objects.exists()


BAD_NUMBERS = {
    "negative stock": {"stock": "-1", "price": "1.00"},
    "fractional stock": {"stock": "1.5", "price": "1.00"},
    "three decimals": {"stock": "1", "price": "1.999"},
    "negative price": {"stock": "1", "price": "-1"},
    "text price": {"stock": "1", "price": "cheap"},
    "negative threshold": {"stock": "1", "price": "1", "low_stock_threshold": "-1"},
}


@pytest.mark.parametrize("numbers", BAD_NUMBERS.values(), ids=BAD_NUMBERS.keys())
def test_bad_numbers_create_nothing(role_client: Any, store: DynamoStore, numbers: dict):
    name = f"num-{uuid.uuid4().hex[:10]}"
    response = csrf_post(role_client("operator"), BASE + "create/", {"item_name": name, **numbers})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert store.inventory_get(name) is None
    assert not AuditLogEntry.objects.exists()


def test_an_edit_with_a_hidden_character_or_too_long_changes_nothing(
    role_client: Any, store: DynamoStore
):
    # Given an existing item and its edit page
    name = _item(store)
    operator = role_client("operator")
    page = operator.get(f"{BASE}{name}/edit/").content.decode()
    seen = page.split('name="seen" value="')[1].split('"')[0]
    url = f"{BASE}{name}/edit/"

    # When a description with a bidi override, then one of 501 characters, is saved
    hidden = csrf_post(operator, url, {"price": "6.00", "description": "Warm\u202dlight",
                                       "seen": seen})  # fmt: skip
    long = csrf_post(operator, url, {"price": "6.00", "description": "x" * 501, "seen": seen})

    # Then both forms say why, and the item and the audit log are as they were
    assert "U+202D LEFT-TO-RIGHT OVERRIDE" in hidden.content.decode()
    assert "at most 500 characters" in long.content.decode()
    assert store.inventory_get(name) == InventoryItem(name, 7, Decimal("5.00"), "test item")
    assert not AuditLogEntry.objects.exists()


def test_a_restock_whose_reason_hides_text_moves_no_stock(role_client: Any, store: DynamoStore):
    name = _item(store)
    response = csrf_post(
        role_client("operator"),
        f"{BASE}{name}/restock/",
        {"delta": "-3", "reason": "count fixed \u202e 01 ot 3"},
    )
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in response.content.decode()
    assert store.inventory_get(name).stock == 7  # type: ignore[union-attr]
    assert not AuditLogEntry.objects.exists()
