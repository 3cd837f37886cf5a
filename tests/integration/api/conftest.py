"""Fixtures of the order API's tests: keys and plans, a Redis prefix per test, gunicorn."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from rest_framework.test import APIClient

from orders_api.models import ClientAPIKey, UsagePlan
from pipeline.adapters.dynamodb import DynamoStore, deserialize
from pipeline.domain import Order
from tests.integration.api.servers import PortalServer, start_portal, stop_portal

KeyMaker = Callable[..., tuple[ClientAPIKey, str]]


def _forget_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def redis_prefix(settings: Any) -> Iterator[str]:
    """A Redis key prefix of this test's own, so no test sees another's buckets."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    url = settings.REDIS_URL  # read now: a test may point REDIS_URL at a dead port
    settings.RATE_LIMIT_KEY_PREFIX = prefix
    yield prefix
    _forget_prefix(url, prefix)


@pytest.fixture
def make_plan(db: None) -> Callable[..., UsagePlan]:
    """Create a usage plan: make_plan("tiny", rate_limit=1, burst_limit=2, daily_quota=3)."""

    def make(name: str | None = None, **limits: Any) -> UsagePlan:
        return UsagePlan.objects.create(name=name or f"plan-{uuid.uuid4().hex[:8]}", **limits)

    return make


@pytest.fixture
def make_key(db: None) -> KeyMaker:
    """Create a client key: make_key("acme", plan=..., expiry_date=..., revoked=...)."""

    def make(
        name: str = "acme",
        *,
        plan: UsagePlan | None = None,
        expiry_date: datetime | None = None,
        revoked: bool = False,
    ) -> tuple[ClientAPIKey, str]:
        key, raw = ClientAPIKey.objects.create_key(name=name, plan=plan, expiry_date=expiry_date)
        if revoked:
            key.revoked = True
            key.save()
        return key, raw

    return make


@pytest.fixture
def api(store: DynamoStore) -> APIClient:
    """DRF's test client, with DynamoDB Local's tables in the environment."""
    return APIClient()


def post_order(client: APIClient, raw_key: str | None, body: Any, **headers: str) -> Any:
    """POST /submitorder with the key in x-api-key (None: no key)."""
    extra = {"HTTP_X_API_KEY": raw_key} if raw_key is not None else {}
    extra.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
    return client.post("/submitorder", body, format="json", **extra)


def get_order(client: APIClient, raw_key: str | None, order_id: str) -> Any:
    """GET /orders/<id> with the key in x-api-key."""
    extra = {"HTTP_X_API_KEY": raw_key} if raw_key is not None else {}
    return client.get(f"/orders/{order_id}", **extra)


def all_orders(store: DynamoStore) -> list[Order]:
    """Every order in the table (a full scan: test tables are small)."""
    orders: list[Order] = []
    kwargs: dict[str, Any] = {"TableName": store.orders_table, "ConsistentRead": True}
    while True:
        page = store.client.scan(**kwargs)
        orders.extend(Order.from_item(deserialize(item)) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return orders
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def orders_of(store: DynamoStore, client_id: str) -> list[Order]:
    """The orders a key created."""
    return [order for order in all_orders(store) if order.client_id == client_id]


@pytest.fixture(scope="module")
def portal_server(
    django_db_setup: None,
    dynamodb_endpoint: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[PortalServer]:
    """gunicorn (4 sync workers) serving the portal on the test database, DynamoDB Local and
    Redis. Tests that use it need committed rows: mark them django_db(transaction=True)."""
    from django.db import connection

    database = connection.settings_dict
    env = {
        **dynamodb_endpoint,
        "DATABASE_URL": (
            f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
            f"{database['NAME']}"
        ),
        "REDIS_URL": django_settings.REDIS_URL,
        "ORDERS_API_METRICS_ENABLED": "false",
    }
    prefix = f"test:gunicorn-{uuid.uuid4().hex[:8]}:"
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    server = start_portal(env, log_path, prefix=prefix)
    try:
        yield server
    finally:
        stop_portal(server)
        _forget_prefix(django_settings.REDIS_URL, prefix)
