"""The API's error shapes, body parser and limiter decisions, without any server."""

from __future__ import annotations

import io
from typing import Any

import pytest
from rest_framework.exceptions import ParseError

from orders_api.exceptions import PayloadTooLarge, flatten_errors
from orders_api.parsers import BoundedJSONParser
from orders_api.ratelimit import Decision


def test_nested_serializer_errors_become_dotted_field_names():
    # Given DRF's nested error lists
    detail = {
        "PaymentToken": ["Not a valid string."],
        "ShippingAddress": {"City": ["This field is required."], "non_field_errors": ["x"]},
        "non_field_errors": ["Expected a dictionary."],
    }

    # When flattened, Then each problem has one field name and one message
    assert flatten_errors(detail) == {
        "PaymentToken": "Not a valid string.",
        "ShippingAddress.City": "This field is required.",
        "ShippingAddress": "x",
        "body": "Expected a dictionary.",
    }


class _Request:
    def __init__(self, length: str | None):
        self.META = {"CONTENT_LENGTH": length} if length is not None else {}


def _parse(body: bytes, length: str | None = None) -> Any:
    return BoundedJSONParser().parse(
        io.BytesIO(body), "application/json", {"request": _Request(length)}
    )


def test_parser_reads_json_objects():
    # When a JSON body is parsed, Then it comes back as Python
    assert _parse(b'{"CustomerName": "Ann", "Items": ["laptop"]}') == {
        "CustomerName": "Ann",
        "Items": ["laptop"],
    }


@pytest.mark.parametrize("body", [b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff", b"[" * 50_000])
def test_parser_refuses_what_is_not_json(body: bytes):
    # When a body that is not strict JSON is parsed, Then it is a 400 ParseError
    with pytest.raises(ParseError, match="Malformed JSON"):
        _parse(body)


def test_parser_refuses_big_bodies_by_length_and_by_content(settings: Any):
    # Given a 1 KiB limit
    settings.ORDERS_API_MAX_BODY_BYTES = 1024
    big = b'{"a": "' + b"x" * 2000 + b'"}'

    # When the declared length is too big, or no length is declared (chunked)
    # Then both are 413 before anything is parsed
    with pytest.raises(PayloadTooLarge):
        _parse(b"{}", length="5000")
    with pytest.raises(PayloadTooLarge):
        _parse(big, length=None)
    # And a body just under the limit is fine
    assert _parse(b'{"a": "' + b"x" * 1000 + b'"}')["a"] == "x" * 1000


@pytest.mark.parametrize(("wait", "header"), [(0.0, "1"), (0.02, "1"), (1.0, "1"), (1.2, "2")])
def test_retry_after_is_whole_seconds_and_never_zero(wait: float, header: str):
    # When a refusal says how long to wait, Then Retry-After rounds up, at least 1
    assert Decision(False, "rate", wait).retry_after_header == header
