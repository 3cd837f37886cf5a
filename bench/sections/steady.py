"""Steady: the whole local system under an offered load through the API, open loop.

Orders arrive at a fixed rate (50/s for 60 s; 20/s for 10 s with --quick) whatever the answers'
speed, from two keys so that no plan binds, payments approved, after a warm-up of the portal
(40 orders, not counted). Counted: the share of offered orders final within the run plus
10 s, submit -> final p95 (from each order's own history), the API's latency, and per-second
series for the report's charts. Then the backlog drains (its time is reported), and
submit -> final is over every accepted order that became final.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

from bench.context import Context
from bench.gunicorn import running_portal
from bench.pipeline_throughput import STAGES, _stage_seconds, _when, finals_until
from pipeline import wiring
from pipeline.domain import InventoryItem, Order


def _post(port: int, key: str, item: str, i: int) -> tuple[int, float, str | None]:
    body = json.dumps({"CustomerName": f"steady {i}", "Items": [item]})
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request(
            "POST", "/submitorder", body=body,
            headers={"Content-Type": "application/json", "x-api-key": key},
        )  # fmt: skip
        response = conn.getresponse()
        answer = response.read()
        conn.close()
    except OSError:
        return 0, (time.perf_counter() - started) * 1000, None
    order_id = json.loads(answer).get("OrderId") if response.status == 200 else None
    return response.status, (time.perf_counter() - started) * 1000, order_id


# Orders that warm the portal before the measured load, and the pause for their pipeline.
WARMUP_ORDERS = 40
WARMUP_SETTLE_S = 3.0
# How long the backlog may take to drain after the run before the section gives up on it.
DRAIN_S = 180.0


def _pct(values: list[float], share: float) -> float | None:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * share))] if values else None


def _stage_pcts(orders: list[Order], source: str, target: str) -> dict[str, float | None]:
    spans = _stage_seconds(orders, source, target)
    return {"p50": _pct(spans, 0.5), "p95": _pct(spans, 0.95)}


def run(context: Context) -> dict[str, Any]:
    """Offer the load, wait up to 10 s after it ends, and say what became final."""
    rate, seconds = (20.0, 10.0) if context.quick else (50.0, 60.0)
    env = context.runtime()
    context.use(env)
    store = wiring.dynamo_store()
    item = "steady-item"
    store.inventory_put(InventoryItem(item, 10**9, Decimal("5.00"), "steady bench item"))
    sent: list[tuple[float, int, float, str | None]] = []  # offset, status, ms, order id
    lock = threading.Lock()
    with running_portal(env, context.tmp / "steady", settings="bench.settings", keys=2) as portal:
        # A fresh gunicorn's workers load code and open connections on their first requests;
        # unwarmed, the run's first seconds queued behind them (every request over 500 ms was
        # in its first 4 s). A deployed API is warm (zappa_settings.json keeps it so), so the
        # portal is warmed first, as the intake section warms its endpoints, and the warm-up's
        # orders go through the pipeline before the measured load starts.
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: _post(portal.port, portal.keys[i % 2], item, -1 - i),
                          range(WARMUP_ORDERS)))  # fmt: skip
        time.sleep(WARMUP_SETTLE_S)
        start = time.monotonic()

        def offer(i: int) -> None:
            offset = i / rate
            time.sleep(max(0.0, start + offset - time.monotonic()))
            status, ms, order_id = _post(portal.port, portal.keys[i % 2], item, i)
            with lock:
                sent.append((offset, status, ms, order_id))

        with ThreadPoolExecutor(64) as pool:
            list(pool.map(offer, range(int(rate * seconds))))
        ended = time.monotonic()
    ids = [order_id for _, _, _, order_id in sent if order_id]
    finals = finals_until(store, ids, ended + 10)
    # Then what is left is let drain (up to DRAIN_S): the sections after this one do not share
    # the cores with a backlog, and submit -> final counts every order, not only the quick ones.
    late = finals_until(store, [i for i in ids if i not in finals], time.monotonic() + DRAIN_S)
    drained_s = time.monotonic() - ended
    totals = []
    final_orders = [*finals.values(), *late.values()]
    for order in final_orders:
        at = {h.status: _when(h.at) for h in order.history}
        if "PENDING" in at:
            totals.append(at[str(order.status)] - at["PENDING"])
    offered = int(rate * seconds)
    api_ms = [ms for _, status, ms, _ in sent if status]
    sent.sort()
    return {
        "offered": offered,
        "offered_per_s": rate,
        "seconds": seconds,
        "accepted": len(ids),
        "final_within_run_plus_10s": len(finals),
        "final_share": len(finals) / offered,
        "final_after_drain": len(finals) + len(late),
        "drained_s": drained_s,
        "p50_s": _pct(totals, 0.5),
        "p95_s": _pct(totals, 0.95),
        # Where submit -> final goes: each stage's p50 and p95, from the orders' histories.
        "stages_s": {label: _stage_pcts(final_orders, *statuses) for label, *statuses in STAGES},
        "api_p50_ms": _pct(api_ms, 0.5),
        "api_p99_ms": _pct(api_ms, 0.99),
        "send_overrun_s": (ended - start) - seconds,
        # (second of the run, API ms): the report's latency-over-time chart.
        "api_latency_series": [(round(off, 2), round(ms, 1)) for off, _, ms, _ in sent],
    }
