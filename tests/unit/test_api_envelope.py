"""envelope_fields answers every body as SubmitOrderRequestSerializer would: the same fields,
or the same errors in the same order."""

from __future__ import annotations

from typing import Any

import pytest

from orders_api.envelope import envelope_fields
from orders_api.exceptions import InvalidRequest, flatten_errors
from orders_api.serializers import SubmitOrderRequestSerializer

ADDRESS = {"Name": "A", "Line1": "1 St", "City": "C", "PostalCode": "12345", "Country": "US"}

BODIES: list[Any] = [
    {"CustomerName": "John Doe", "Items": ["laptop", "mouse"]},
    {"CustomerName": "J", "Items": [{"ItemName": "laptop", "Quantity": 2}], "PaymentToken": "t"},
    {"CustomerName": "J", "Items": ["x"], "ShippingAddress": ADDRESS},
    {"CustomerName": "", "Items": []},  # values are the domain's business, not the envelope's
    {"CustomerName": 5, "Items": "laptop", "PaymentToken": 0, "ShippingAddress": []},
    {},
    {"Items": ["laptop"]},
    {"CustomerName": "J"},
    {"CustomerName": None, "Items": None},
    {"CustomerName": "J", "Items": ["x"], "PaymentToken": None},
    {"CustomerName": "J", "Items": ["x"], "ShippingAddress": None},
    {"CustomerName": "J", "Items": ["x"], "Extra": 1, "another": None},
    {"Items": ["x"], "Extra": 1},  # a missing field is reported before an unknown one
    {"customername": "J", "items": ["x"]},
    [],
    ["CustomerName"],
    "order",
    7,
    1.5,
    True,
    None,
]


def _serializer_answer(body: Any) -> tuple[str, Any]:
    serializer = SubmitOrderRequestSerializer(data=body)
    if serializer.is_valid():
        return "fields", dict(serializer.validated_data)
    return "errors", list(flatten_errors(serializer.errors).items())


def _function_answer(body: Any) -> tuple[str, Any]:
    try:
        return "fields", envelope_fields(body)
    except InvalidRequest as exc:
        assert str(exc.detail) == "Invalid order"
        return "errors", list(exc.errors.items())


@pytest.mark.parametrize("body", BODIES, ids=[repr(b)[:40] for b in BODIES])
def test_the_function_answers_as_the_serializer(body: Any) -> None:
    # Given a body, When both check it, Then they agree on its fields or on its errors, in order
    assert _function_answer(body) == _serializer_answer(body)
