"""Intake: POST /submitorder beside a minimal DRF endpoint, a bare Django view and raw PutItem.

All four write one order with one conditional PutItem to the same DynamoDB Local, from 16
concurrent clients, in the same run, one after the other. The API's key is on a plan whose
limits are never reached (the limiter still runs). CPU milliseconds per request count the
server (gunicorn and its workers) and DynamoDB Local, not the load generator.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.config import Config

from bench.context import Context
from bench.cpu import self_cpu_seconds, tree_cpu_seconds
from bench.gunicorn import WORKERS, running_portal
from bench.loadgen import LoadResult, run_load
from pipeline import aws

CLIENTS = 16
WARM_UP_SECONDS = 5.0


class Post:
    """POST a two-line order to `path` with the key."""

    def __init__(self, path: str, key: str | None):
        self.path, self.key = path, key

    def __call__(self, worker: int, i: int) -> tuple[str, str, bytes | None, dict[str, str]]:
        body = json.dumps({"CustomerName": f"bench {worker}", "Items": ["laptop", "mouse"]})
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["x-api-key"] = self.key
        return "POST", self.path, body.encode(), headers


def _figures(result: LoadResult, cpu_s: float) -> dict[str, Any]:
    lat = sorted(result.latencies_ms) or [0.0]
    ok = sum(n for status, n in result.statuses.items() if status < 300)
    return {
        "per_s": ok / result.seconds,
        "p50_ms": lat[len(lat) // 2],
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))],
        "ok": ok,
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "errors": result.errors,
        "cpu_ms_per_request": 1000 * cpu_s / max(1, ok),
    }


def _raw_put(env: dict[str, str], seconds: float, dynamodb_pid: int | None) -> dict[str, Any]:
    client = aws.new_client(
        "dynamodb",
        endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
        region=env["AWS_REGION"],
        credentials=env,
        config=aws.SDK_DEFAULT_CONFIG.merge(Config(max_pool_connections=CLIENTS)),
    )
    table, until = env["ORDERS_TABLE_NAME"], time.monotonic() + seconds
    latencies: list[float] = []

    def worker(_: int) -> int:
        done = 0
        while time.monotonic() < until:
            started = time.perf_counter()
            client.put_item(
                TableName=table,
                Item={
                    "OrderId": {"S": str(uuid.uuid4())},
                    "Status": {"S": "BENCH"},
                    "OrderDate": {"S": "2026-01-01T00:00:00Z"},
                    "CustomerName": {"S": "bench"},
                },
                ConditionExpression="attribute_not_exists(OrderId)",
            )
            latencies.append((time.perf_counter() - started) * 1000)
            done += 1
        return done

    cpu0 = (tree_cpu_seconds(dynamodb_pid) if dynamodb_pid else 0.0) + self_cpu_seconds()
    with ThreadPoolExecutor(CLIENTS) as pool:
        total = sum(pool.map(worker, range(CLIENTS)))
    cpu1 = (tree_cpu_seconds(dynamodb_pid) if dynamodb_pid else 0.0) + self_cpu_seconds()
    latencies.sort()
    return {
        "per_s": total / seconds,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "ok": total,
        # Here the client is the "server": boto3's own CPU counts, as Django's does above.
        "cpu_ms_per_request": 1000 * (cpu1 - cpu0) / max(1, total),
    }


def run(context: Context) -> dict[str, Any]:
    """Each endpoint for the same time under the same load; the ratios between them."""
    seconds = 5.0 if context.quick else 15.0
    env = context.tables()
    dynamodb_pid = context.tables_pid()
    runs: dict[str, Any] = {}
    with running_portal(env, context.tmp / "intake", settings="bench.settings", keys=1) as portal:
        key = portal.keys[0]
        endpoints = (
            ("submitorder", Post("/submitorder", key)),
            ("minimal", Post("/bench/minimal", key)),
            ("bare", Post("/bench/bare", None)),
        )
        # A warm-up of each endpoint before anything is timed: every worker builds its clients
        # and key cache, and DynamoDB Local's JIT compiles the writes each one makes (an order
        # with its four indexes costs it several times its steady CPU for its first thousand
        # or so puts, which would otherwise be charged to whichever endpoint is timed first).
        for _, make in endpoints:
            run_load(portal.port, make, seconds=WARM_UP_SECONDS, processes=1, threads=8)
        for label, make in endpoints:
            cpu0 = tree_cpu_seconds(portal.process.pid) + tree_cpu_seconds(dynamodb_pid or 0)
            result = run_load(portal.port, make, seconds=seconds, processes=2, threads=CLIENTS // 2)
            cpu1 = tree_cpu_seconds(portal.process.pid) + tree_cpu_seconds(dynamodb_pid or 0)
            runs[label] = _figures(result, cpu1 - cpu0)
    runs["raw_put"] = _raw_put(env, seconds, dynamodb_pid)
    submit = runs["submitorder"]
    return {
        "server": f"gunicorn, {WORKERS} sync workers; {CLIENTS} concurrent clients, "
        f"{seconds:g} s each; the key's plan does not bind (limiter on, limits out of reach)",
        "ratio_to_minimal": submit["per_s"] / runs["minimal"]["per_s"],
        "ratio_to_bare": submit["per_s"] / runs["bare"]["per_s"],
        "ratio_to_raw_put": submit["per_s"] / runs["raw_put"]["per_s"],
        "p99_ms": submit["p99_ms"],
        "cpu_ms_per_request": {name: r["cpu_ms_per_request"] for name, r in runs.items()},
        "runs": runs,
    }
