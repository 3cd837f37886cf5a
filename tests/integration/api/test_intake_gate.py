"""The key check's single Redis round trip (RedisRateLimiter.gate): a cached key's version, the
address's failed authentications and the key's token in one script, each token taken once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from rest_framework.test import APIClient

from orders_api.throttling import limiter
from tests.integration.api.conftest import KeyMaker, post_order

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

BODY = {"CustomerName": "Gate", "Items": ["laptop"]}
BAD_KEY = "Zz9Zz9Zz.not-the-secret"
ATTACKER = "127.0.0.20"


class CommandLog:
    """The commands this process's limiter sends to Redis (they still run: a spy, no stub)."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, original: Any) -> Any:
        def execute(*args: Any, **options: Any) -> Any:
            self.names.append(str(args[0]))
            return original(*args, **options)

        return execute


@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> Iterator[CommandLog]:
    """Every command the limiter's client sends during the test."""
    log = CommandLog()
    client = limiter().redis
    monkeypatch.setattr(client, "execute_command", log(client.execute_command))
    yield log


def _used(settings: Any, prefix: str, client_id: str) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.hget(f"{prefix}ratelimit:{{{client_id}}}", "used") or 0)
    finally:
        client.close()


def test_a_cached_key_costs_one_redis_round_trip_and_one_token(
    api: APIClient, make_key: KeyMaker, commands: CommandLog, settings: Any, redis_prefix: str
) -> None:
    # Given a key this process has cached (its first order read the database)
    key, raw = make_key()
    assert post_order(api, raw, BODY).status_code == 200
    commands.names.clear()

    # When it sends two more orders
    replies = [post_order(api, raw, BODY).status_code for _ in range(2)]

    # Then each cost one Redis command (the gate script), and each took one token
    assert replies == [200, 200]
    assert commands.names == ["EVALSHA", "EVALSHA"]
    assert _used(settings, redis_prefix, key.client_id) == 3


def test_a_key_changed_since_it_was_cached_is_read_again_and_charged_once(
    api: APIClient, make_key: KeyMaker, make_plan: Any, settings: Any, redis_prefix: str
) -> None:
    # Given a cached key on a plan of a burst of 2
    key, raw = make_key(plan=make_plan(rate_limit=0.01, burst_limit=2, daily_quota=None))
    assert post_order(api, raw, BODY).status_code == 200

    # When staff change the key (its version moves on) and it sends two more orders
    key.name = "renamed"
    key.save()
    replies = [post_order(api, raw, BODY).status_code for _ in range(2)]

    # Then the stale entry took no token: the second order is the burst's, the third is refused
    assert replies == [200, 429]
    assert _used(settings, redis_prefix, key.client_id) == 2


def _post_from(api: APIClient, raw: str, address: str) -> int:
    return api.post(
        "/submitorder", BODY, format="json", HTTP_X_API_KEY=raw, REMOTE_ADDR=address
    ).status_code


def test_a_blocked_address_takes_no_token_from_a_cached_key(
    api: APIClient, make_key: KeyMaker, settings: Any, redis_prefix: str
) -> None:
    # Given a cached key, and an address that used up its failures
    settings.API_KEY_FAILURE_LIMIT = 2
    key, raw = make_key()
    assert _post_from(api, raw, ATTACKER) == 200
    assert [_post_from(api, BAD_KEY, ATTACKER) for _ in range(2)] == [403, 403]

    # When the good key is sent from that address
    status = _post_from(api, raw, ATTACKER)

    # Then it is refused before its bucket is touched
    assert status == 429
    assert _used(settings, redis_prefix, key.client_id) == 1


def test_a_revoked_key_in_the_cache_is_refused_without_a_token(
    api: APIClient, make_key: KeyMaker, settings: Any, redis_prefix: str
) -> None:
    # Given a key that sent one order, then was revoked by staff (the cache now holds it revoked)
    key, raw = make_key()
    assert post_order(api, raw, BODY).status_code == 200
    key.revoked = True
    key.save()
    assert post_order(api, raw, BODY).status_code == 403

    # When it is sent again, from the cache
    response = post_order(api, raw, BODY)

    # Then it is refused, and its bucket holds only the first order
    assert response.status_code == 403
    assert _used(settings, redis_prefix, key.client_id) == 1
