"""The per-process API key cache: a busy key costs no query, a key changed here is refused at
once, a key changed elsewhere within API_KEY_CACHE_SECONDS."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from orders_api.models import ClientAPIKey

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture(autouse=True)
def own_keys_version(settings: Any) -> None:
    # The keys' version lives in the shared Redis: tests in other xdist workers saving their
    # keys would raise it between two requests here. This module's tests get a version of
    # their own (as a separate deployment would).
    settings.API_KEY_CACHE_VERSION_KEY = f"test:api-keys:version:{uuid.uuid4().hex}"


def _status(client: APIClient, raw: str) -> int:
    # An order that does not exist: 404 for a good key, 403 for a refused one; no DynamoDB
    # write, and the answer comes after the key check.
    return client.get("/orders/no-such-order", HTTP_X_API_KEY=raw).status_code


def test_a_busy_key_is_looked_up_once(make_key: Any, store: Any) -> None:
    # Given a key that was used once
    _, raw = make_key()
    client = APIClient()
    assert _status(client, raw) == 404

    # When it is used again
    with CaptureQueriesContext(connection) as queries:
        assert _status(client, raw) == 404

    # Then its row was not read again
    assert not [q for q in queries.captured_queries if "apikey" in q["sql"].lower()]


def test_a_key_revoked_in_this_process_is_refused_at_once(make_key: Any, store: Any) -> None:
    # Given a key in the cache
    key, raw = make_key()
    client = APIClient()
    assert _status(client, raw) == 404

    # When staff revoke it (a save: the admin's way)
    key.revoked = True
    key.save()

    # Then the next request is refused
    assert _status(client, raw) == 403


def test_a_key_revoked_elsewhere_is_refused_within_the_cache_time(
    make_key: Any, store: Any, settings: Any
) -> None:
    # Given a key in this process's cache, which lives three seconds
    settings.API_KEY_CACHE_SECONDS = 3.0
    key, raw = make_key()
    client = APIClient()
    assert _status(client, raw) == 404

    # When another process revokes it (an UPDATE this process hears nothing of)
    ClientAPIKey.objects.filter(pk=key.pk).update(revoked=True)

    # Then this process still accepts it until its entry is old, and refuses it after
    assert _status(client, raw) == 404
    time.sleep(3.1)
    assert _status(client, raw) == 403


def test_a_wrong_secret_with_a_cached_prefix_is_refused(make_key: Any, store: Any) -> None:
    # Given a key in the cache
    _, raw = make_key()
    client = APIClient()
    assert _status(client, raw) == 404

    # When its prefix comes with another secret
    prefix = raw.partition(".")[0]

    # Then it is refused: the cache is indexed by the whole key, not the prefix
    assert _status(client, f"{prefix}.not-the-secret") == 403
