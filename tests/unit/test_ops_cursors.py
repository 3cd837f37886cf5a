"""The operations pages' DynamoDB page cursors: round trip, and refusing cursors not made here."""

from __future__ import annotations

import base64
import json

import pytest

from operations.cursors import BadCursor, decode_cursor, encode_cursor


def test_a_last_evaluated_key_survives_the_round_trip_through_a_url():
    # Given the key a StatusIndex page ended on
    key = {"OrderId": "o-1", "Status": "PENDING", "OrderDate": "2026-01-01T00:00:00.000Z"}

    # When it is made a cursor and read back
    token = encode_cursor(key)

    # Then it is URL-safe and gives the same key
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(token) == key


def test_no_key_means_no_cursor_and_no_cursor_means_the_first_page():
    assert encode_cursor(None) == ""
    assert decode_cursor("") is None
    assert decode_cursor(None) is None


def _token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        "%%%not-base64%%%",
        base64.urlsafe_b64encode(b"not json").decode(),
        _token(["OrderId", "x"]),  # not a map
        _token({}),  # empty
        _token({"Price": "1"}),  # an attribute no index pages on
        _token({"OrderId": 5}),  # not a string
        _token({"OrderId": {"S": "x"}}),  # attribute-value form smuggled in
        "A" * 2001,  # absurdly long
    ],
)
def test_cursors_this_portal_did_not_make_are_refused(token: str):
    # When an edited or truncated cursor comes back in a URL
    # Then it is refused before it reaches DynamoDB
    with pytest.raises(BadCursor):
        decode_cursor(token)
