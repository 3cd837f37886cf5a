"""POST /submitorder and GET /orders/<id> on DynamoDB Local: every answer and what it wrote."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.staff_actions import order_cancel
from pipeline.statuses import OrderStatus
from tests.integration.api.conftest import KeyMaker, all_orders, get_order, orders_of, post_order

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

UTC_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def emf_lines(output: str, name: str) -> list[dict[str, Any]]:
    """The CloudWatch embedded-metric lines for metric `name` in captured stdout."""
    found = []
    for line in output.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            doc = json.loads(line)
            if name in doc:
                found.append(doc)
    return found


# -- Success --------------------------------------------------------------------------------


def test_seed_request_writes_a_pending_order(api, store: DynamoStore, make_key: KeyMaker):
    # Given a client key
    key, raw = make_key("seed client")

    # When the seed's request is sent with it
    response = post_order(
        api, raw, {"CustomerName": "John Doe", "Items": ["laptop", "mouse", "keyboard"]}
    )

    # Then 200 with the seed's message, the id, PENDING and the status URL
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["message"] == "Order submitted successfully"
    assert body["Status"] == "PENDING"
    assert response["Location"] == f"http://testserver/orders/{body['OrderId']}"
    # And the order is in the table as written by order_submit, owned by the key
    order = store.order_get(body["OrderId"])
    assert order.status == OrderStatus.PENDING
    assert order.customer_name == "John Doe"
    assert [(line.item_name, line.quantity) for line in order.lines] == [
        ("laptop", 1),
        ("mouse", 1),
        ("keyboard", 1),
    ]
    assert order.client_id == key.client_id == key.prefix
    assert UTC_ISO.match(order.order_date) and order.order_date == order.last_updated
    assert order.request_hash is None  # no Idempotency-Key


def test_quantities_payment_token_and_address_are_stored(
    api, store: DynamoStore, make_key: KeyMaker
):
    # Given a key and a body with quantities, a payment token and an address
    _, raw = make_key()
    address = {
        "Name": "Jane Roe",
        "Line1": "1 Main St",
        "City": "Springfield",
        "PostalCode": "12345",
        "Country": "US",
    }
    body = {
        "CustomerName": "Jane Roe",
        "Items": [{"ItemName": "laptop", "Quantity": 2}, "mouse", {"ItemName": "mouse"}],
        "PaymentToken": "tok_approve",
        "ShippingAddress": address,
    }

    # When it is submitted
    response = post_order(api, raw, body)

    # Then the order holds the added-up lines, the token and the address
    assert response.status_code == 200, response.content
    order = store.order_get(response.json()["OrderId"])
    assert [(line.item_name, line.quantity) for line in order.lines] == [
        ("laptop", 2),
        ("mouse", 2),
    ]
    assert order.payment_token == "tok_approve"
    assert dict(order.shipping_address or {}) == address


def test_owner_reads_the_order_with_its_history(api, store: DynamoStore, make_key: KeyMaker):
    # Given an order submitted with a key
    _, raw = make_key()
    order_id = post_order(
        api, raw, {"CustomerName": "Ann", "Items": ["laptop"], "PaymentToken": "tok_approve"}
    ).json()["OrderId"]

    # When the same key asks for it
    response = get_order(api, raw, order_id)

    # Then it sees status, reason, lines and history, but not the token or bookkeeping
    assert response.status_code == 200
    shown = response.json()
    assert shown["OrderId"] == order_id
    assert shown["Status"] == "PENDING"
    assert shown["StatusReason"] == "Order received"
    assert shown["Items"] == [{"ItemName": "laptop", "Quantity": 1}]
    assert [h["Status"] for h in shown["StatusHistory"]] == ["PENDING"]
    assert not {"PaymentToken", "RequestHash", "ClientId"} & set(shown)


def test_the_client_does_not_see_which_staff_member_acted(
    api, store: DynamoStore, make_key: KeyMaker
):
    # Given an order a staff member cancelled (their name is in the order's own history)
    _, raw = make_key()
    order_id = post_order(api, raw, {"CustomerName": "Ann", "Items": ["laptop"]}).json()["OrderId"]
    order_cancel(store=store, order_id=order_id, actor="olga.staff", reason="asked by phone")
    assert store.order_get(order_id).history[-1].actor == "olga.staff"

    # When the client reads it
    shown = get_order(api, raw, order_id).json()

    # Then it sees the cancellation and its reason, but not who made it
    assert [h["Status"] for h in shown["StatusHistory"]] == ["PENDING", "CANCELLED"]
    assert "olga.staff" not in json.dumps(shown)
    assert not {"CustomerKey", "CustomerPrefix"} & set(shown)


def test_another_key_cannot_see_the_order(api, make_key: KeyMaker):
    # Given an order of one client
    _, owner = make_key("owner")
    _, other = make_key("other")
    order_id = post_order(api, owner, {"CustomerName": "Ann", "Items": ["laptop"]}).json()[
        "OrderId"
    ]

    # When another client asks for it, or for an id that does not exist
    theirs = get_order(api, other, order_id)
    missing = get_order(api, owner, "00000000-0000-0000-0000-000000000000")
    weird = get_order(api, owner, "no%20such%20thing")

    # Then all three are the same 404: existence cannot be probed
    assert theirs.status_code == missing.status_code == weird.status_code == 404
    assert theirs.json() == missing.json() == {"message": "Order not found"}


# -- Authentication -------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "unknown", "malformed", "revoked", "expired"])
def test_bad_keys_get_403_nothing_written_and_a_metric(
    api, store: DynamoStore, make_key: KeyMaker, capsys: pytest.CaptureFixture[str], case: str
):
    # Given a key in one of the refused states
    raw: str | None
    if case == "missing":
        raw = None
    elif case == "unknown":
        _, real = make_key()
        raw = real[:-4] + "AAAA"  # the right prefix, the wrong secret
    elif case == "malformed":
        raw = "not-a-key"
    elif case == "revoked":
        _, raw = make_key(revoked=True)
    else:
        _, raw = make_key(expiry_date=datetime.now(UTC) - timedelta(minutes=1))
    before = len(all_orders(store))
    capsys.readouterr()

    # When it submits a valid order and asks for one
    response = post_order(api, raw, {"CustomerName": "Eve", "Items": ["laptop"]})
    status = get_order(api, raw, "00000000-0000-0000-0000-000000000000")

    # Then both are 403 with a JSON message, and no order was written
    assert response.status_code == status.status_code == 403
    assert response.json()["message"].startswith("Forbidden")
    assert len(all_orders(store)) == before
    # And each refusal printed one ApiAuthenticationFailures metric (EMF) in OrderProcessing
    metrics = emf_lines(capsys.readouterr().out, "ApiAuthenticationFailures")
    assert len(metrics) == 2
    assert metrics[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OrderProcessing"
    assert metrics[0]["ApiAuthenticationFailures"] == [1.0]
    expected_reason = {"malformed": "unknown"}.get(case, case)
    assert metrics[0]["Reason"] == expected_reason


def test_key_expiring_later_still_works(api, make_key: KeyMaker):
    # Given a key that expires tomorrow
    _, raw = make_key(expiry_date=datetime.now(UTC) + timedelta(days=1))

    # When it submits an order
    response = post_order(api, raw, {"CustomerName": "Ann", "Items": ["laptop"]})

    # Then it is accepted
    assert response.status_code == 200


# -- Validation -----------------------------------------------------------------------------

BAD_BODIES = [
    ({"Items": ["laptop"]}, "CustomerName"),
    ({"CustomerName": "", "Items": ["laptop"]}, "CustomerName"),
    ({"CustomerName": "x" * 201, "Items": ["laptop"]}, "CustomerName"),
    ({"CustomerName": 42, "Items": ["laptop"]}, "CustomerName"),
    ({"CustomerName": "Bo\x07b", "Items": ["laptop"]}, "CustomerName"),
    ({"CustomerName": "Ann"}, "Items"),
    ({"CustomerName": "Ann", "Items": []}, "Items"),
    ({"CustomerName": "Ann", "Items": "laptop"}, "Items"),
    ({"CustomerName": "Ann", "Items": ["laptop"] * 101}, "Items"),
    ({"CustomerName": "Ann", "Items": ["laptop", 7]}, "Items[1]"),
    ({"CustomerName": "Ann", "Items": ["lap<top>"]}, "Items[0]"),
    ({"CustomerName": "Ann", "Items": ["x" * 101]}, "Items[0]"),
    ({"CustomerName": "Ann", "Items": [{"ItemName": "laptop", "Quantity": 0}]}, "Items[0]"),
    ({"CustomerName": "Ann", "Items": [{"ItemName": "laptop", "Quantity": 1001}]}, "Items[0]"),
    ({"CustomerName": "Ann", "Items": [{"ItemName": "laptop", "Quantity": "2"}]}, "Items[0]"),
    ({"CustomerName": "Ann", "Items": [{"ItemName": "laptop", "Quantity": True}]}, "Items[0]"),
    ({"CustomerName": "Ann", "Items": [{"ItemName": "laptop", "Qty": 2}]}, "Items[0]"),
    ({"CustomerName": "Ann", "Items": [{"ItemName": "mouse", "Quantity": 600}] * 2}, "Items"),
    ({"CustomerName": "Ann", "Items": ["laptop"], "PaymentToken": 12}, "PaymentToken"),
    ({"CustomerName": "Ann", "Items": ["laptop"], "PaymentToken": "tok approve"}, "PaymentToken"),
    ({"CustomerName": "Ann", "Items": ["laptop"], "ShippingAddress": "home"}, "ShippingAddress"),
    (
        {
            "CustomerName": "Ann",
            "Items": ["laptop"],
            "ShippingAddress": {"Name": "A", "Line1": "1 St", "PostalCode": "1", "Country": "US"},
        },
        "ShippingAddress.City",
    ),
    ({"CustomerName": "Ann", "Items": ["laptop"], "Coupon": "FREE"}, "Coupon"),
    (["laptop"], "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_invalid_orders_get_400_with_field_errors_and_nothing_written(
    api, store: DynamoStore, make_key: KeyMaker, body: Any, field: str
):
    # Given a key and an order that breaks a rule
    _, raw = make_key()
    before = len(all_orders(store))

    # When it is submitted
    response = post_order(api, raw, body)

    # Then 400 names the field, and nothing was written
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert len(all_orders(store)) == before


def test_every_field_error_is_reported_at_once(api, make_key: KeyMaker):
    # Given an order with a bad name and two bad lines
    _, raw = make_key()

    # When it is submitted
    response = post_order(
        api, raw, {"CustomerName": "", "Items": ["ok", {"ItemName": ""}, {"Quantity": 2}]}
    )

    # Then every problem is named
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"CustomerName", "Items[1]", "Items[2]"}


@pytest.mark.parametrize(
    "raw_body",
    [b"{not json", b'{"CustomerName": "Ann", "Items": [NaN]}', b"\xff\xfe", b"[" * 5000],
)
def test_malformed_json_gets_400(api, store: DynamoStore, make_key: KeyMaker, raw_body: bytes):
    # Given a key and a body that is not JSON
    _, raw = make_key()
    before = len(all_orders(store))

    # When it is posted
    response = api.post(
        "/submitorder", raw_body, content_type="application/json", HTTP_X_API_KEY=raw
    )

    # Then 400 says so, and nothing was written
    assert response.status_code == 400
    assert response.json()["message"].startswith("Malformed JSON")
    assert len(all_orders(store)) == before


def test_oversized_body_gets_413_and_nothing_written(api, store: DynamoStore, make_key: KeyMaker):
    # Given a key and a body over 64 KiB (valid JSON otherwise)
    _, raw = make_key()
    body = {"CustomerName": "Ann", "Items": ["laptop"], "Padding": "x" * (64 * 1024)}
    before = len(all_orders(store))

    # When it is posted
    response = post_order(api, raw, body)

    # Then 413, and nothing was written
    assert response.status_code == 413
    assert "64" in response.json()["message"] or "65536" in response.json()["message"]
    assert len(all_orders(store)) == before


def test_non_json_content_type_gets_415(api, store: DynamoStore, make_key: KeyMaker):
    # Given a key and a form-encoded body
    _, raw = make_key()

    # When it is posted
    response = api.post(
        "/submitorder",
        "CustomerName=Ann&Items=laptop",
        content_type="application/x-www-form-urlencoded",
        HTTP_X_API_KEY=raw,
    )

    # Then 415 with a JSON message
    assert response.status_code == 415
    assert "message" in response.json()


def test_unreachable_order_store_gets_503_not_500(
    api, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch, refused_port: int
):
    # Given the Orders table's endpoint is down
    from pipeline import aws

    _, raw = make_key()
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", f"http://127.0.0.1:{refused_port}")
    aws.reset_clients()

    # When an order is submitted
    response = post_order(api, raw, {"CustomerName": "Ann", "Items": ["laptop"]})

    # Then 503 with Retry-After, so the client retries later
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    aws.reset_clients()


def test_order_ids_are_not_shared_between_clients(api, store: DynamoStore, make_key: KeyMaker):
    # Given two clients who each submit an order
    first, first_raw = make_key("first")
    second, second_raw = make_key("second")
    post_order(api, first_raw, {"CustomerName": "A", "Items": ["laptop"]})
    post_order(api, second_raw, {"CustomerName": "B", "Items": ["mouse"]})

    # Then each order is stored under its own client's id
    assert [o.customer_name for o in orders_of(store, first.client_id)] == ["A"]
    assert [o.customer_name for o in orders_of(store, second.client_id)] == ["B"]
