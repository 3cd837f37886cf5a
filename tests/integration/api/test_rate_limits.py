"""Per-key limits in Redis: token bucket, daily quota, plans per key, Redis down."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import redis

from orders_api.models import Limits
from orders_api.ratelimit import RedisRateLimiter
from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.api.conftest import KeyMaker, all_orders, get_order, orders_of, post_order

BODY = {"CustomerName": "Ann", "Items": ["laptop"]}

pytestmark = pytest.mark.integration


@pytest.fixture
def limiter(settings: Any) -> RedisRateLimiter:
    """A limiter on the test Redis database."""
    return RedisRateLimiter(settings.REDIS_URL, timeout=1.0, retry_seconds=5.0)


# -- The limiter itself, against real Redis ------------------------------------------------


def test_bucket_admits_the_burst_then_refills_at_the_rate(limiter, redis_prefix: str):
    # Given a client with burst 5 and 20 requests/s
    limits = Limits(rate_limit=20.0, burst_limit=5, daily_quota=None)

    # When it sends 8 requests at once
    decisions = [limiter.hit("c1", limits, prefix=redis_prefix) for _ in range(8)]

    # Then 5 pass and 3 are told to wait about one token's time (1/20 s)
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 3
    refused = decisions[-1]
    assert refused.reason == "rate"
    assert 0 < refused.retry_after <= 0.06
    assert refused.retry_after_header == "1"
    # And after a tenth of a second there is room again
    time.sleep(0.11)
    assert limiter.hit("c1", limits, prefix=redis_prefix).allowed


def test_daily_quota_refuses_until_utc_midnight(limiter, redis_prefix: str):
    # Given a client with a quota of 3 a day and a roomy bucket
    limits = Limits(rate_limit=100.0, burst_limit=100, daily_quota=3)

    # When it sends 5 requests
    decisions = [limiter.hit("c2", limits, prefix=redis_prefix) for _ in range(5)]

    # Then 3 pass and the rest wait for the next UTC day
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[-1].reason == "quota"
    now = time.time()
    to_midnight = 86400 - now % 86400
    assert abs(decisions[-1].retry_after - to_midnight) < 5
    assert decisions[2].used_today == 3


def test_concurrent_hits_never_exceed_the_bucket(limiter, redis_prefix: str):
    # Given a bucket of 50 that refills very slowly
    limits = Limits(rate_limit=0.001, burst_limit=50, daily_quota=None)
    admitted: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [limiter.hit("hot", limits, prefix=redis_prefix).allowed for _ in range(25)]
        with lock:
            admitted.extend(mine)

    # When 8 threads send 200 requests together
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly 50 were admitted: the check and the take are one atomic step
    assert len(admitted) == 200
    assert sum(admitted) == 50


def test_unreachable_redis_is_reported_and_not_retried_at_once(
    redis_prefix: str, refused_port: int
):
    # Given a limiter whose Redis does not listen
    down = RedisRateLimiter(f"redis://127.0.0.1:{refused_port}/0", timeout=0.2, retry_seconds=30)
    limits = Limits(50.0, 100, 10_000)

    # When it is asked twice
    started = time.monotonic()
    first = down.hit("c", limits, prefix=redis_prefix)
    second = down.hit("c", limits, prefix=redis_prefix)
    elapsed = time.monotonic() - started

    # Then both say unavailable, and the second did not wait for Redis again
    assert (first.reason, second.reason) == ("unavailable", "unavailable")
    assert elapsed < 1.0


# -- Through the API ------------------------------------------------------------------------


@pytest.mark.django_db
def test_over_the_burst_gets_429_with_retry_after_and_nothing_written(
    api, store: DynamoStore, make_key: KeyMaker, make_plan: Any
):
    # Given a key whose plan allows a burst of 2 and hardly refills
    key, raw = make_key(plan=make_plan(rate_limit=0.01, burst_limit=2, daily_quota=None))

    # When it sends three orders
    replies = [post_order(api, raw, BODY) for _ in range(3)]

    # Then two are written, the third is 429 with Retry-After and wrote nothing
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[2].json()["message"].startswith("Too Many Requests")
    assert 90 <= int(replies[2]["Retry-After"]) <= 101  # one token at 0.01/s
    assert len(orders_of(store, key.client_id)) == 2
    # And reading counts against the same plan
    assert get_order(api, raw, replies[0].json()["OrderId"]).status_code == 429


@pytest.mark.django_db
def test_daily_quota_gets_429_limit_exceeded(
    api, store: DynamoStore, make_key: KeyMaker, make_plan: Any
):
    # Given a key whose plan allows 2 requests a day
    key, raw = make_key(plan=make_plan(rate_limit=100, burst_limit=100, daily_quota=2))

    # When it sends three
    replies = [post_order(api, raw, BODY) for _ in range(3)]

    # Then the third is refused until tomorrow
    assert [r.status_code for r in replies] == [200, 200, 429]
    assert replies[2].json()["message"].startswith("Limit Exceeded")
    assert int(replies[2]["Retry-After"]) > 0
    assert len(orders_of(store, key.client_id)) == 2


@pytest.mark.django_db
def test_keys_have_separate_buckets_and_plans(api, make_key: KeyMaker, make_plan: Any):
    # Given one key on a tiny plan and one on the default plan
    _, tiny = make_key("tiny", plan=make_plan(rate_limit=0.01, burst_limit=1, daily_quota=None))
    _, default = make_key("default")

    # When both send two orders
    tiny_codes = [post_order(api, tiny, BODY).status_code for _ in range(2)]
    default_codes = [post_order(api, default, BODY).status_code for _ in range(2)]

    # Then only the tiny plan's key is limited
    assert tiny_codes == [200, 429]
    assert default_codes == [200, 200]


@pytest.mark.django_db
def test_a_new_plan_applies_to_the_next_request(api, make_key: KeyMaker, make_plan: Any):
    # Given a key that used up a burst of 1
    key, raw = make_key(plan=make_plan(rate_limit=0.01, burst_limit=1, daily_quota=None))
    assert post_order(api, raw, BODY).status_code == 200
    assert post_order(api, raw, BODY).status_code == 429

    # When staff give it the default-sized plan in the admin
    key.plan = make_plan(rate_limit=50, burst_limit=100, daily_quota=None)
    key.save()

    # Then the next request is measured by the new plan (the bucket refills at 50/s)
    time.sleep(0.05)
    assert post_order(api, raw, BODY).status_code == 200


@pytest.mark.django_db
def test_redis_down_allows_by_default_and_counts_it(
    api,
    store: DynamoStore,
    make_key: KeyMaker,
    settings: Any,
    refused_port: int,
    capsys: pytest.CaptureFixture[str],
):
    # Given Redis cannot be reached and the default policy ("allow")
    key, raw = make_key()
    settings.REDIS_URL = f"redis://127.0.0.1:{refused_port}/0"
    settings.RATE_LIMIT_REDIS_TIMEOUT = 0.2
    assert settings.RATE_LIMIT_ON_REDIS_ERROR == "allow"
    capsys.readouterr()

    # When an order is sent
    response = post_order(api, raw, BODY)

    # Then it is taken (the key was still checked) and RateLimiterUnavailable is counted
    assert response.status_code == 200
    assert len(orders_of(store, key.client_id)) == 1
    assert '"RateLimiterUnavailable"' in capsys.readouterr().out


@pytest.mark.django_db
def test_redis_down_with_deny_policy_gets_503_and_nothing_written(
    api, store: DynamoStore, make_key: KeyMaker, settings: Any, refused_port: int
):
    # Given Redis cannot be reached and the portal is set to refuse then
    _, raw = make_key()
    settings.REDIS_URL = f"redis://127.0.0.1:{refused_port}/0"
    settings.RATE_LIMIT_REDIS_TIMEOUT = 0.2
    settings.RATE_LIMIT_ON_REDIS_ERROR = "deny"
    before = len(all_orders(store))

    # When an order is sent
    response = post_order(api, raw, BODY)

    # Then 503 with Retry-After, and nothing was written
    assert response.status_code == 503
    assert int(response["Retry-After"]) >= 1
    assert len(all_orders(store)) == before


@pytest.mark.django_db
def test_limiter_state_lives_in_redis_under_the_test_prefix(
    api, make_key: KeyMaker, settings: Any, redis_prefix: str
):
    # Given a key that sent one order
    key, raw = make_key()
    post_order(api, raw, BODY)

    # Then its bucket is one hash in Redis, with today's count, expiring within two days
    client = redis.Redis.from_url(settings.REDIS_URL)
    name = f"{redis_prefix}ratelimit:{{{key.client_id}}}"
    state = {k.decode(): v.decode() for k, v in client.hgetall(name).items()}
    assert state["used"] == "1"
    assert float(state["tokens"]) == pytest.approx(99, abs=0.5)
    assert 0 < client.ttl(name) <= 172800
    client.close()
