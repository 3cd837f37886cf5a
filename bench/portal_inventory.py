"""Benchmark: the Inventory admin changelist with 10,000 items on DynamoDB Local and Redis.

    .venv/bin/python -m bench.portal_inventory [--items 10000] [--views 60]

Seeds the items into a fresh DynamoDB Local, builds the inventory catalogue once (the beat
task's work, timed), then renders the admin changelist through Django's test client (the whole
view: login session, permission checks, the catalogue query, one BatchGetItem for the rows
shown, the template; not the HTTP server) and prints p50/p95 per page view for: page 1, a page
deep in the list (by its cursor), sorted by price, the low-stock filter, a name-prefix search,
and a substring search of names and descriptions. Needs PostgreSQL (a throwaway database is
created) and Redis on 127.0.0.1 (the catalogue's keys are namespaced, and removed afterwards).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

from pipeline import aws
from pipeline.local.tables import start_tables

COLOURS = ("red", "blue", "green", "black", "white", "brass", "oak", "steel")


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
            colour = COLOURS[n % len(COLOURS)]
            item = {
                "ItemName": {"S": f"item-{n:05d}"},
                "Stock": {"N": str((n * 7919) % 500)},
                "Price": {"N": f"{(n * 31) % 1000}.{n % 100:02d}"},
                "Description": {"S": f"A {colour} thing, number {n}"},
            }
            requests.append({"PutRequest": {"Item": item}})
        pending: dict[str, Any] = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def _time(views: int, call: Callable[[], Any]) -> tuple[float, float]:
    call()  # warm: the process's decoded copy of the catalogue, templates, connections
    samples = []
    for _ in range(views):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--views", type=int, default=60, help="page views timed per case")
    args = parser.parse_args()

    emulator, env = start_tables("bench-inventory")
    try:
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
        os.environ["INVENTORY_CATALOGUE_KEY_PREFIX"] = f"bench:{uuid.uuid4().hex[:8]}:"
        aws.reset_clients()
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connection
        from django.test import Client

        from operations import catalogue

        # No setup_test_environment(): it instruments template rendering, which a served
        # page does not pay for.
        old_name = connection.settings_dict["NAME"]
        # A name of its own: the test suites (maybe running now) use test_<NAME>.
        connection.settings_dict.setdefault("TEST", {})["NAME"] = (
            f"bench_inventory_{uuid.uuid4().hex[:8]}"
        )
        connection.creation.create_test_db(verbosity=0, autoclobber=False)
        try:
            started = time.perf_counter()
            _seed(env, args.items)
            print(f"seeded {args.items} items in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            built = catalogue.catalogue().refresh()
            print(f"catalogue rebuilt from a Scan: {built} items, "
                  f"{(time.perf_counter() - started) * 1000:.0f} ms (beat's work)")  # fmt: skip
            user = get_user_model().objects.create_superuser("bench", password=uuid.uuid4().hex)
            client = Client()
            client.force_login(user)
            base = "/admin/operations/inventoryitem/"

            def view(params: dict[str, str]) -> Callable[[], Any]:
                def get() -> Any:
                    response = client.get(base, params)
                    assert response.status_code == 200, response.status_code
                    return response

                return get

            # A cursor for a page deep in the list: the catalogue's own, as the page links it.
            found = catalogue.catalogue().query(limit=50 * 57, live=False)
            from operations.admin.data import encode_cursor
            from operations.catalogue import encode_cursor as catalogue_cursor

            deep = encode_cursor(catalogue_cursor("name", False, found.items[-1]))
            cases = {
                "page 1 (by name)": {},
                "page 58 (cursor)": {"cursor": deep},
                "sorted by price, descending": {"o": "-price"},
                "low-stock filter": {"low_stock": "yes"},
                "search, name prefix (^item-07)": {"q": "^item-07"},
                "search, substring (brass)": {"q": "brass"},
                "search, substring, no match": {"q": "no such thing"},
            }
            print(f"\nInventory changelist, {args.items} items, {args.views} views each "
                  "(Django test client, in process):")  # fmt: skip
            print(f"  {'case':36} {'p50 ms':>8} {'p95 ms':>8}")
            for label, params in cases.items():
                p50, p95 = _time(args.views, view(params))
                print(f"  {label:36} {p50:8.1f} {p95:8.1f}")
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)
            try:
                backend = catalogue.catalogue().backend
                if hasattr(backend, "r"):
                    for key in backend.r.scan_iter(f"{backend.key}*"):
                        backend.r.delete(key)
            except Exception as exc:  # cleanup is best effort
                print(f"could not remove the catalogue keys: {exc}", file=sys.stderr)
    finally:
        emulator.stop()


if __name__ == "__main__":
    main()
