"""Bad input and failing stores: a JSON 4xx or 5xx, never an HTML page, and nothing written."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.stub import Stubber
from django.test import Client
from rest_framework.test import APIClient

from orders_api import idempotency
from orders_api.models import ClientAPIKey
from orders_api.parsers import MAX_DEPTH
from pipeline import aws
from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.api.conftest import KeyMaker, all_orders, get_order, post_order
from tests.integration.api.servers import PortalServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

VALID = {"CustomerName": "Ann", "Items": ["laptop"]}
ORDER_ID = "00000000-0000-0000-0000-000000000000"


def utf8(body: Any) -> bytes:
    """JSON with non-ASCII characters as UTF-8, as most clients send it."""
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def escaped(body: Any) -> bytes:
    """JSON with \\uXXXX escapes: the only way to send a lone surrogate."""
    return json.dumps(body).encode("ascii")


def with_name(name: str) -> bytes:
    return utf8({"CustomerName": name, "Items": ["laptop"]})


def with_city(city: str) -> bytes:
    address = {"Name": "Ann", "Line1": "1 Main St", "City": city, "PostalCode": "12345",
               "Country": "US"}  # fmt: skip
    return utf8({**VALID, "ShippingAddress": address})


def with_quantity(quantity: Any) -> bytes:
    return utf8({"CustomerName": "Ann", "Items": [{"ItemName": "laptop", "Quantity": quantity}]})


def nested(depth: int) -> bytes:
    return b'{"CustomerName": "Ann", "Items": ' + b"[" * depth + b"]" * depth + b"}"


class Bad(NamedTuple):
    """A bad request and how it must be refused."""

    body: bytes
    status: int = 400
    field: str | None = "body"  # named in the answer's `errors` (None: no field errors)
    content_type: str = "application/json"


def name_error(body: bytes) -> Bad:
    return Bad(body, field="CustomerName")


def line_error(body: bytes) -> Bad:
    return Bad(body, field="Items[0]")


def unsupported(body: bytes, content_type: str) -> Bad:
    return Bad(body, 415, None, content_type)


BAD_REQUESTS: dict[str, Bad] = {
    # Lone surrogates: JSON escapes that decode to no Unicode character
    "surrogate in CustomerName": Bad(escaped({**VALID, "CustomerName": "\ud800"})),
    "low surrogate in CustomerName": Bad(escaped({**VALID, "CustomerName": "A\udc00"})),
    "surrogate in an item": Bad(escaped({**VALID, "Items": ["lap\udbfftop"]})),
    "surrogate in a key": Bad(b'{"CustomerName": "Ann", "Items": ["a"], "\\ud800": 1}'),
    "UTF-8-encoded surrogate": Bad(b'{"CustomerName": "\xed\xa0\x80", "Items": ["a"]}'),
    # Characters that hide or reorder text: refused, not removed
    "RLO in CustomerName": name_error(with_name("Ann\u202eeeL")),
    "LRO in CustomerName": name_error(with_name("Ann\u202dLee")),
    "RLI in CustomerName": name_error(with_name("Ann\u2067Lee")),
    "RLM in CustomerName": name_error(with_name("Ann\u200fLee")),
    "ZWSP in CustomerName": name_error(with_name("Ann\u200bLee")),
    "ZWJ in CustomerName": name_error(with_name("Ann\u200dLee")),
    "BOM leading CustomerName": name_error(with_name("\ufeffAnn")),
    "soft hyphen in CustomerName": name_error(with_name("An\u00adn")),
    "word joiner in CustomerName": name_error(with_name("Ann\u2060Lee")),
    "line separator in CustomerName": name_error(with_name("Ann\u2028Lee")),
    "tag in CustomerName": name_error(with_name("Ann\U000e0041")),
    "RLO in the city": Bad(with_city("Spring\u202efield"), field="ShippingAddress.City"),
    "ZWSP in the city": Bad(with_city("Spring\u200bfield"), field="ShippingAddress.City"),
    "RLO in an item": line_error(utf8({**VALID, "Items": ["lap\u202etop"]})),
    # Control characters
    "NUL in CustomerName": name_error(escaped({**VALID, "CustomerName": "Ann\x00"})),
    "ESC in CustomerName": name_error(with_name("Ann\x1b[31mLee")),
    "DEL in CustomerName": name_error(with_name("Ann\x7fLee")),
    "C1 NEL in CustomerName": name_error(with_name("Ann\x85Lee")),
    "tab in the city": Bad(with_city("Spring\tfield"), field="ShippingAddress.City"),
    # Sizes
    "body over 64 KiB": Bad(utf8({**VALID, "CustomerName": "x" * 65_536}), 413, None),
    "nested one too deep": Bad(nested(MAX_DEPTH)),
    "nested 5000 deep": Bad(nested(5000)),
    "5000 lines": Bad(utf8({"CustomerName": "Ann", "Items": ["laptop"] * 5000}), field="Items"),
    "101 lines": Bad(utf8({"CustomerName": "Ann", "Items": ["laptop"] * 101}), field="Items"),
    # Quantities
    "quantity as a string": line_error(with_quantity("2")),
    "zero quantity": line_error(with_quantity(0)),
    "negative quantity": line_error(with_quantity(-1)),
    "quantity over 1000": line_error(with_quantity(1001)),
    "huge quantity": line_error(with_quantity(10**30)),
    "fractional quantity": line_error(with_quantity(2.5)),
    "boolean quantity": line_error(with_quantity(True)),
    "null quantity": line_error(with_quantity(None)),
    "overflowing quantity": line_error(with_quantity(1).replace(b"1}", b"1e400}")),
    "5000-digit quantity": Bad(with_quantity(1).replace(b"1}", b"1" * 5000 + b"}")),
    # Content types
    "text/plain": unsupported(utf8(VALID), "text/plain"),
    "form-encoded": unsupported(b"CustomerName=Ann", "application/x-www-form-urlencoded"),
    "multipart": unsupported(b"--x\r\n\r\nAnn\r\n--x--\r\n", "multipart/form-data; boundary=x"),
    "XML": unsupported(b"<order><CustomerName>Ann</CustomerName></order>", "application/xml"),
    # Bodies that are not an object
    "a list": Bad(b'["laptop"]'),
    "a string": Bad(b'"laptop"'),
    "null": Bad(b"null"),
    "a number": Bad(b"42"),
    "true": Bad(b"true"),
    "empty": name_error(b""),
    # Not JSON
    "truncated": Bad(b'{"CustomerName": "Ann", "Items": ["lap'),
    "trailing comma": Bad(b'{"CustomerName": "Ann", "Items": ["laptop"],}'),
    "single quotes": Bad(b"{'CustomerName': 'Ann', 'Items': ['laptop']}"),
    "NaN": Bad(b'{"CustomerName": "Ann", "Items": [{"ItemName": "a", "Quantity": NaN}]}'),
    "byte order mark": Bad(b"\xef\xbb\xbf" + utf8(VALID)),
    "Latin-1": Bad(b'{"CustomerName": "Jos\xe9", "Items": ["laptop"]}'),
    "repeated key": Bad(b'{"CustomerName": "Ann", "CustomerName": "Bob", "Items": ["a"]}'),
    "repeated inner key": Bad(
        b'{"CustomerName": "A", "Items": [{"ItemName": "a", "ItemName": "b"}]}'
    ),
}


def send(
    api: APIClient,
    raw_key: str,
    body: bytes,
    content_type: str = "application/json",
    key: str | None = None,
) -> Any:
    """POST raw bytes to /submitorder with the API key (and an Idempotency-Key if given)."""
    headers = {"HTTP_X_API_KEY": raw_key}
    if key is not None:
        headers["HTTP_IDEMPOTENCY_KEY"] = key
    return api.post("/submitorder", body, content_type=content_type, **headers)


def assert_json_error(response: Any, status: int) -> dict[str, Any]:
    """The response is `status` with a JSON error body; return the body."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body.get("message"), str) and body["message"], body
    return body


# -- Hand-picked bad requests -------------------------------------------------------------------


@pytest.mark.parametrize("with_key", [False, True], ids=["no key", "idempotency key"])
@pytest.mark.parametrize("bad", BAD_REQUESTS.values(), ids=BAD_REQUESTS.keys())
def test_bad_requests_get_a_json_4xx_and_write_nothing(
    api: APIClient, store: DynamoStore, make_key: KeyMaker, bad: Bad, with_key: bool
):
    # Given a key, and maybe an Idempotency-Key for this request
    key, raw = make_key()
    idempotency_key = f"bad-input-{uuid.uuid4()}" if with_key else None
    before = len(all_orders(store))

    # When the bad request is sent
    response = send(api, raw, bad.body, bad.content_type, key=idempotency_key)

    # Then it is refused with a JSON error naming what is wrong
    error = assert_json_error(response, bad.status)
    if bad.field is not None:
        assert bad.field in error.get("errors", {}), error
    # And no order was written
    assert len(all_orders(store)) == before
    if idempotency_key is not None:
        # And the Idempotency-Key was not used up: no order holds it, and a good body with it
        # is written as a first submission, not refused or replayed
        order_id = idempotency.order_id_for(key.client_id, idempotency_key)
        assert store.order_find(order_id) is None
        retry = send(api, raw, utf8(VALID), key=idempotency_key)
        assert retry.status_code == 200, retry.content
        assert retry.json()["OrderId"] == order_id and not retry.has_header("Idempotent-Replayed")


def test_names_are_trimmed_and_stored_nfc_normalised(api: APIClient, store: DynamoStore,
                                                     make_key: KeyMaker):  # fmt: skip
    # Given a name typed with a combining accent and surrounding whitespace, in any script
    _, raw = make_key()

    # When orders are submitted with them
    decomposed = send(api, raw, with_name("  Jose\u0301 Mu\u0308ller\n"))
    other_script = send(api, raw, with_name("李小龙 محمد Ζωή 😀"))

    # Then they are written, the first with its accents precomposed and the space trimmed
    assert decomposed.status_code == other_script.status_code == 200
    assert store.order_get(decomposed.json()["OrderId"]).customer_name == "José Müller"
    assert store.order_get(other_script.json()["OrderId"]).customer_name == "李小龙 محمد Ζωή 😀"


# -- The stores failing -------------------------------------------------------------------------


def _client_error(stub: Stubber, operation: str, code: str, http_status: int) -> None:
    # One stubbed answer: the real client parses it into a ClientError, with no retries.
    stub.add_client_error(
        operation, service_error_code=code, service_message="injected", http_status_code=http_status
    )


RETRYABLE = [
    ("ProvisionedThroughputExceededException", 400),
    ("ThrottlingException", 400),
    ("RequestLimitExceeded", 400),
    ("TransactionConflictException", 400),
    ("InternalServerError", 500),
    ("ServiceUnavailable", 503),
]
FINAL = [
    ("ValidationException", 400),
    ("AccessDeniedException", 400),
    ("ResourceNotFoundException", 400),
    ("UnrecognizedClientException", 400),
    ("ItemCollectionSizeLimitExceededException", 400),
]


def _aws_logged(caplog: pytest.LogCaptureFixture, code: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "aws_error_code", None) == code]


@pytest.mark.parametrize(("code", "http_status"), RETRYABLE, ids=[c for c, _ in RETRYABLE])
def test_throttled_or_failing_dynamodb_is_a_503_with_retry_after(
    api: APIClient, store: DynamoStore, make_key: KeyMaker, caplog: pytest.LogCaptureFixture,
    code: str, http_status: int,
):  # fmt: skip
    # Given a key, and DynamoDB answering the order's write with an error a retry can get past
    _, raw = make_key()
    before = len(all_orders(store))
    with Stubber(aws.client("dynamodb")) as stub:
        _client_error(stub, "put_item", code, http_status)

        # When an order is submitted
        response = post_order(api, raw, VALID)

    # Then 503, JSON, with Retry-After: the client should try again shortly
    error = assert_json_error(response, 503)
    assert response["Retry-After"] == "1"
    assert "order store" in error["message"]
    # And the error code was logged, as a warning, and nothing was written
    assert [r.levelno for r in _aws_logged(caplog, code)] == [logging.WARNING]
    assert len(all_orders(store)) == before


@pytest.mark.parametrize(("code", "http_status"), FINAL, ids=[c for c, _ in FINAL])
def test_dynamodb_refusing_the_request_is_a_500_without_retry_after(
    api: APIClient, store: DynamoStore, make_key: KeyMaker, caplog: pytest.LogCaptureFixture,
    code: str, http_status: int,
):  # fmt: skip
    # Given DynamoDB refusing the order's write in a way a retry cannot change
    _, raw = make_key()
    before = len(all_orders(store))
    with Stubber(aws.client("dynamodb")) as stub:
        _client_error(stub, "put_item", code, http_status)

        # When an order is submitted
        response = post_order(api, raw, VALID)

    # Then 500, JSON, and no Retry-After: retrying would fail the same way for ever
    error = assert_json_error(response, 500)
    assert not response.has_header("Retry-After")
    assert error == {"message": "Internal Server Error"}  # nothing about the store leaks
    # And the error code was logged as an error (with the traceback), and nothing was written
    (record,) = _aws_logged(caplog, code)
    assert record.levelno == logging.ERROR and record.exc_info
    assert len(all_orders(store)) == before


@pytest.mark.parametrize(
    ("code", "status"), [("ThrottlingException", 503), ("AccessDeniedException", 500)]
)
def test_reading_an_order_maps_dynamodb_errors_the_same_way(
    api: APIClient, store: DynamoStore, make_key: KeyMaker, code: str, status: int
):
    # Given DynamoDB failing the read of an order
    _, raw = make_key()
    with Stubber(aws.client("dynamodb")) as stub:
        _client_error(stub, "get_item", code, 400)

        # When the order is asked for
        response = get_order(api, raw, ORDER_ID)

    # Then the same answer as for a write: 503 with Retry-After, or 500 without
    assert_json_error(response, status)
    assert response.has_header("Retry-After") is (status == 503)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), 503),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), 503),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), 503),
        (NoCredentialsError(), 500),
        (ParamValidationError(report="Invalid type for parameter Item"), 500),
    ],
    ids=["read timeout", "connect timeout", "connection closed", "no credentials", "bad params"],
)
def test_sdk_errors_are_503_when_the_endpoint_did_not_answer_and_500_otherwise(
    api: APIClient, store: DynamoStore, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, error: Exception, status: int,
):  # fmt: skip
    # Given the SDK failing the order's write before DynamoDB answered (its retries used up)
    _, raw = make_key()
    before = len(all_orders(store))

    def fail(self: DynamoStore, order: Any) -> None:
        raise error

    monkeypatch.setattr(DynamoStore, "order_put_new", fail)

    # When an order is submitted
    response = post_order(api, raw, VALID)

    # Then a timeout or a dropped connection is worth a retry (503), a setup fault is not (500)
    assert_json_error(response, status)
    assert response.has_header("Retry-After") is (status == 503)
    assert _aws_logged(caplog, type(error).__name__)
    assert len(all_orders(store)) == before


def test_a_missing_table_setting_is_a_500_not_a_retry_forever(
    api: APIClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
):
    # Given a portal deployed without the Orders table's name
    _, raw = make_key()
    monkeypatch.delenv("ORDERS_TABLE_NAME")

    # When an order is submitted, Then 500 JSON without Retry-After
    response = post_order(api, raw, VALID)
    assert_json_error(response, 500)
    assert not response.has_header("Retry-After")


@pytest.fixture
def postgres_down(refused_port: int) -> Iterator[None]:
    """The portal's database at a loopback port that refuses connections, then back.

    The test's connection is closed so the next query connects anew, to the dead port; the
    test must be transactional (no transaction of its own open across the outage)."""
    from django.db import connection

    saved = {"HOST": connection.settings_dict["HOST"], "PORT": connection.settings_dict["PORT"]}
    connection.close()
    connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(refused_port)})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


@pytest.mark.django_db(transaction=True)
def test_postgres_down_is_a_json_503_with_retry_after_and_writes_nothing(
    store: DynamoStore, make_key: KeyMaker, request: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
):  # fmt: skip
    # Given a key, and then PostgreSQL (where keys are looked up) refusing connections
    _, raw = make_key()
    before = len(all_orders(store))
    request.getfixturevalue("postgres_down")
    api = APIClient()

    # When an order is submitted, with and without an Idempotency-Key, and one is read
    answers = [
        post_order(api, raw, VALID),
        post_order(api, raw, VALID, **{"Idempotency-Key": "db-down-1"}),
        get_order(api, raw, ORDER_ID),
    ]

    # Then each is a JSON 503 with Retry-After (the database may be back in a moment)
    for response in answers:
        error = assert_json_error(response, 503)
        assert response["Retry-After"] == "1"
        assert error["message"] == "Service Unavailable: the API key store cannot be reached"
    # And the outage was logged, and no order was written
    assert any(r.message == "API key store unavailable" for r in caplog.records)
    assert len(all_orders(store)) == before


# -- Anything else that goes wrong --------------------------------------------------------------


def test_an_unexpected_exception_in_a_view_is_a_logged_json_500(
    api: APIClient, store: DynamoStore, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):  # fmt: skip
    # Given a bug in the submit path
    _, raw = make_key()

    def broken(**kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr("orders_api.views.client_order_submit", broken)

    # When an order is submitted
    response = post_order(api, raw, VALID)

    # Then 500 JSON without Retry-After, and the exception was logged with its traceback
    assert assert_json_error(response, 500) == {"message": "Internal Server Error"}
    assert not response.has_header("Retry-After")
    (record,) = [r for r in caplog.records if r.message == "unhandled exception in the order API"]
    assert record.exc_info and isinstance(record.exc_info[1], RuntimeError)


def test_an_exception_while_rendering_is_a_logged_json_500(
    api: APIClient, make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):  # fmt: skip
    # Given the JSON renderer failing (after the view answered, outside DRF's handler)
    _, raw = make_key()

    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise RuntimeError("renderer broke")

    monkeypatch.setattr("rest_framework.renderers.JSONRenderer.render", broken)

    # When an order is asked for, Then the middleware answers a JSON 500 and logs it
    response = get_order(api, raw, ORDER_ID)
    assert assert_json_error(response, 500) == {"message": "Internal Server Error"}
    assert any(r.message == "unhandled exception in the order API" for r in caplog.records)


def test_an_exception_in_another_middleware_is_a_json_500_on_the_api_only(
    make_key: KeyMaker, monkeypatch: pytest.MonkeyPatch
):
    # Given a middleware in front of the views that fails on every request
    _, raw = make_key()

    def broken(self: Any, request: Any) -> None:
        raise RuntimeError("middleware broke")

    monkeypatch.setattr("django.middleware.common.CommonMiddleware.process_request", broken)
    client = Client(raise_request_exception=False)

    # When the API and a portal page are asked for
    api_answer = client.get(f"/orders/{ORDER_ID}", HTTP_X_API_KEY=raw)
    page = client.get("/ops/")

    # Then the API answers JSON, while the portal keeps Django's page for people
    assert assert_json_error(api_answer, 500) == {"message": "Internal Server Error"}
    assert page.status_code == 500 and page["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", ["/orders/a/b", "/orders/", "/submitorder/", "/submitorder/x"])
def test_unknown_paths_under_the_api_get_a_json_404(api: APIClient, make_key: KeyMaker, path: str):
    # When a path under the API's routes that no route matches is asked for
    _, raw = make_key()
    response = api.post(path, utf8(VALID), content_type="application/json", HTTP_X_API_KEY=raw)

    # Then it is a JSON 404, not Django's HTML page; the portal's own 404 stays HTML
    assert assert_json_error(response, 404) == {"message": "Not Found"}
    assert api.get("/ops/no-such-page/")["Content-Type"].startswith("text/html")


# -- The same over HTTP, under gunicorn -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_over_http_bad_input_gets_json_4xx_and_nothing_is_written(
    portal_server: PortalServer, store: DynamoStore, make_key: KeyMaker
):
    # Given the portal under gunicorn, and a key (committed: the server has its own connection)
    key, raw = make_key()
    before = len(all_orders(store))
    headers = {"x-api-key": raw}
    surrogate = escaped({**VALID, "CustomerName": "\ud800"})

    # When a lone surrogate is sent with and without an Idempotency-Key, a body that hides
    # text, a form-encoded body, and a path no route matches
    replies = [
        portal_server.request("POST", "/submitorder", raw=surrogate, headers=headers),
        portal_server.request(
            "POST", "/submitorder", raw=surrogate, headers={**headers, "Idempotency-Key": "s-1"}
        ),
        portal_server.request("POST", "/submitorder", raw=with_name("A\u202eB"), headers=headers),
        portal_server.request(
            "POST",
            "/submitorder",
            raw=b"CustomerName=Ann",
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        ),
        portal_server.request("GET", "/orders/a/b", headers=headers),
    ]

    # Then each is a JSON error with the right status, and no order was written
    assert [reply.status for reply in replies] == [400, 400, 400, 415, 404], (
        portal_server.log_tail()
    )
    for reply in replies:
        assert reply.headers["content-type"].startswith("application/json")
        assert reply.json()["message"]
    assert len(all_orders(store)) == before
    assert ClientAPIKey.objects.filter(pk=key.pk).exists()
