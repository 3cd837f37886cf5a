"""Idempotency keys: the order id they stand for, the body hash, what a valid key is."""

from __future__ import annotations

import uuid

import pytest

from orders_api import idempotency


def test_order_id_is_a_uuid_fixed_by_client_and_key():
    # Given a client's key, When the order id is derived twice, Then it is the same UUID
    first = idempotency.order_id_for("abcd1234", "order-1")
    assert first == idempotency.order_id_for("abcd1234", "order-1")
    assert uuid.UUID(first).version == 5
    # And another client or another key gives another id
    assert first != idempotency.order_id_for("zzzz9999", "order-1")
    assert first != idempotency.order_id_for("abcd1234", "order-2")


def test_order_id_cannot_be_made_to_collide_by_joining_names():
    # Given ids built from pieces that concatenate alike, Then they still differ
    assert idempotency.order_id_for("ab", "c") != idempotency.order_id_for("a", "bc")


def test_request_hash_ignores_key_order_and_whitespace_but_not_values():
    # Given the same body written two ways, and a different body
    a = {"CustomerName": "Ann", "Items": ["laptop", {"ItemName": "mouse", "Quantity": 2}]}
    b = {"Items": ["laptop", {"Quantity": 2, "ItemName": "mouse"}], "CustomerName": "Ann"}
    c = {"CustomerName": "Ann", "Items": ["mouse", "laptop"]}

    # Then the first two hash alike and the third does not
    assert idempotency.request_hash(a) == idempotency.request_hash(b)
    assert idempotency.request_hash(a) != idempotency.request_hash(c)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("550e8400-e29b-41d4-a716-446655440000", True),
        ("order_2024/07#1", True),
        ("x" * 255, True),
        ("", False),
        ("x" * 256, False),
        ("with space", False),
        ("tab\there", False),
        ("café", False),
    ],
)
def test_idempotency_key_format(value: str, ok: bool):
    # When a header value is checked, Then only 1-255 visible ASCII characters pass
    assert (idempotency.validate_key(value) is None) is ok
