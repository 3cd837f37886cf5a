"""The order API's defences against bad input and failing stores, without any server."""

from __future__ import annotations

import io
import json
from typing import Any

import psycopg
import pytest
from django.db import DatabaseError, InterfaceError, OperationalError, ProgrammingError
from rest_framework.exceptions import ParseError

from orders_api.exception_handler import database_is_unreachable
from orders_api.exceptions import InvalidRequest
from orders_api.parsers import MAX_DEPTH, BoundedJSONParser
from orders_api.services import client_order_submit
from pipeline.errors import OrderAlreadyExists


def _parse(body: bytes) -> Any:
    return BoundedJSONParser().parse(io.BytesIO(body), "application/json", {})


def _nested(depth: int) -> bytes:
    return b"[" * (depth - 1) + b"{}" + b"]" * (depth - 1)


# -- The parser -----------------------------------------------------------------------------------


def test_nesting_up_to_the_bound_is_read_and_deeper_is_refused():
    # Given bodies nested exactly MAX_DEPTH and one level more
    # When they are parsed, Then the first is read and the second is a 400 saying why
    assert _parse(_nested(MAX_DEPTH))
    with pytest.raises(ParseError, match=f"nested more than {MAX_DEPTH} levels deep"):
        _parse(_nested(MAX_DEPTH + 1))


@pytest.mark.parametrize(
    "body",
    [
        b'{"CustomerName": "A", "CustomerName": "B"}',
        b'{"Items": [{"ItemName": "a", "ItemName": "b"}]}',
    ],
)
def test_repeated_keys_are_refused(body: bytes):
    # When a body repeats a key at any depth, Then it is a 400 naming the key
    with pytest.raises(ParseError, match=r'duplicate key "(CustomerName|ItemName)"'):
        _parse(body)


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"CustomerName": "\\ud800"}', "CustomerName"),
        (b'{"Items": ["ok", {"ItemName": "a\\udfffb"}]}', "Items[1].ItemName"),
        (b'{"CustomerName": "Ann", "\\udc00": 1}', "a key"),
        (b'"\\ud83d"', "the body"),
    ],
)
def test_lone_surrogates_anywhere_are_refused_with_where(body: bytes, where: str):
    # When a JSON escape decodes to a lone surrogate, in a value or a key
    with pytest.raises(ParseError) as info:
        _parse(body)

    # Then it is a 400 that says where, and the message itself is UTF-8-safe
    message = str(info.value.detail)
    assert where in message and "lone surrogate" in message
    message.encode("utf-8")


def test_surrogate_pairs_are_unicode_and_read():
    # Given an emoji written as a JSON surrogate pair, When parsed, Then it is one character
    assert _parse(b'{"CustomerName": "Ann \\ud83d\\ude00"}') == {"CustomerName": "Ann 😀"}


@pytest.mark.parametrize(
    "body", [b"\xef\xbb\xbf{}", b"\xed\xa0\x80", b"{'a': 1}", b'{"a": 1,}', b"1" * 5000]
)
def test_what_python_would_half_read_is_refused(body: bytes):
    # When a body has a BOM, UTF-8-encoded surrogates, single quotes, a trailing comma or a
    # number too long to convert, Then it is a 400
    with pytest.raises(ParseError, match="Malformed JSON"):
        _parse(body)


# -- The submit service ---------------------------------------------------------------------------


class _Orders:
    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}

    def order_put_new(self, order: Any) -> None:
        if order.order_id in self.rows:
            raise OrderAlreadyExists(order.order_id)
        self.rows[order.order_id] = order

    def order_find(self, order_id: str, *, consistent: bool = True) -> Any:
        return self.rows.get(order_id)


def test_a_body_that_is_not_unicode_is_a_400_not_a_500_with_an_idempotency_key():
    # Given a body holding a lone surrogate that did not come through the parser
    store = _Orders()
    body = {"CustomerName": "Ann\ud800", "Items": ["laptop"]}

    # When it is submitted with an Idempotency-Key (its hash needs UTF-8)
    with pytest.raises(InvalidRequest) as info:
        client_order_submit(
            client_id="acme", fields=body, body=body, idempotency_key="k-1", store=store
        )

    # Then it is refused as not Unicode text, and nothing was written
    assert "Unicode" in info.value.errors["body"]
    assert store.rows == {}
    json.dumps(info.value.errors).encode("utf-8")


# -- Which database errors a retry can get past ---------------------------------------------------


def _django_error(kind: type[DatabaseError], cause: Exception) -> DatabaseError:
    error = kind(str(cause))
    error.__cause__ = cause
    return error


def _psycopg(sqlstate: str) -> Exception:
    # psycopg's own class for the SQLSTATE, as the server's answer would raise it.
    return psycopg.errors.lookup(sqlstate)("failed")


@pytest.mark.parametrize(
    ("error", "retry_helps"),
    [
        (
            _django_error(OperationalError, psycopg.OperationalError("connection refused")),
            True,
        ),  # refused, dropped, timed out
        (_django_error(OperationalError, _psycopg("08006")), True),  # connection failure
        (_django_error(OperationalError, _psycopg("53300")), True),  # too many connections
        (_django_error(OperationalError, _psycopg("57P01")), True),  # server shutting down
        (_django_error(InterfaceError, psycopg.InterfaceError("closed")), True),
        (_django_error(OperationalError, _psycopg("28P01")), False),  # wrong password
        (_django_error(OperationalError, _psycopg("3D000")), False),  # no such database
        (_django_error(ProgrammingError, psycopg.ProgrammingError("no table")), False),
    ],
    ids=["refused", "08", "53", "57P", "interface", "password", "database", "programming"],
)
def test_only_an_unreachable_database_is_worth_a_retry(error: DatabaseError, retry_helps: bool):
    # When the key lookup fails this way, Then Retry-After is offered only if a retry can work
    assert database_is_unreachable(error) is retry_helps
