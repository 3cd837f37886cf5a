"""Benchmark: orders through the whole local backbone, and the no-oversell check under load.

    .venv/bin/python -m bench.pipeline_throughput [--orders 300] [--hot 400]

Starts `python -m pipeline.local` in memory (payments approved), writes orders straight to the
Orders table from 16 threads, and waits until each is final. Prints orders/s end to end and
the time each stage took (from the orders' own status history); then sends `--hot` orders for
one item with stock 100 and checks exactly 100 ship. Figures depend on the machine: on these
2-core machines the functions, emulators and this client share the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from pipeline import aws, wiring
from pipeline.adapters.dynamodb import DynamoStore, deserialize
from pipeline.domain import InventoryItem, Order
from pipeline.local.emulators import REPO_ROOT
from pipeline.local.envfile import read_env_file
from pipeline.local.runtime import DEFAULT_PORTS
from pipeline.orders import order_submit
from pipeline.statuses import FINAL_STATUSES, OrderStatus


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _stage_seconds(orders: list[Order], source: str, target: str) -> list[float]:
    spans = []
    for order in orders:
        at = {h.status: _when(h.at) for h in order.history}
        if source in at and target in at:
            spans.append(at[target] - at[source])
    return spans


def _describe(label: str, spans: list[float]) -> str:
    if not spans:
        return f"  {label}: no data"
    spans = sorted(spans)
    p95 = spans[min(len(spans) - 1, int(len(spans) * 0.95))]
    return f"  {label}: median {statistics.median(spans):5.2f} s, p95 {p95:5.2f} s"


def _wait_final(store: DynamoStore, order_ids: list[str], timeout: float) -> list[Order]:
    """Poll the orders until all are final: 100 per BatchGetItem once a second, so the
    benchmark's own reads stay a small part of what DynamoDB Local serves."""
    deadline = time.monotonic() + timeout
    pending = list(order_ids)
    finals: dict[str, Order] = {}
    while pending and time.monotonic() < deadline:
        for start in range(0, len(pending), 100):
            keys = [{"OrderId": {"S": i}} for i in pending[start : start + 100]]
            request = {store.orders_table: {"Keys": keys}}
            while request:
                response = store.client.batch_get_item(RequestItems=request)
                for raw in response["Responses"].get(store.orders_table, []):
                    order = Order.from_item(deserialize(raw))
                    if order.status in FINAL_STATUSES:
                        finals[order.order_id] = order
                request = response.get("UnprocessedKeys") or {}
        pending = [i for i in pending if i not in finals]
        if pending:
            time.sleep(1.0)
    if pending:
        raise SystemExit(f"{len(pending)} order(s) not final after {timeout:.0f} s")
    return [finals[i] for i in order_ids]


def _submit_all(store: DynamoStore, count: int, items: list[str]) -> tuple[list[str], float]:
    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        ids = list(
            pool.map(
                lambda i: (
                    order_submit(store=store, customer_name=f"bench-{i}", items=items).order_id
                ),
                range(count),
            )
        )
    return ids, started


def main(argv: list[str] | None = None) -> int:
    """Run the runtime, push the orders, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--hot", type=int, default=400, help="orders racing for 100 units")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        env_file = Path(tmp) / "pipeline.env"
        command = [
            sys.executable, "-m", "pipeline.local", "--in-memory", "--quiet",
            "--env-file", str(env_file), "--parameter", "PaymentSuccessRate=1.0",
            *(arg for name in DEFAULT_PORTS for arg in (f"--{name}-port", "0")),
        ]  # fmt: skip
        log = (Path(tmp) / "runtime.log").open("wb")
        runtime = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while "READY" not in (Path(tmp) / "runtime.log").read_text(errors="replace"):
                if runtime.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the runtime did not start")
                time.sleep(0.2)
            os.environ.update(read_env_file(env_file))
            aws.reset_clients()
            store = wiring.dynamo_store()
            name = f"bench-{uuid.uuid4().hex[:6]}"
            store.inventory_put(InventoryItem(name, 10**9, Decimal("12.50"), "bench item"))

            ids, started = _submit_all(store, args.orders, [name, name])
            written = time.monotonic() - started
            finals = _wait_final(store, ids, args.timeout)
            elapsed = time.monotonic() - started
            shipped = sum(o.status == OrderStatus.SHIPPED for o in finals)
            rate = args.orders / written
            print(f"{args.orders} orders written in {written:.1f} s ({rate:.0f}/s)")
            print(
                f"all final after {elapsed:.1f} s: {args.orders / elapsed:.1f} orders/s end to "
                f"end, {shipped} shipped"
            )
            print(_describe("PENDING -> RESERVED", _stage_seconds(finals, "PENDING", "RESERVED")))
            print(_describe("RESERVED -> PAID   ", _stage_seconds(finals, "RESERVED", "PAID")))
            print(_describe("PAID -> SHIPPED    ", _stage_seconds(finals, "PAID", "SHIPPED")))
            print(_describe("PENDING -> SHIPPED ", _stage_seconds(finals, "PENDING", "SHIPPED")))

            hot = f"hot-{uuid.uuid4().hex[:6]}"
            store.inventory_put(InventoryItem(hot, 100, Decimal("1.00"), "hot item"))
            ids, started = _submit_all(store, args.hot, [hot])
            finals = _wait_final(store, ids, args.timeout)
            statuses = [o.status for o in finals]
            stock = store.inventory_get(hot)
            print(
                f"hot item, stock 100, {args.hot} orders: "
                f"{statuses.count(OrderStatus.SHIPPED)} shipped, "
                f"{statuses.count(OrderStatus.REJECTED)} rejected, stock now "
                f"{stock.stock if stock else '?'} ({time.monotonic() - started:.1f} s)"
            )
            return 0 if statuses.count(OrderStatus.SHIPPED) == 100 else 1
        finally:
            runtime.terminate()
            runtime.wait(timeout=60)
            log.close()


if __name__ == "__main__":
    sys.exit(main())
