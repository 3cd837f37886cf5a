"""The codec's serialize writes every value as boto3's TypeSerializer does, and refuses what it
refuses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import Binary, TypeSerializer

from pipeline.adapters.dynamodb import serialize
from pipeline.domain import Order, parse_items
from pipeline.statuses import OrderStatus

VALUES: list[Any] = [
    "",
    "laptop",
    "李小龙 😀",
    OrderStatus.PENDING,
    0,
    -7,
    10**37,
    -(10**37),
    Decimal("12.50"),
    Decimal("1e3"),
    True,
    False,
    None,
    b"\x00\x01",
    Binary(b"x"),
    {"a", "b"},
    {1, Decimal("2.5")},
    [],
    {},
    ("a", 1),
    [{"ItemName": "laptop", "Quantity": 2}, "mouse", [None, True, {"x": [1, "y"]}]],
    {"Nested": {"Deeper": {"N": 1, "S": "s", "L": [Decimal("0.1")], "Set": {"q"}}}},
]


# Ids by position and type: a set's repr changes with the hash seed, and xdist workers must agree.
@pytest.mark.parametrize(
    "value", VALUES, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(VALUES)]
)
def test_each_value_is_written_as_boto3_writes_it(value: Any) -> None:
    # Given a value, When it is serialized, Then the attribute is boto3's, type for type
    assert serialize({"v": value}) == {"v": TypeSerializer().serialize(value)}


def test_an_order_is_written_as_boto3_writes_it() -> None:
    # Given a full order item, When it is serialized, Then it is boto3's attribute-value form
    order = Order.new(
        customer_name="José Ñúñez",
        lines=parse_items(["laptop", {"ItemName": "mouse", "Quantity": 3}]),
        client_id="abcd1234",
        payment_token="tok_approve",
        shipping_address={"Name": "J", "Line1": "1 St", "City": "C", "PostalCode": "12345"},
        request_hash="0" * 64,
    )
    item = order.as_item()
    assert serialize(item) == {k: TypeSerializer().serialize(v) for k, v in item.items()}


@pytest.mark.parametrize("value", [1.5, 10**38, -(10**40), Decimal("Infinity"), object()])
def test_what_boto3_refuses_is_refused(value: Any) -> None:
    # Given a value boto3 cannot write (a float, too many digits, infinity, an object)
    # When it is serialized, Then the same error is raised
    with pytest.raises(Exception) as ours:
        serialize({"v": value})
    with pytest.raises(Exception) as theirs:
        TypeSerializer().serialize(value)
    assert type(ours.value) is type(theirs.value)
