"""Benchmark: orders through the whole local backbone, and the no-oversell check under load.

    .venv/bin/python -m bench.pipeline_throughput [--orders 300] [--hot 400]

Starts `python -m pipeline.local` in memory (payments approved), writes orders straight to the
Orders table from 16 threads, and waits until each is final. Prints orders/s end to end and
the time each stage took (from the orders' own status history); then sends `--hot` orders for
one item with stock 100 and checks exactly 100 ship, beside as many orders over as many items.
`python -m bench burst hot` runs the same functions (the burst twice: cold, then warm) and keeps
the figures. Figures depend on the machine: on these 2-core machines the functions, emulators
and this client share the cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

from bench.context import Context
from pipeline import aws, config, wiring
from pipeline.adapters.dynamodb import DynamoStore, deserialize
from pipeline.domain import InventoryItem, Order
from pipeline.errors import OrderAlreadyExists
from pipeline.orders import order_submit
from pipeline.statuses import FINAL_STATUSES, OrderStatus


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


# The pipeline's stages: (label, the status an order enters it in, the one it leaves it in).
STAGES = (
    ("reserve", "PENDING", "RESERVED"),
    ("pay", "RESERVED", "PAID"),
    ("ship", "PAID", "SHIPPED"),
)


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


def finals_until(store: DynamoStore, order_ids: list[str], deadline: float) -> dict[str, Order]:
    """Poll the orders until all are final or the monotonic `deadline` passes: 100 per
    BatchGetItem once a second, so the benchmark's own reads stay a small part of what
    DynamoDB Local serves. The final ones, by id."""
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
    return finals


def _wait_final(store: DynamoStore, order_ids: list[str], timeout: float) -> list[Order]:
    finals = finals_until(store, order_ids, time.monotonic() + timeout)
    if len(finals) < len(order_ids):
        # Where they stopped, so that a run that fails says which stage held them.
        stuck = [store.order_get(i) for i in order_ids if i not in finals]
        statuses = Counter(str(order.status) for order in stuck)
        raise SystemExit(
            f"{len(stuck)} order(s) not final after {timeout:.0f} s: {dict(statuses)}; "
            f"first: {stuck[0].order_id}; {_backbone_state(stuck[0].order_id)}"
        )
    return [finals[i] for i in order_ids]


def _backbone_state(order_id: str) -> str:
    """The queues' depths and `order_id`'s workflow runs: what a stranded order's stage was."""
    try:
        sqs, sfn = aws.client("sqs"), aws.client("stepfunctions")
        depths = {
            name: sqs.get_queue_attributes(
                QueueUrl=os.environ[name], AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
            for name in (
                config.ENV_ORDERS_QUEUE_URL,
                config.ENV_DLQ_URL,
                config.ENV_STREAM_FAILURE_QUEUE_URL,
            )
        }
        pages = sfn.get_paginator("list_executions").paginate(
            stateMachineArn=os.environ[config.ENV_STATE_MACHINE_ARN]
        )
        runs = [
            f"{run['name']} {run['status']}"
            for page in pages
            for run in page["executions"]
            if run["name"].startswith(order_id)
        ]
        return f"queue depths {depths}; its workflow runs: {runs or 'none'}"
    except Exception as exc:  # the failure above is what matters; this only adds to it
        return f"(could not read the backbone's state: {exc!r})"


def _submit_all(store: DynamoStore, count: int, items: list[str]) -> tuple[list[str], float]:
    return _submit_each(store, [items] * count)


def _submit_each(store: DynamoStore, lines: list[list[str]]) -> tuple[list[str], float]:
    """Write one order per entry of `lines` from 16 threads; their ids and the start time."""

    def submit(pair: tuple[int, list[str]]) -> str:
        try:
            order = order_submit(store=store, customer_name=f"bench-{pair[0]}", items=pair[1])
        except OrderAlreadyExists as exc:
            # The SDK retried a put that had landed (a timeout on a loaded machine): the order
            # is there, written once; the condition refused the second write.
            return exc.order_id
        return order.order_id

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(submit, enumerate(lines)))
    return ids, started


def _p95(spans: list[float]) -> float | None:
    spans = sorted(spans)
    return spans[min(len(spans) - 1, int(len(spans) * 0.95))] if spans else None


def burst(store: DynamoStore, orders: int, *, timeout: float = 600) -> dict[str, Any]:
    """`orders` orders written straight to the table; how fast the pipeline makes them final."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    store.inventory_put(InventoryItem(name, 10**9, Decimal("12.50"), "bench item"))
    started_at = time.time()
    ids, started = _submit_all(store, orders, [name, name])
    written = time.monotonic() - started
    finals = _wait_final(store, ids, timeout)
    observed = time.monotonic() - started
    # Until the last order's final status, as the orders record it: the poll above looks once
    # a second, which would add up to a second to a drain of a few seconds.
    elapsed = max(_when(order.history[-1].at) for order in finals) - started_at
    stages = {
        label: _stage_seconds(finals, source, target)
        for label, source, target in (*STAGES, ("total", "PENDING", "SHIPPED"))
    }
    # Each stage's own throughput: orders entering its status per second, between the first
    # and the last order to enter it.
    per_stage_rate = {}
    for label, status in (("reserve", "RESERVED"), ("pay", "PAID"), ("ship", "SHIPPED")):
        times = sorted(_when(h.at) for order in finals for h in order.history if h.status == status)
        span = times[-1] - times[0] if len(times) > 1 else 0.0
        per_stage_rate[label] = len(times) / span if span > 0 else None
    return {
        "orders": orders,
        "written_per_s": orders / written,
        "orders_per_s": orders / elapsed,
        "seconds": elapsed,
        "observed_s": observed,
        "shipped": sum(o.status == OrderStatus.SHIPPED for o in finals),
        "reserve_p50_s": statistics.median(stages["reserve"]) if stages["reserve"] else None,
        "reserve_p95_s": _p95(stages["reserve"]),
        "pay_p95_s": _p95(stages["pay"]),
        "ship_p95_s": _p95(stages["ship"]),
        "total_p95_s": _p95(stages["total"]),
        "stage_per_s": per_stage_rate,
    }


def hot(store: DynamoStore, orders: int, *, timeout: float = 600) -> dict[str, Any]:
    """`orders` orders racing for one item with stock 100, beside as many orders spread over
    as many items, in the same run: exactly 100 must ship, in comparable time."""
    spread_items = [f"spread-{uuid.uuid4().hex[:6]}-{i}" for i in range(orders)]
    for item in spread_items:
        store.inventory_put(InventoryItem(item, 10, Decimal("1.00"), "spread item"))
    ids, started = _submit_each(store, [[item] for item in spread_items])
    _wait_final(store, ids, timeout)
    spread_s = time.monotonic() - started

    item = f"hot-{uuid.uuid4().hex[:6]}"
    store.inventory_put(InventoryItem(item, 100, Decimal("1.00"), "hot item"))
    ids, started = _submit_all(store, orders, [item])
    finals = _wait_final(store, ids, timeout)
    hot_s = time.monotonic() - started
    statuses = [o.status for o in finals]
    stock = store.inventory_get(item)
    shipped = statuses.count(OrderStatus.SHIPPED)
    return {
        "orders": orders,
        "shipped": shipped,
        "rejected": statuses.count(OrderStatus.REJECTED),
        "stock_left": stock.stock if stock else None,
        "exact": shipped == 100 and stock is not None and stock.stock == 0,
        "hot_s": hot_s,
        "spread_s": spread_s,
        "time_ratio": hot_s / spread_s,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the runtime, push the orders, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--hot", type=int, default=400, help="orders racing for 100 units")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--max-concurrency", type=int, help="the runtime's cap (default: its own)")
    args = parser.parse_args(argv)

    context = Context(quick=False, max_concurrency=args.max_concurrency)
    try:
        context.use(context.runtime())
        store = wiring.dynamo_store()
        found = burst(store, args.orders, timeout=args.timeout)
        print(
            f"{args.orders} orders written at {found['written_per_s']:.0f}/s; all final after "
            f"{found['seconds']:.1f} s: {found['orders_per_s']:.1f} orders/s end to end, "
            f"{found['shipped']} shipped; reservation p95 {found['reserve_p95_s']:.2f} s, "
            f"submit -> shipped p95 {found['total_p95_s']:.2f} s"
        )
        race = hot(store, args.hot, timeout=args.timeout)
        print(
            f"hot item, stock 100, {args.hot} orders: {race['shipped']} shipped, "
            f"{race['rejected']} rejected, stock now {race['stock_left']} in {race['hot_s']:.1f} s "
            f"({race['time_ratio']:.2f}x the {race['spread_s']:.1f} s of {args.hot} orders "
            "over as many items)"
        )
        return 0 if race["exact"] else 1
    finally:
        context.close()


if __name__ == "__main__":
    sys.exit(main())
