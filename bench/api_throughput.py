"""Benchmark: the order API under gunicorn (4 sync workers) on DynamoDB Local and Redis.

    .venv/bin/python -m bench.api_throughput [--seconds 15] [--rounds 3]

Prints requests/s and latency for: an order status read (key check, limiter, one GetItem), an
order submission (key check, limiter, validation, one conditional PutItem), a refused request
(no key), and, for reference, raw PutItem from one process. Everything runs on 127.0.0.1 and
shares the machine's cores with the load generator (docs/design.md, Measuring). Needs Redis
on 127.0.0.1:6379 (db 13 is flushed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.loadgen import LoadResult, run_load
from pipeline import aws
from pipeline.local.emulators import REPO_ROOT, free_port, port_open
from pipeline.local.tables import start_tables

Request = tuple[str, str, bytes | None, dict[str, str]]


class ReadOrder:
    """GET an order id that does not exist: key check, limiter, one GetItem, 404."""

    def __init__(self, key: str):
        self.key = key

    def __call__(self, worker: int, i: int) -> Request:
        return "GET", f"/orders/{uuid.uuid4()}", None, {"x-api-key": self.key}


class SubmitOrder:
    """POST an order (with no key: the 403 path)."""

    def __init__(self, key: str | None):
        self.key = key

    def __call__(self, worker: int, i: int) -> Request:
        body = json.dumps({"CustomerName": f"bench {worker}", "Items": ["laptop", "mouse"]})
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["x-api-key"] = self.key
        return "POST", "/submitorder", body.encode(), headers


def wrk(port: int, make: ReadOrder | SubmitOrder, seconds: float) -> str:
    """Run wrk (2 threads, 16 connections) with the request `make` describes; a summary line.

    wrk is C and light, so the server gets more of the cores than with the Python generator.
    """
    method, path, body, headers = make(0, 0)
    lua_headers = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script = f'wrk.method = "{method}"\n{lua_headers}'
    if body:
        script += f"wrk.body = {json.dumps(body.decode())}\n"
    if isinstance(make, ReadOrder):  # a fresh id each time, as the Python generator does
        script += (
            'request = function() return wrk.format(nil, "/orders/" .. math.random(1e9)) end\n'
        )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    result = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{seconds:g}s", "--latency", "-s", handle.name,
         f"http://127.0.0.1:{port}{path}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    os.unlink(handle.name)
    out = result.stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return (
        f"{float(rate.group(1)) if rate else 0:8.1f} req/s  p50 {p50.group(1) if p50 else '?'}"
        f"  p99 {p99.group(1) if p99 else '?'}  non-2xx {non2xx.group(1) if non2xx else 0}"
        f"  {('socket errors ' + errors.group(1)) if errors else ''}"
    )


def _portal_env(tables_env: dict[str, str], workdir: Path) -> dict[str, str]:
    return {
        **os.environ,
        **tables_env,
        "DJANGO_SETTINGS_MODULE": "portal.settings.production",
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        # The limiter still runs for every request; its limits are out of the way.
        "DEFAULT_PLAN_RATE_LIMIT": "1000000",
        "DEFAULT_PLAN_BURST_LIMIT": "1000000",
        "DEFAULT_PLAN_DAILY_QUOTA": "0",
        "ORDERS_API_METRICS_ENABLED": "false",
    }


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def _raw_put_rate(tables_env: dict[str, str], seconds: float) -> float:
    # botocore's defaults (10 connections for the 16 threads): the README's figure used them.
    client = aws.new_client(
        "dynamodb",
        endpoint_url=tables_env["AWS_ENDPOINT_URL_DYNAMODB"],
        region=tables_env["AWS_REGION"],
        credentials=tables_env,
        config=aws.SDK_DEFAULT_CONFIG,
    )
    table = tables_env["ORDERS_TABLE_NAME"]
    until = time.monotonic() + seconds

    def worker(_: int) -> int:
        done = 0
        while time.monotonic() < until:
            client.put_item(
                TableName=table,
                Item={
                    "OrderId": {"S": str(uuid.uuid4())},
                    "Status": {"S": "BENCH"},
                    "OrderDate": {"S": "2026-01-01T00:00:00Z"},
                    "CustomerName": {"S": "bench"},
                },
            )
            done += 1
        return done

    with ThreadPoolExecutor(16) as pool:
        total = sum(pool.map(worker, range(16)))
    return total / seconds


def main(argv: list[str] | None = None) -> int:
    """Start DynamoDB Local and the portal, run each scenario, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3, help="the median of this many runs")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args(argv)

    import redis

    redis.Redis.from_url("redis://127.0.0.1:6379/13").flushdb()
    emulator, tables_env = start_tables("bench")
    portal = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = _portal_env(tables_env, Path(tmp))
            _manage(env, "migrate", "--noinput")
            key = _manage(env, "create_api_key", "bench").strip().splitlines()[-1]
            port = free_port()
            # The portal logs each 4xx (Django's own warning): to a file, as a server would.
            log = (Path(tmp) / "portal.log").open("wb")
            portal = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind",
                 f"127.0.0.1:{port}", "--workers", str(args.workers), "--worker-class", "sync",
                 "--log-level", "warning"],
                cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            deadline = time.monotonic() + 30
            while not port_open(port):
                if portal.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("gunicorn did not start")
                time.sleep(0.1)

            print(
                f"gunicorn {args.workers} sync workers, 2 client processes x 8 threads, "
                f"{args.seconds:g} s per run, median of {args.rounds}\n"
            )
            # A warm-up, so each worker has built its SDK clients before anything is timed.
            run_load(port, ReadOrder(key), seconds=2, processes=1, threads=4)
            for label, make in (
                ("GET /orders/<id> (404)   ", ReadOrder(key)),
                ("POST /submitorder (200)  ", SubmitOrder(key)),
                ("POST without a key (403) ", SubmitOrder(None)),
            ):
                if shutil.which("wrk"):
                    lines = [wrk(port, make, args.seconds) for _ in range(args.rounds)]
                    lines.sort(key=lambda line: float(line.split()[0]))
                    print(f"{label}: {lines[len(lines) // 2]} (wrk)", flush=True)
                    continue
                runs: list[LoadResult] = []
                for _ in range(args.rounds):
                    runs.append(run_load(port, make, seconds=args.seconds))
                runs.sort(key=lambda r: r.requests)
                print(runs[len(runs) // 2].line(label), flush=True)
            rates = [_raw_put_rate(tables_env, args.seconds) for _ in range(args.rounds)]
            print(f"raw PutItem, 16 threads     : {statistics.median(rates):8.1f} req/s")
    finally:
        if portal is not None:
            portal.terminate()
            portal.wait(timeout=30)
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
