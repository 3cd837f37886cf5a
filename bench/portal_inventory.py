"""Benchmark: the Inventory admin changelist with 10,000 items, over HTTP, on DynamoDB Local.

    .venv/bin/python -m bench.portal_inventory [--items 10000] [--views 60]

Seeds the items into a fresh DynamoDB Local and serves the portal under gunicorn (2 sync
workers; production settings with collected static files; SQLite for the staff tables; Redis
on 127.0.0.1 db 12 for the catalogue). Logs in as a superuser and times page views of
/admin/operations/inventoryitem/, one after another: the first one (which builds the inventory
catalogue from a Scan: beat's work), then p50/p95 for page 1, page 58 (reached through the
"next" cursors), sorted by price, the low-stock filter, a name-prefix search and substring
searches of names and descriptions. Each view is the whole request: session, permissions, the
catalogue query, one BatchGetItem for the rows shown, the admin template. The catalogue's
Redis keys are removed afterwards.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from pipeline import aws
from pipeline.local.emulators import REPO_ROOT, free_port, port_open
from pipeline.local.tables import start_tables

COLOURS = ("red", "blue", "green", "black", "white", "brass", "oak", "steel")
REDIS_URL = "redis://127.0.0.1:6379/12"
LIST = "/admin/operations/inventoryitem/"


def _seed(env: dict[str, str], count: int) -> None:
    client = aws.new_client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region=env["AWS_REGION"],
        credentials={k: env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
    )
    table = env["INVENTORY_TABLE_NAME"]
    for start in range(0, count, 25):
        requests = []
        for n in range(start, min(count, start + 25)):
            item = {
                "ItemName": {"S": f"item-{n:05d}"},
                "Stock": {"N": str((n * 7919) % 500)},
                "Price": {"N": f"{(n * 31) % 1000}.{n % 100:02d}"},
                "Description": {"S": f"A {COLOURS[n % len(COLOURS)]} thing, number {n}"},
            }
            requests.append({"PutRequest": {"Item": item}})
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


class Browser:
    """A client of one host keeping its cookies (the portal marks them Secure: it is told the
    request came over HTTPS, as behind a load balancer)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: dict[str, str] | None = None
    ) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {
            "X-Forwarded-Proto": "https",
            "Host": f"127.0.0.1:{self.port}",
            "Referer": f"https://127.0.0.1:{self.port}{LIST}",
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items()),
        }
        data = None
        if body is not None:
            data = urlencode(body)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        for header, value in response.getheaders():
            if header.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                self.cookies[name] = rest.split(";", 1)[0]
        conn.close()
        return response.status, text

    def timed_get(self, path: str) -> tuple[float, str]:
        started = time.perf_counter()
        status, text = self.request("GET", path)
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise SystemExit(f"GET {path}: {status}")
        return elapsed, text


def _next_link(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" class="end" id="page-next"', page)
    return LIST + found.group(1).replace("&amp;", "&") if found else None


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=60, help="page views timed per case")
    args = parser.parse_args()

    emulator, tables_env = start_tables("bench-inventory")
    prefix = f"bench-inventory:{uuid.uuid4().hex[:8]}:"
    portal = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            password = uuid.uuid4().hex
            env = {
                **os.environ,
                **tables_env,
                "DJANGO_SETTINGS_MODULE": "portal.settings.production",
                "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
                "DATABASE_URL": f"sqlite:///{Path(tmp) / 'bench.sqlite3'}",
                "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
                "DJANGO_SECURE_SSL_REDIRECT": "false",
                "DJANGO_LOG_LEVEL": "WARNING",
                "REDIS_URL": REDIS_URL,
                "INVENTORY_CATALOGUE_KEY_PREFIX": prefix,
                "ORDERS_API_METRICS_ENABLED": "false",
                "DJANGO_SUPERUSER_PASSWORD": password,
            }
            # Production settings serve hashed static files: collect them (into staticfiles/,
            # which git ignores) as a deployment does.
            for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"],
                            ["createsuperuser", "--noinput", "--username", "bench",
                             "--email", "bench@example.com"]):  # fmt: skip
                subprocess.run([sys.executable, "manage.py", *command], cwd=REPO_ROOT, env=env,
                               check=True, capture_output=True)  # fmt: skip
            started = time.perf_counter()
            _seed(tables_env, args.items)
            print(f"seeded {args.items} items in {time.perf_counter() - started:.1f} s")
            port = free_port()
            # The server's log outlives the run (and says why, if a page answered 500).
            log_path = Path(tempfile.gettempdir()) / f"bench-inventory-portal-{port}.log"
            print(f"portal log: {log_path}")
            log = log_path.open("wb")
            portal = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind",
                 f"127.0.0.1:{port}", "--workers", "2", "--worker-class", "sync",
                 "--log-level", "warning"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while not port_open(port):
                if portal.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start")
                time.sleep(0.1)

            browser = Browser(port)
            status, login = browser.request("GET", "/admin/login/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login)
            if status != 200 or not token:
                raise SystemExit(f"login page: {status} {login[:300]!r}")
            status, _ = browser.request(
                "POST",
                "/admin/login/?next=/admin/",
                {"csrfmiddlewaretoken": token.group(1), "username": "bench",
                 "password": password, "next": "/admin/"},
            )  # fmt: skip
            if status != 302:
                raise SystemExit(f"login failed: {status}")

            first, _ = browser.timed_get(LIST)
            print(f"first view (builds the catalogue from a Scan): {first:.0f} ms")
            # Warm each worker's decoded copy (gunicorn hands requests to either worker).
            for _ in range(6):
                browser.timed_get(LIST)

            # Page 58: follow the "next" links, as staff would.
            path: str | None = LIST
            walked: list[float] = []
            for _ in range(57):
                assert path is not None
                elapsed, page = browser.timed_get(path)
                walked.append(elapsed)
                path = _next_link(page)
            assert path is not None, "fewer than 58 pages"
            deep = path

            cases = {
                "page 1 (by name)": LIST,
                "page 58 (its cursor)": deep,
                "sorted by price, descending": LIST + "?o=-price",
                "low-stock filter": LIST + "?low_stock=yes",
                "search, name prefix (^item-07)": LIST + "?q=%5Eitem-07",
                "search, substring (brass)": LIST + "?q=brass",
                "search, substring, no match": LIST + "?q=no+such+thing",
            }
            print(f"\nInventory changelist over HTTP, {args.items} items, gunicorn 2 workers, "
                  f"{args.views} views each, one at a time:")  # fmt: skip
            print(f"  {'case':36} {'p50 ms':>8} {'p95 ms':>8}")
            p50, p95 = _percentiles(walked)
            print(f"  {'walking pages 1-57 (next links)':36} {p50:8.1f} {p95:8.1f}")
            for label, url in cases.items():
                samples = [browser.timed_get(url)[0] for _ in range(args.views)]
                p50, p95 = _percentiles(samples)
                print(f"  {label:36} {p50:8.1f} {p95:8.1f}")
    finally:
        if portal is not None:
            portal.terminate()
            portal.wait(timeout=30)
        emulator.stop()
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(f"{prefix}*"):
            client.delete(key)


if __name__ == "__main__":
    main()
