"""An order through the API over HTTP, through the local runtime, to SHIPPED (or REJECTED)."""

from __future__ import annotations

import io
import json
import time
import uuid
from typing import Any

import boto3
import pytest
from django.core.management import call_command

from orders_api.models import ClientAPIKey
from tests.integration.api.servers import PortalServer, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TIMEOUT_S = 90


def _wait(portal: PortalServer, key: str, order_id: str, want: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        reply = portal.request("GET", f"/orders/{order_id}", headers={"x-api-key": key})
        assert reply.status == 200, reply.body
        order = reply.json()
        if order["Status"] in want:
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order stuck in {order['Status']}: {order['StatusReason']}")
        time.sleep(0.3)


def _submit(portal: PortalServer, key: str, body: dict[str, Any]) -> Reply:
    return portal.request("POST", "/submitorder", body=body, headers={"x-api-key": key})


def test_order_submitted_through_the_api_reaches_shipped(portal: PortalServer):
    # Given the catalogue in the runtime's Inventory table and a client key
    call_command("populate_inventory", "--reset", stdout=io.StringIO())
    _, key = ClientAPIKey.objects.create_key(name="e2e client")

    # When the client submits an order over HTTP
    reply = _submit(
        portal,
        key,
        {
            "CustomerName": "End To End",
            "Items": [{"ItemName": "laptop", "Quantity": 1}, "mouse"],
            "PaymentToken": "tok_approve",
            "ShippingAddress": {
                "Name": "End To End",
                "Line1": "1 Main St",
                "City": "Springfield",
                "PostalCode": "12345",
                "Country": "US",
            },
        },
    )
    assert reply.status == 200, reply.body
    order_id = reply.json()["OrderId"]
    assert reply.headers["location"].endswith(f"/orders/{order_id}")

    # Then the pipeline reserves, charges and ships it, and the API shows the whole life
    order = _wait(portal, key, order_id, {"SHIPPED", "REJECTED", "PAYMENT_FAILED"})
    assert order["Status"] == "SHIPPED", order["StatusReason"]
    assert [h["Status"] for h in order["StatusHistory"]] == [
        "PENDING",
        "RESERVED",
        "PAID",
        "SHIPPED",
    ]
    assert order["Reservation"]["Total"] == pytest.approx(999.99 + 25.50)
    assert order["Payment"]["TransactionId"].startswith("txn_")
    assert order["Shipment"]["Carrier"] == "FedEx"  # insured express above $500
    assert order["Shipment"]["TrackingNumber"]


def test_order_for_an_unknown_item_is_rejected_and_the_api_says_why(portal: PortalServer):
    # Given a client key
    _, key = ClientAPIKey.objects.create_key(name="e2e client")

    # When it orders something the inventory does not have
    reply = _submit(portal, key, {"CustomerName": "Ann", "Items": ["flux-capacitor"]})
    assert reply.status == 200, reply.body

    # Then the order ends REJECTED with the reason naming the item
    order = _wait(portal, key, reply.json()["OrderId"], {"REJECTED", "SHIPPED"})
    assert order["Status"] == "REJECTED"
    assert "flux-capacitor" in order["StatusReason"]
    assert order["Rejection"][0]["Problem"] == "UNKNOWN_ITEM"


def _item_count(dynamodb: Any, table: str) -> int:
    """How many items `table` holds, counted by the test itself."""
    pages = dynamodb.get_paginator("scan").paginate(TableName=table, Select="COUNT")
    return sum(page["Count"] for page in pages)


def test_pipeline_status_reports_every_part_of_the_running_system(runtime_env: dict[str, str]):
    # Given the runtime's tables as they are, plus one inventory item of this test's own
    dynamodb = boto3.client(
        "dynamodb",
        endpoint_url=runtime_env["AWS_ENDPOINT_URL_DYNAMODB"],
        region_name=runtime_env["AWS_REGION"],
    )
    inventory, orders = runtime_env["INVENTORY_TABLE_NAME"], runtime_env["ORDERS_TABLE_NAME"]
    items_before = _item_count(dynamodb, inventory)
    name = f"status-{uuid.uuid4().hex[:8]}"
    dynamodb.put_item(
        TableName=inventory,
        Item={"ItemName": {"S": name}, "Stock": {"N": "1"}, "Price": {"N": "1.00"}},
    )
    try:
        # When the status command runs against the local runtime
        out = io.StringIO()
        call_command("pipeline_status", "--json", "--exact", stdout=out)
        report = json.loads(out.getvalue())
        # (nothing adds orders meanwhile: the runtime only moves the ones tests submit)
        orders_now = _item_count(dynamodb, orders)
    finally:
        dynamodb.delete_item(TableName=inventory, Key={"ItemName": {"S": name}})

    # Then tables and both queues answered, the tables with their exact item counts
    assert "error" not in report["tables"]
    assert report["tables"]["inventory"] == {
        "table": inventory,
        "items": items_before + 1,
        "exact": True,
    }
    assert report["tables"]["orders"] == {"table": orders, "items": orders_now, "exact": True}
    for name in ("orders", "dead_letter"):
        assert set(report["queues"][name]) == {"visible", "in_flight", "delayed"}
    assert report["resources"]["state_machine_arn"].startswith("arn:aws:states:")
