"""Failed authentications throttled per client address: bad API keys and staff logins."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.integration.api.conftest import KeyMaker

pytestmark = pytest.mark.integration

LIMIT = 3
BAD_KEY = "Zz9Zz9Zz.not-the-secret"  # a well-formed key: looking it up costs a query
# Loopback addresses only: REMOTE_ADDR is what the test client pretends the peer was.
ATTACKER = "127.0.0.10"
NEIGHBOUR = "127.0.0.11"


def emf(output: str, name: str) -> list[dict[str, Any]]:
    """The embedded-metric lines for metric `name` in captured stdout."""
    return [
        doc
        for doc in (json.loads(line) for line in output.splitlines() if line.startswith("{"))
        if "_aws" in doc and name in doc
    ]


@pytest.fixture
def small_limits(settings: Any) -> None:
    """3 failures per address per minute for keys and for logins."""
    settings.API_KEY_FAILURE_LIMIT = LIMIT
    settings.API_KEY_FAILURE_WINDOW = 60.0
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_FAILURE_WINDOW = 60.0


def get_order(client: APIClient, key: str, address: str, **meta: Any) -> tuple[Any, int]:
    """GET /orders/<id> with `key` from `address`; the response and the SQL queries it made."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(
            "/orders/00000000-0000-0000-0000-000000000000",
            HTTP_X_API_KEY=key,
            REMOTE_ADDR=address,
            **meta,
        )
    return response, len(queries)


# -- API keys ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_bad_keys_from_one_address_get_429_before_any_query(
    small_limits: None, capsys: pytest.CaptureFixture[str]
):
    # Given a client sending unknown keys from one address
    client = APIClient()
    capsys.readouterr()

    # When it sends one more than the limit
    replies = [get_order(client, BAD_KEY, ATTACKER) for _ in range(LIMIT + 1)]

    # Then the first three are 403s that each looked the key up (one query)
    assert [(r.status_code, q) for r, q in replies[:LIMIT]] == [(403, 1)] * LIMIT
    # And the fourth is 429, JSON with Retry-After within the window, and never reached the DB
    blocked, queries = replies[LIMIT]
    assert blocked.status_code == 429
    assert queries == 0
    assert blocked.json() == {
        "message": "Too Many Requests: too many invalid API keys from this address"
    }
    assert 1 <= int(blocked["Retry-After"]) <= 60
    # And the refusal was counted as ApiKeyFailuresThrottled, naming the address
    (metric,) = emf(capsys.readouterr().out, "ApiKeyFailuresThrottled")
    assert metric["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OrderProcessing"
    assert metric["_aws"]["CloudWatchMetrics"][0]["Dimensions"] in ([], [[]])
    assert metric["Address"] == ATTACKER


@pytest.mark.django_db
def test_a_blocked_address_is_refused_even_with_a_good_key_and_others_are_not(
    api: APIClient, small_limits: None, make_key: KeyMaker
):
    # Given an address that used up its failures, and a good key
    _, good = make_key()
    for _ in range(LIMIT):
        assert get_order(api, BAD_KEY, ATTACKER)[0].status_code == 403

    # When the good key is used from that address and from another one
    from_attacker, attacker_queries = get_order(api, good, ATTACKER)
    from_neighbour, _ = get_order(api, good, NEIGHBOUR)
    bad_from_neighbour, neighbour_queries = get_order(api, BAD_KEY, NEIGHBOUR)

    # Then the blocked address gets 429 whatever it sends (its key is not even read)
    assert (from_attacker.status_code, attacker_queries) == (429, 0)
    # And the other address is unaffected: its good key works and its bad key is checked
    assert from_neighbour.status_code == 404  # the order does not exist; the key was accepted
    assert (bad_from_neighbour.status_code, neighbour_queries) == (403, 1)


@pytest.mark.django_db
def test_missing_keys_are_not_counted(small_limits: None):
    # Given a client sending no key at all, many times (no key costs no query)
    client = APIClient()
    codes = [client.get("/orders/x", REMOTE_ADDR=ATTACKER).status_code for _ in range(LIMIT + 2)]
    # Then every one is the usual 403, and a bad key afterwards is still looked up
    assert codes == [403] * (LIMIT + 2)
    assert get_order(client, BAD_KEY, ATTACKER)[0].status_code == 403


@pytest.mark.django_db
def test_a_forged_x_forwarded_for_does_not_escape_the_count(small_limits: None):
    # Given no proxy of ours in front (TRUSTED_PROXY_COUNT = 0, the default)
    client = APIClient()

    # When one peer sends bad keys claiming a new X-Forwarded-For address each time
    replies = [
        get_order(client, BAD_KEY, ATTACKER, HTTP_X_FORWARDED_FOR=f"127.0.1.{n}")[0]
        for n in range(LIMIT + 1)
    ]

    # Then they are all counted against the peer's address
    assert [r.status_code for r in replies] == [403] * LIMIT + [429]


@pytest.mark.django_db
def test_under_zappa_api_gateways_source_ip_is_the_address(small_limits: None):
    # Given requests as Zappa hands them over: the API Gateway event beside a REMOTE_ADDR that
    # Zappa guessed from X-Forwarded-For (so the client chose it)
    client = APIClient()
    event = {"requestContext": {"identity": {"sourceIp": ATTACKER}}}

    # When the client sends bad keys with a different REMOTE_ADDR each time
    replies = [
        get_order(client, BAD_KEY, f"127.0.2.{n}", **{"lambda.event": event})[0]
        for n in range(LIMIT + 1)
    ]

    # Then API Gateway's sourceIp is what is counted
    assert [r.status_code for r in replies] == [403] * LIMIT + [429]


@pytest.mark.django_db
def test_the_window_ends_and_the_address_may_try_again(
    small_limits: None, settings: Any, redis_prefix: str
):
    # Given an address blocked in a window of half a second
    settings.API_KEY_FAILURE_WINDOW = 0.5
    client = APIClient()
    for _ in range(LIMIT):
        get_order(client, BAD_KEY, ATTACKER)
    assert get_order(client, BAD_KEY, ATTACKER)[0].status_code == 429

    # When the window is over
    import time

    time.sleep(0.6)

    # Then its next key is looked up again
    response, queries = get_order(client, BAD_KEY, ATTACKER)
    assert (response.status_code, queries) == (403, 1)


@pytest.mark.django_db
def test_redis_down_lets_bad_keys_through_to_the_check_and_counts_it(
    small_limits: None, settings: Any, refused_port: int, capsys: pytest.CaptureFixture[str]
):
    # Given the limiter's Redis refuses connections
    settings.REDIS_URL = f"redis://127.0.0.1:{refused_port}/0"
    settings.RATE_LIMIT_REDIS_TIMEOUT = 0.2
    client = APIClient()
    capsys.readouterr()

    # When an address sends more bad keys than the limit
    replies = [get_order(client, BAD_KEY, ATTACKER) for _ in range(LIMIT + 2)]

    # Then it fails open: every key is still checked (403, one query each), none throttled
    assert [(r.status_code, q) for r, q in replies] == [(403, 1)] * (LIMIT + 2)
    # And each request counted RateLimiterUnavailable for the key-failure throttle
    unavailable = emf(capsys.readouterr().out, "RateLimiterUnavailable")
    assert unavailable
    assert {m["Scope"] for m in unavailable} == {"api-key"}


# -- Staff logins -----------------------------------------------------------------------------


@pytest.fixture
def staff(db: None) -> Any:
    """A staff user who may use the admin."""
    return get_user_model().objects.create_user(
        "ops", password="right-horse-battery", is_staff=True
    )


def login(client: Client, password: str, address: str) -> tuple[Any, int]:
    """POST the admin's login form; the response and the SQL queries it made."""
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            "/admin/login/?next=/admin/",
            {"username": "ops", "password": password, "next": "/admin/"},
            REMOTE_ADDR=address,
        )
    return response, len(queries)


def test_failed_logins_from_one_address_get_429_before_the_password_is_checked(
    staff: Any, small_limits: None, capsys: pytest.CaptureFixture[str]
):
    # Given someone guessing the staff member's password from one address
    client = Client()
    capsys.readouterr()

    # When they try one more time than the limit
    replies = [login(client, f"guess-{n}", ATTACKER) for n in range(LIMIT + 1)]

    # Then the first three get the form back with its error, each after a user lookup
    for response, queries in replies[:LIMIT]:
        assert response.status_code == 200
        assert b"Please enter the correct username and password" in response.content
        assert queries >= 1
    # And the fourth is 429 with a clear message and Retry-After, and never reached the DB
    blocked, queries = replies[LIMIT]
    assert blocked.status_code == 429
    assert queries == 0
    assert b"Too many failed logins from your address" in blocked.content
    assert 1 <= int(blocked["Retry-After"]) <= 60
    # And it was counted as LoginFailuresThrottled
    (metric,) = emf(capsys.readouterr().out, "LoginFailuresThrottled")
    assert metric["Address"] == ATTACKER


def test_a_blocked_address_cannot_log_in_and_another_address_can(staff: Any, small_limits: None):
    # Given an address that used up its failed logins
    client = Client()
    for n in range(LIMIT):
        login(client, f"guess-{n}", ATTACKER)

    # When the right password comes from it, and from another address
    from_attacker, _ = login(client, "right-horse-battery", ATTACKER)
    wrong_from_neighbour, _ = login(Client(), "typo", NEIGHBOUR)
    from_neighbour, _ = login(Client(), "right-horse-battery", NEIGHBOUR)

    # Then the blocked address is refused even so; the other one is unaffected
    assert from_attacker.status_code == 429
    assert wrong_from_neighbour.status_code == 200
    assert (from_neighbour.status_code, from_neighbour["Location"]) == (302, "/admin/")


def test_the_login_page_itself_stays_readable_while_blocked(staff: Any, small_limits: None):
    # Given a blocked address
    client = Client()
    for n in range(LIMIT):
        login(client, f"guess-{n}", ATTACKER)
    # Then it can still read the form (only attempts are refused)
    assert client.get("/admin/login/", REMOTE_ADDR=ATTACKER).status_code == 200


def test_redis_down_leaves_logins_working_unthrottled_and_counts_it(
    staff: Any,
    small_limits: None,
    settings: Any,
    refused_port: int,
    capsys: pytest.CaptureFixture[str],
):
    # Given the limiter's Redis refuses connections
    settings.REDIS_URL = f"redis://127.0.0.1:{refused_port}/0"
    settings.RATE_LIMIT_REDIS_TIMEOUT = 0.2
    client = Client()
    capsys.readouterr()

    # When an address fails more often than the limit, then logs in
    failures = [login(client, f"guess-{n}", ATTACKER)[0] for n in range(LIMIT + 1)]
    success, _ = login(client, "right-horse-battery", ATTACKER)

    # Then it fails open: every attempt is checked, none throttled, the right one logs in
    assert [r.status_code for r in failures] == [200] * (LIMIT + 1)
    assert success.status_code == 302
    # And RateLimiterUnavailable was counted for the login throttle
    unavailable = emf(capsys.readouterr().out, "RateLimiterUnavailable")
    assert {m["Scope"] for m in unavailable} == {"login"}
