"""The management commands: populate_inventory, create_api_key, pipeline_status."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from orders_api.management.commands.populate_inventory import CATALOGUE
from orders_api.models import ClientAPIKey
from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.api.conftest import post_order

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


def test_populate_without_the_pipeline_env_says_what_to_do(monkeypatch: pytest.MonkeyPatch):
    # Given no table names in the environment
    monkeypatch.delenv("ORDERS_TABLE_NAME", raising=False)
    monkeypatch.delenv("INVENTORY_TABLE_NAME", raising=False)

    # When the command runs, Then it fails with a hint instead of a traceback
    with pytest.raises(CommandError, match=r"pipeline\.local"):
        run("populate_inventory")


# -- create_api_key -------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_on_its_last_line(api, make_plan: Any):
    # Given a plan
    make_plan("gold", rate_limit=200, burst_limit=400, daily_quota=None)

    # When a key is created for a client on it, expiring next year
    output = run("create_api_key", "Acme Corp", "--plan", "gold", "--expires", "2099-01-01")

    # Then the last line is the key alone, and it is stored hashed with the plan and expiry
    raw = output.strip().splitlines()[-1]
    prefix = raw.split(".")[0]
    key = ClientAPIKey.objects.get(prefix=prefix)
    assert key.name == "Acme Corp"
    assert key.plan is not None and key.plan.name == "gold"
    assert key.expiry_date == datetime(2099, 1, 1, tzinfo=UTC)
    assert raw not in key.hashed_key and raw not in key.id
    assert "unlimited/day" in output
    # And the key submits orders
    response = post_order(api, raw, {"CustomerName": "Acme", "Items": ["laptop"]})
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acme", "--plan", "platinum"], "no usage plan named 'platinum'"),
        (["Acme", "--expires", "tomorrow"], "not an ISO 8601"),
        (["Acme", "--expires", "2001-01-01"], "in the past"),
        (["x" * 51], "1 to 50 characters"),
    ],
)
def test_create_api_key_refuses_bad_arguments(args: list[str], message: str):
    # When the command gets a bad argument, Then it says which, and creates nothing
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ClientAPIKey.objects.exists()


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
