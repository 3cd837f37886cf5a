"""The limits and idempotency under real concurrent clients, against gunicorn's sync workers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.api.conftest import KeyMaker, orders_of
from tests.integration.api.servers import PortalServer, Reply

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True), pytest.mark.slow]

BODY = {"CustomerName": "Burst Client", "Items": ["laptop"]}


def _fire(
    server: PortalServer,
    count: int,
    threads: int,
    headers: dict[str, str],
    method: str = "POST",
    path: str = "/submitorder",
) -> list[Reply]:
    body = BODY if method == "POST" else None
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [
            pool.submit(server.request, method, path, body=body, headers=headers)
            for _ in range(count)
        ]
        return [future.result() for future in futures]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        # Reads of an id that cannot exist: cheap, so 300 arrive in about a second.
        ("GET", "/orders/no-such-order!"),
        # Orders: each admitted one is a DynamoDB write, so the burst takes longer.
        ("POST", "/submitorder"),
    ],
    ids=["reads", "orders"],
)
def test_burst_of_300_admits_no_more_than_the_bucket(
    portal_server: PortalServer,
    store: DynamoStore,
    make_key: KeyMaker,
    capsys: Any,
    method: str,
    path: str,
):
    # Given a key on the seed's plan: 50/s sustained, bursts up to 100
    key, raw = make_key("burst")
    # And workers that have built their clients already (a cold worker is slow, not limited)
    _, warm = make_key("warm-up")
    portal_server.warm_up(warm)

    # When 300 requests arrive from 32 client threads as fast as they can
    started = time.monotonic()
    replies = _fire(portal_server, 300, 32, {"x-api-key": raw}, method, path)
    elapsed = time.monotonic() - started

    # Then none failed, the admitted ones fit the bucket, the rest were refused with 429
    admitted_code = 200 if method == "POST" else 404
    codes = [r.status for r in replies]
    admitted = codes.count(admitted_code)
    limited = codes.count(429)
    allowed = 100 + 50 * elapsed
    with capsys.disabled():
        print(
            f"\n  burst of {method}s: 300 requests in {elapsed:.2f} s -> {admitted} admitted, "
            f"{limited} refused (429); the bucket allows at most {allowed:.0f}"
        )
    assert admitted + limited == 300, sorted(set(codes))
    assert 100 <= admitted <= allowed + 1
    assert all(r.headers.get("retry-after") for r in replies if r.status == 429)
    # And exactly the admitted requests wrote orders
    assert len(orders_of(store, key.client_id)) == (admitted if method == "POST" else 0)


def test_small_daily_quota_is_exact_under_concurrency(
    portal_server: PortalServer, store: DynamoStore, make_key: KeyMaker, make_plan: Any
):
    # Given a key whose plan allows 5 requests a day (and a roomy bucket)
    key, raw = make_key("quota", plan=make_plan(rate_limit=100, burst_limit=100, daily_quota=5))

    # When 20 requests arrive at once from 10 threads, then one more
    replies = _fire(portal_server, 20, 10, {"x-api-key": raw})
    later = portal_server.request("POST", "/submitorder", body=BODY, headers={"x-api-key": raw})

    # Then exactly 5 were admitted and everything after is refused until tomorrow
    assert sorted(r.status for r in replies) == [200] * 5 + [429] * 15
    assert later.status == 429
    assert later.json()["message"].startswith("Limit Exceeded")
    assert int(later.headers["retry-after"]) > 0
    assert len(orders_of(store, key.client_id)) == 5


def test_ten_racing_identical_requests_make_one_order(
    portal_server: PortalServer, store: DynamoStore, make_key: KeyMaker
):
    # Given a key and one Idempotency-Key
    key, raw = make_key("racer")
    headers = {"x-api-key": raw, "Idempotency-Key": "race-0001"}

    # When 10 identical requests race through 4 worker processes
    replies = _fire(portal_server, 10, 10, headers)

    # Then all get the same 200, one of them the original, and one order exists
    assert [r.status for r in replies] == [200] * 10, [r.body for r in replies]
    assert len({r.json()["OrderId"] for r in replies}) == 1
    assert sum(1 for r in replies if r.headers.get("idempotent-replayed") != "true") == 1
    assert len(orders_of(store, key.client_id)) == 1

    # And a different body with the same key is refused with 422
    other = portal_server.request(
        "POST", "/submitorder", body={**BODY, "CustomerName": "Other"}, headers=headers
    )
    assert other.status == 422
    assert len(orders_of(store, key.client_id)) == 1


def test_revoked_key_is_refused_by_every_worker(portal_server: PortalServer, make_key: KeyMaker):
    # Given a key that worked, then was revoked in the admin's database
    key, raw = make_key("revoke-me")
    first = portal_server.request("POST", "/submitorder", body=BODY, headers={"x-api-key": raw})
    assert first.status == 200
    key.revoked = True
    key.save()

    # When it is used again on several connections (any worker may answer)
    replies = [
        portal_server.request("POST", "/submitorder", body=BODY, headers={"x-api-key": raw})
        for _ in range(8)
    ]

    # Then every worker refuses it at once: a cached key is only used while no key changed
    assert {r.status for r in replies} == {403}
