"""A staff member's day in the operations portal, in a real browser: log in, add an item, find
it by search and restock it, import a CSV with a bad row (the line is shown) then a good one,
watch an API order ship, replay a dead letter in the admin (an operator);
and a viewer, who sees the dead-letter queue but can change nothing."""

from __future__ import annotations

import os
import re
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from operations.models import AuditLogEntry
from orders_api.models import ClientAPIKey
from pipeline import wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.statuses import OrderStatus
from tests.integration.api.servers import PortalServer
from tests.integration.ops.test_orders import stranded_order, wait_for_status

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.serial,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "a long staff password 42"


def snap(page: Any, name: str) -> None:
    """Keep a screenshot when OPS_BROWSER_SCREENSHOTS names a folder (to look at the pages)."""
    folder = os.environ.get("OPS_BROWSER_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def reload_until(page: Any, selector: str, text: str, timeout: float = 90) -> None:
    """Reload the page until `selector` shows `text` (the pipeline works in the background)."""
    deadline = time.monotonic() + timeout
    while page.locator(selector).inner_text().strip() != text:
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} still {page.locator(selector).inner_text()!r}")
        time.sleep(0.5)
        page.reload()


def test_staff_manage_inventory_follow_an_order_and_replay_the_dlq(
    page: Any, portal: PortalServer, dlq: SqsQueue
):
    base = portal.url
    store = wiring.dynamo_store()
    staff = get_user_model().objects.create_user("operator", password=PASSWORD, is_staff=True)
    staff.groups.add(Group.objects.get(name="operator"))
    _, api_key = ClientAPIKey.objects.create_key(name="browser test client")
    item = f"Lamp {uuid.uuid4().hex[:6]}"

    # Given a staff member who opens the operations portal and is asked to log in
    page.goto(f"{base}/ops/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", staff.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")

    # Then they land on the dashboard, inside the admin's frame
    page.wait_for_url(f"{base}/ops/")
    assert page.locator("h1").inner_text() == "Operations dashboard"
    assert page.locator("#order-counts").is_visible()
    assert page.locator("#queues").inner_text().count("Stream-failure queue") == 1
    snap(page, "dashboard")

    # When they open the inventory (the admin's page) and add an item
    page.click(".ops-menu >> text=Inventory")
    page.wait_for_url(f"{base}/admin/operations/inventoryitem/")
    page.click("#inventory-add")
    page.fill("#id_item_name", item)
    page.fill("#id_stock", "5")
    page.fill("#id_price", "12.50")
    page.fill("#id_description", "Browser-made lamp")
    page.click("#form-submit")

    # Then it is in the Inventory table, and they are told
    assert f"Created {item}" in page.locator(".messagelist").inner_text()
    assert store.inventory_get(item).price == Decimal("12.50")

    # When they find it from the list by searching part of its name
    page.goto(f"{base}/admin/operations/inventoryitem/")
    page.fill("#searchbar", item.split()[1])
    page.press("#searchbar", "Enter")

    # Then it is the one row found, with its stock and price
    rows = page.locator("#result_list tbody tr[data-pk]")
    assert rows.count() == 1
    assert rows.first.get_attribute("data-pk") == item
    assert re.search(r"\b5\b.*12\.50", rows.first.inner_text().replace("\n", " "))
    snap(page, "inventory-search")

    # When they open it and restock it by 7
    rows.first.locator("a").first.click()
    page.click("#item-restock")
    page.fill("#id_delta", "7")
    page.fill("#id_reason", "delivery arrived")
    page.click("#form-submit")

    # Then the item's page and the table show 12
    assert "is now 12" in page.locator(".messagelist").inner_text()
    assert store.inventory_get(item).stock == 12
    snap(page, "inventory")

    # When they import a CSV with a bad row (line 3: negative stock)
    second = f"{item}-shade"
    header = "ItemName,Stock,Price,Description,LowStockThreshold\n"
    bad = header + f"{item},12,12.50,Browser-made lamp,3\n{second},-4,3.00,,\n"
    page.goto(f"{base}/admin/operations/inventoryitem/")
    page.click("#inventory-import")
    page.set_input_files(
        "#id_file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": bad.encode()}]
    )
    page.click("#form-submit")

    # Then the job reports line 3 and why, and nothing was written
    page.wait_for_selector("#import-summary", timeout=60_000)
    assert "Nothing was imported" in page.locator("#import-summary").inner_text()
    errors = page.locator("#import-errors").inner_text()
    assert "3" in page.locator("#import-errors .import-line").first.inner_text()
    assert "Stock: must be 0 or more" in errors
    assert store.inventory_get(second) is None
    assert store.inventory_get(item).low_stock_threshold is None
    snap(page, "import-bad")

    # When they import the corrected file
    good = header + f"{item},12,12.50,Browser-made lamp,3\n{second},4,3.00,,\n"
    page.click("#import-another")
    page.set_input_files(
        "#id_file", files=[{"name": "good.csv", "mimeType": "text/csv", "buffer": good.encode()}]
    )
    page.click("#form-submit")

    # Then the progress bar finishes with one item created and one updated
    page.wait_for_selector("#import-summary", timeout=60_000)
    assert page.locator("#import-summary").inner_text() == (
        "Imported: 1 created, 1 updated, 0 unchanged."
    )
    assert page.locator("#import-progress").get_attribute("value") == "2"
    assert store.inventory_get(second).stock == 4
    assert store.inventory_get(item).low_stock_threshold == 3
    snap(page, "import-good")

    # When a client orders two of them through the API
    reply = portal.request(
        "POST",
        "/submitorder",
        body={"CustomerName": "Browser Customer", "Items": [{"ItemName": item, "Quantity": 2}]},
        headers={"x-api-key": api_key},
    )
    assert reply.status == 200, reply.body
    order_id = reply.json()["OrderId"]

    # Then the order's page shows it reaching SHIPPED, with its whole history
    page.goto(f"{base}/ops/orders/{order_id}/")
    reload_until(page, "#order-status", "SHIPPED")
    history = page.locator("#status-history").inner_text()
    for status in ("PENDING", "RESERVED", "PAID", "SHIPPED"):
        assert status in history
    assert "SUCCEEDED" in page.locator("#executions").inner_text()
    assert store.inventory_get(item).stock == 10
    snap(page, "order")

    # Given a dead letter for an order whose queue message was lost
    stranded = stranded_order(store, item)
    message_id = dlq.send_json({"OrderId": stranded.order_id, "Attempt": 1})

    # When they open the Orders DLQ from the admin's sidebar (the page receives nothing), ask
    # to look at the messages, select it and replay it with a reason
    page.click("#nav-sidebar >> text=Orders DLQ messages")
    page.wait_for_url(f"{base}/admin/operations/ordersdeadletter/")
    page.click("#list-rows")
    dlq_row = page.locator(f'tr[data-pk="{message_id}"]')
    assert stranded.order_id in dlq_row.inner_text()
    assert "RESERVED" in dlq_row.inner_text()
    dlq_row.locator("input.action-select").check()
    snap(page, "dlq")
    page.select_option("select[name=action]", "replay_selected")
    page.click("#run-action")
    page.fill("#id_reason", "carrier outage over")
    page.click("#action-confirm")

    # Then the job page follows the worker's progress to the summary
    page.wait_for_selector("#job-summary", timeout=60_000)
    assert page.locator("#job-summary").inner_text() == (
        "Replay finished: 1 moved, 0 failed, 0 skipped."
    )
    assert re.search(r"/admin/operations/replayjob/[0-9a-f-]+/change/$", page.url)
    # And the message left the DLQ, and its order went on to ship
    assert dlq.depth()["visible"] == 0
    wait_for_status(store, stranded.order_id, OrderStatus.SHIPPED)
    # And the audit log has each of the staff member's actions
    entries = AuditLogEntry.objects.filter(actor="operator").order_by("at")
    actions = list(entries.values_list("action", flat=True))
    assert actions == [
        "inventory_create",
        "inventory_adjust_stock",
        "inventory_update_details",  # the import: the lamp's threshold
        "inventory_create",  # the import: the shade
        "dlq_replay",
    ]


def test_a_viewer_sees_the_dead_letter_queue_but_can_change_nothing(
    page: Any, portal: PortalServer, dlq: SqsQueue
):
    base = portal.url
    viewer = get_user_model().objects.create_user("viewer", password=PASSWORD, is_staff=True)
    viewer.groups.add(Group.objects.get(name="viewer"))
    message_id = dlq.send_raw("not a fulfilment request")

    # Given a viewer who logs in through the admin
    page.goto(f"{base}/admin/operations/ordersdeadletter/")
    page.fill("#id_username", viewer.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/operations/ordersdeadletter/")

    # When they look at the messages
    page.click("#list-rows")

    # Then the message is listed, with no checkbox, no actions, no replay or purge
    assert page.locator(f'tr[data-pk="{message_id}"]').is_visible()
    assert page.locator("input.action-select").count() == 0
    assert page.locator("select[name=action]").count() == 0
    assert page.locator("#replay-all").count() == 0 and page.locator("#purge").count() == 0
    snap(page, "dlq-viewer")

    # And the replay and purge pages refuse them
    for path in ("replay/", "purge/"):
        response = page.goto(f"{base}/admin/operations/ordersdeadletter/{path}")
        assert response.status == 403
    # And the message is still in the queue, and nothing was written in their name
    assert dlq.depth()["visible"] == 1
    assert not AuditLogEntry.objects.filter(actor="viewer").exists()
