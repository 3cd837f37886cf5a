"""The operations commands populate_inventory and pipeline_status (replay_dlq: test_dlq.py)."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from operations.management.commands.populate_inventory import CATALOGUE
from pipeline.adapters.dynamodb import DynamoStore

pytestmark = pytest.mark.integration


def run(*args: str) -> str:
    """Run a command; return what it printed."""
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _empty_inventory(store: DynamoStore) -> None:
    for item in list(store.inventory_scan()):
        store.inventory_delete(item.item_name)


# -- populate_inventory ---------------------------------------------------------------------


def test_populate_creates_the_seed_items_with_decimal_prices(store: DynamoStore):
    # Given an empty Inventory table
    _empty_inventory(store)

    # When the command runs
    output = run("populate_inventory")

    # Then the seed's laptop, mouse and keyboard and ten more are there, priced exactly
    rows = {row.item_name: row for row in store.inventory_scan()}
    assert {"laptop", "mouse", "keyboard"} <= set(rows)
    assert len(rows) == len(CATALOGUE) >= 13
    assert rows["mouse"].price == Decimal("25.50")
    assert isinstance(rows["laptop"].price, Decimal)
    # And it reported each item and a summary
    assert f"[ 1/{len(CATALOGUE)}] laptop" in output
    assert f"Done: {len(CATALOGUE)} created, 0 kept, 0 reset." in output


def test_rerun_keeps_changed_stock_and_reset_restores_it(store: DynamoStore):
    # Given a populated table where the laptop's stock has changed since
    _empty_inventory(store)
    run("populate_inventory")
    store.inventory_adjust("laptop", -7)
    store.inventory_delete("mouse")
    laptop_stock = store.inventory_get("laptop").stock

    # When the command runs again
    output = run("populate_inventory")

    # Then the changed stock is kept, and only the missing item is created
    assert store.inventory_get("laptop").stock == laptop_stock
    assert store.inventory_get("mouse") is not None
    assert f"Done: 1 created, {len(CATALOGUE) - 1} kept, 0 reset." in output

    # When it runs with --reset
    output = run("populate_inventory", "--reset")

    # Then every item is back to the catalogue's numbers
    catalogue_laptop = next(item for item in CATALOGUE if item.item_name == "laptop")
    assert store.inventory_get("laptop").stock == catalogue_laptop.stock
    assert f"Done: 0 created, 0 kept, {len(CATALOGUE)} reset." in output


def test_reset_restores_price_and_description_and_recreates_missing_items(store: DynamoStore):
    # Given a populated table where the mouse was repriced and the keyboard removed
    _empty_inventory(store)
    run("populate_inventory")
    store.inventory_update_details("mouse", price=Decimal("1.00"), description="on sale")
    store.inventory_delete("keyboard")

    # When it runs with --reset
    output = run("populate_inventory", "--reset")

    # Then both are the catalogue's again, and every item is reported reset
    catalogue = {item.item_name: item for item in CATALOGUE}
    assert store.inventory_get("mouse") == catalogue["mouse"]
    assert store.inventory_get("keyboard") == catalogue["keyboard"]
    assert f"Done: 0 created, 0 kept, {len(CATALOGUE)} reset." in output


def test_populate_without_the_pipeline_env_says_what_to_do(monkeypatch: pytest.MonkeyPatch):
    # Given no table names in the environment
    monkeypatch.delenv("ORDERS_TABLE_NAME", raising=False)
    monkeypatch.delenv("INVENTORY_TABLE_NAME", raising=False)

    # When the command runs, Then it fails with a hint instead of a traceback
    with pytest.raises(CommandError, match=r"pipeline\.local"):
        run("populate_inventory")


# -- pipeline_status ------------------------------------------------------------------------


def test_pipeline_status_counts_tables_and_reports_missing_queues(store: DynamoStore):
    # Given the tables (with some inventory) but no queues configured
    _empty_inventory(store)
    run("populate_inventory")

    # When the status is asked for, exactly, as JSON
    report = json.loads(run("pipeline_status", "--json", "--exact"))

    # Then it shows the endpoints, the counts, and the queues' problem without failing
    assert report["endpoints"]["AWS_ENDPOINT_URL_DYNAMODB"].startswith("http://127.0.0.1:")
    assert report["tables"]["inventory"] == {
        "table": store.inventory_table,
        "items": len(CATALOGUE),
        "exact": True,
    }
    assert "ORDERS_QUEUE_URL is not set" in report["queues"]["orders"]["error"]

    # And the text form says the same for people
    text = run("pipeline_status")
    assert f"inventory: {len(CATALOGUE)} items" in text
    assert "orders_queue_url: (not set)" in text
