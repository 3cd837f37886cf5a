"""Idempotency-Key on POST /submitorder: one order per key and body, 422 for another body."""

from __future__ import annotations

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.api.conftest import KeyMaker, all_orders, orders_of, post_order

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

BODY = {"CustomerName": "Ann", "Items": ["laptop", {"ItemName": "mouse", "Quantity": 2}]}


def test_same_key_and_body_returns_the_first_response(api, store: DynamoStore, make_key: KeyMaker):
    # Given an order submitted with an Idempotency-Key
    key, raw = make_key()
    first = post_order(api, raw, BODY, **{"Idempotency-Key": "order-2024-0001"})
    assert first.status_code == 200

    # When the same request is sent again (keys in another order: the same meaning)
    reordered = {"Items": BODY["Items"], "CustomerName": "Ann"}
    again = post_order(api, raw, reordered, **{"Idempotency-Key": "order-2024-0001"})

    # Then the answer is the first one, marked as a replay, and there is one order
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    orders = orders_of(store, key.client_id)
    assert [o.order_id for o in orders] == [first.json()["OrderId"]]
    assert orders[0].request_hash


def test_same_key_with_another_body_gets_422_and_nothing_written(
    api, store: DynamoStore, make_key: KeyMaker
):
    # Given an order submitted with an Idempotency-Key
    key, raw = make_key()
    post_order(api, raw, BODY, **{"Idempotency-Key": "k-1"})
    before = len(all_orders(store))

    # When the key is sent again with a different order
    response = post_order(
        api, raw, {**BODY, "CustomerName": "Someone Else"}, **{"Idempotency-Key": "k-1"}
    )

    # Then 422, and the first order is untouched and alone
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["message"]
    assert len(all_orders(store)) == before
    assert [o.customer_name for o in orders_of(store, key.client_id)] == ["Ann"]


def test_the_same_idempotency_key_of_two_clients_makes_two_orders(
    api, store: DynamoStore, make_key: KeyMaker
):
    # Given two clients that happen to use the same Idempotency-Key
    first, first_raw = make_key("first")
    second, second_raw = make_key("second")

    # When both submit with it
    a = post_order(api, first_raw, BODY, **{"Idempotency-Key": "1"})
    b = post_order(api, second_raw, BODY, **{"Idempotency-Key": "1"})

    # Then each gets an order of its own
    assert a.status_code == b.status_code == 200
    assert a.json()["OrderId"] != b.json()["OrderId"]
    assert len(orders_of(store, first.client_id)) == len(orders_of(store, second.client_id)) == 1


def test_invalid_order_with_a_key_can_be_fixed_and_resent(
    api, store: DynamoStore, make_key: KeyMaker
):
    # Given a rejected (400) request with an Idempotency-Key
    key, raw = make_key()
    bad = post_order(api, raw, {"CustomerName": "Ann", "Items": []}, **{"Idempotency-Key": "k"})
    assert bad.status_code == 400

    # When the corrected order is sent with the same key
    good = post_order(api, raw, BODY, **{"Idempotency-Key": "k"})

    # Then it is written: the 400 reserved nothing
    assert good.status_code == 200
    assert len(orders_of(store, key.client_id)) == 1


@pytest.mark.parametrize("value", ["", "x" * 256, "has space", "naïve"])
def test_malformed_idempotency_key_gets_400(
    api, store: DynamoStore, make_key: KeyMaker, value: str
):
    # Given a key and a malformed Idempotency-Key
    _, raw = make_key()
    before = len(all_orders(store))

    # When an order is sent with it
    response = post_order(api, raw, BODY, **{"Idempotency-Key": value})

    # Then 400 names the header, and nothing was written
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert len(all_orders(store)) == before
