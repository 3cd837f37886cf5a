"""Portal at scale: the pages staff open, timed over 100,000 orders and 10,000 items.

Orders are written with final statuses straight to DynamoDB Local (tables only: no pipeline
reacts to them); queues and metrics live in a moto server. Each page is fetched by a logged-in
staff member over HTTP from the portal under gunicorn, one request at a time.
"""

from __future__ import annotations

import http.client
import re
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from bench.context import Context
from bench.gunicorn import manage, running_portal
from pipeline import aws
from pipeline.adapters.dynamodb.codec import serialize
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.local.emulators import REPO_ROOT
from pipeline.statuses import OrderStatus

PASSWORD = "bench-portal-password-1"
FINAL = [OrderStatus.SHIPPED, OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED]


def _batch_write(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    def write(chunk: list[dict[str, Any]]) -> None:
        request = {table: [{"PutRequest": {"Item": serialize(i)}} for i in chunk]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems")

    chunks = [items[i : i + 25] for i in range(0, len(items), 25)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, chunks))


def seeding_client(env: dict[str, str]) -> Any:
    """A DynamoDB client for bulk loads: botocore's 60 s timeouts, not the pipeline's 5 s
    (on a loaded machine DynamoDB Local may take longer than 5 s to answer a batch)."""
    return aws.new_client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region=env["AWS_REGION"],
        credentials=env,
        config=aws.SDK_DEFAULT_CONFIG,
    )


def _seed(env: dict[str, str], orders: int, items: int) -> float:
    client = seeding_client(env)
    started = time.monotonic()
    for start in range(0, orders, 5000):
        batch = []
        for i in range(start, min(orders, start + 5000)):
            order = Order.new(customer_name=f"customer {i % 997}", lines=[OrderLine("item-1", 1)])
            status = FINAL[i % len(FINAL)]
            batch.append(order.with_status(status, "seeded", order.last_updated).as_item())
        _batch_write(client, env["ORDERS_TABLE_NAME"], batch)
    stock = [
        InventoryItem(f"item-{i}", 50 + i % 100, Decimal("9.99"), f"bench item {i}").as_item()
        for i in range(items)
    ]
    _batch_write(client, env["INVENTORY_TABLE_NAME"], stock)
    return time.monotonic() - started


def _queues(moto_url: str, env: dict[str, str]) -> dict[str, str]:
    sqs = aws.new_client("sqs", endpoint_url=moto_url, region=env["AWS_REGION"], credentials=env)
    names = {"ORDERS_QUEUE_URL": "q", "ORDERS_DLQ_URL": "dlq", "STREAM_FAILURE_QUEUE_URL": "sf"}
    return {k: sqs.create_queue(QueueName=f"bench-{v}")["QueueUrl"] for k, v in names.items()}


class Session:
    """A staff member logged in to the portal over HTTP (the admin's login form)."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, body: str | None = None) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Referer"] = f"http://127.0.0.1:{self.port}{path}"
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return response.status, text

    def login(self, username: str) -> None:
        _, page = self.request("GET", "/admin/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, "no login form"
        form = {"csrfmiddlewaretoken": token.group(1), "username": username, "password": PASSWORD}
        status, _ = self.request("POST", "/admin/login/?next=/admin/", urlencode(form))
        if status != 302:
            raise SystemExit(f"bench: login failed ({status})")


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * 0.95))]


def run(context: Context) -> dict[str, Any]:
    """Seed, log in, fetch each page 20 times (8 with --quick); p50 and p95 per page."""
    orders, items = (5_000, 1_000) if context.quick else (100_000, 10_000)
    rounds = 8 if context.quick else 20
    env = dict(context.tables())
    moto_url = context.moto()
    env.update({"AWS_ENDPOINT_URL": moto_url, **_queues(moto_url, env)})
    env["INVENTORY_CATALOGUE_KEY_PREFIX"] = f"bench:{uuid.uuid4().hex[:8]}:"
    seed_s = _seed(env, orders, items)
    figures: dict[str, Any] = {"orders": orders, "items": items, "seed_s": seed_s}
    with running_portal(env, context.tmp / "portal", settings="bench.settings") as p:
        subprocess.run(
            [
                sys.executable, "manage.py", "createsuperuser", "--noinput",
                "--username", "bench", "--email", "bench@example.com",
            ],
            env={**p.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
            check=True, capture_output=True, cwd=REPO_ROOT,
        )  # fmt: skip
        # The inventory catalogue the admin's list reads (beat's work, once here).
        shell = "from operations import catalogue; print(catalogue.catalogue().refresh())"
        manage(p.env, "shell", "-c", shell)
        session = Session(p.port)
        session.login("bench")
        pages = {
            "orders": "/admin/operations/order/?status=SHIPPED",
            "inventory": "/admin/operations/inventoryitem/?q=item-5",
            "dashboard": "/ops/",
        }
        for name, path in pages.items():
            session.request("GET", path)  # warm-up
            times = []
            for _ in range(rounds):
                started = time.perf_counter()
                status, _ = session.request("GET", path)
                times.append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise SystemExit(f"bench: {path} answered {status}")
            times.sort()
            figures[f"{name}_p50_ms"] = times[len(times) // 2]
            figures[f"{name}_p95_ms"] = _p95(times)
            figures[f"{name}_path"] = path
        forget = (
            "from operations import catalogue; b = catalogue.catalogue().backend; "
            "[b.r.delete(k) for k in b.r.scan_iter(b.key + '*')] if hasattr(b, 'r') else None"
        )
        manage(p.env, "shell", "-c", forget)
    return figures
