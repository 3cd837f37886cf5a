"""No order, unit or charge is lost while a share of the functions' AWS calls fail.

A local runtime of its own runs with fault injection (`python -m pipeline.local --fault-rate`,
pipeline/local/faults.py): throttling, 5xx answers, timeouts and lost responses on the calls
the functions make. Orders are written at a steady rate, some of them for items that run
short, with 80% of payments approved; then every order must reach a final status, stock must
add up per item, and the payment ledger and shipments must show no double charge, no double
shipment and no unrefunded charge of a failed order.

CI runs a short version (60 orders). The long run, with the figures printed:

    FAULT_ORDERS=300 FAULT_RATE=0.1 .venv/bin/python -m pytest tests/e2e/test_faults.py -s

Other knobs: FAULT_SEED (faults, payments and orders), FAULT_ORDERS_PER_S (the write rate),
FAULT_SETTLE_S (how long orders may take to finish after the last one is written).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline import aws, wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.dynamodb.codec import deserialize
from pipeline.adapters.mock_payments import transaction_id_for
from pipeline.config import ENV_PAYMENT_LEDGER_TABLE
from pipeline.domain import InventoryItem, Order
from pipeline.local import faults
from pipeline.local.emulators import REPO_ROOT
from pipeline.local.envfile import read_env_file
from pipeline.local.runtime import DEFAULT_PORTS
from pipeline.orders import order_submit
from pipeline.statuses import FINAL_STATUSES, OrderStatus

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]

ORDERS = int(os.environ.get("FAULT_ORDERS", "60"))
FAULT_RATE = float(os.environ.get("FAULT_RATE", "0.1"))
SEED = os.environ.get("FAULT_SEED", "7")
ORDERS_PER_S = float(os.environ.get("FAULT_ORDERS_PER_S", "5"))
SETTLE_S = float(os.environ.get("FAULT_SETTLE_S", "120"))
TIME_SCALE = 0.02
PAYMENT_SUCCESS_RATE = 0.8
# Statuses whose order took stock and keeps it (RESERVED cannot be left at the end, but if it
# were, its stock is still out).
HOLDING = frozenset(
    {OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.MANUAL_INTERVENTION}
)
PAID = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.MANUAL_INTERVENTION})


@dataclass
class FaultyRuntime:
    """The runtime under fault injection: its clients' environment, log and fault counts."""

    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path
    fault_dir: Path

    def log_lines(self, needle: str, limit: int = 40) -> list[str]:
        """The runtime's log lines that mention `needle` (function logs carry order_id)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if needle in line][-limit:]


@pytest.fixture(scope="module")
def faulty_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultyRuntime]:
    """`python -m pipeline.local` with --fault-rate, as tests/conftest.py starts the normal one:
    free ports, in memory, time scaled down, 80% of payments approved (seeded)."""
    workdir = tmp_path_factory.mktemp("faulty-runtime")
    env_file, log_path, fault_dir = (
        workdir / "pipeline.env",
        workdir / "runtime.log",
        workdir / "faults",
    )
    command = [
        sys.executable, "-m", "pipeline.local",
        "--in-memory", "--env-file", str(env_file),
        *(arg for name in DEFAULT_PORTS for arg in (f"--{name}-port", "0")),
        "--time-scale", str(TIME_SCALE),
        "--parameter", f"PaymentSuccessRate={PAYMENT_SUCCESS_RATE}",
        "--function-env", f"PAYMENT_RANDOM_SEED={SEED}",
        "--fault-rate", str(FAULT_RATE),
        "--fault-seed", SEED,
        "--fault-report-dir", str(fault_dir),
    ]  # fmt: skip
    with log_path.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    try:
        while "READY" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "the local runtime did not start:\n" + log_path.read_text(errors="replace")
                )
            time.sleep(0.2)
        yield FaultyRuntime(read_env_file(env_file), proc, log_path, fault_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def store(faulty_runtime: FaultyRuntime, monkeypatch: pytest.MonkeyPatch) -> DynamoStore:
    """The faulty runtime's tables, through clients of this process (which get no faults)."""
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    for key, value in faulty_runtime.env.items():
        monkeypatch.setenv(key, value)
    aws.reset_clients()
    return wiring.dynamo_store()


def _stock_items(store: DynamoStore, rng: random.Random) -> dict[str, int]:
    """Plenty of three items, and two that run short: some orders must be rejected."""
    run = uuid.uuid4().hex[:8]
    stock = {f"fault-{run}-plenty-{i}": 10 * ORDERS for i in range(3)}
    stock |= {f"fault-{run}-scarce-{i}": max(3, ORDERS // 10) for i in range(2)}
    for name, units in stock.items():
        price = Decimal(rng.randrange(500, 50_000)) / 100
        store.inventory_put(InventoryItem(name, units, price, "fault injection test"))
    return stock


def _order_lines(rng: random.Random, stock: dict[str, int]) -> list[dict[str, Any]]:
    """One to three lines of plentiful items, and in three orders of ten a scarce one too
    (about a third of the scarce units asked for exist: a fifth of the orders are rejected)."""
    plenty = sorted(n for n in stock if "-plenty-" in n)
    chosen = rng.sample(plenty, rng.randint(1, 3))
    if rng.random() < 0.3:
        chosen.append(rng.choice(sorted(n for n in stock if "-scarce-" in n)))
    return [{"ItemName": name, "Quantity": rng.randint(1, 3)} for name in chosen]


def _submit_steadily(store: DynamoStore, stock: dict[str, int], rng: random.Random) -> list[str]:
    started = time.monotonic()
    order_ids = []
    for i in range(ORDERS):
        # A steady rate, not a burst: the pipeline is busy with earlier orders meanwhile.
        time.sleep(max(0.0, started + i / ORDERS_PER_S - time.monotonic()))
        order = order_submit(
            store=store, customer_name=f"fault-{i:04d}", items=_order_lines(rng, stock)
        )
        order_ids.append(order.order_id)
    return order_ids


def _running_workflows() -> int:
    """How many fulfilment executions are still running (all of this runtime's are ours)."""
    machine = wiring.fulfilment_workflow().state_machine_arn
    response = aws.client("stepfunctions").list_executions(
        stateMachineArn=machine, statusFilter="RUNNING", maxResults=100
    )
    return len(response["executions"])


def _wait_until_settled(store: DynamoStore, order_ids: list[str]) -> dict[str, Order]:
    """Every order once all are final and no workflow runs any more (a compensation settles
    its refund after the order shows PAYMENT_FAILED), or as they stand after SETTLE_S."""
    deadline = time.monotonic() + SETTLE_S
    latest: dict[str, Order] = {}
    waiting = list(order_ids)
    while True:
        for order_id in waiting:
            latest[order_id] = store.order_get(order_id)
        waiting = [o for o in waiting if latest[o].status not in FINAL_STATUSES]
        if (not waiting and not _running_workflows()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    # Read again: an order seen final early may have been written since (its refund settled).
    return {order_id: store.order_get(order_id) for order_id in order_ids}


def _ledger(env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The mock gateway's ledger rows, by the order id in their idempotency key."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    paginator = aws.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=env[ENV_PAYMENT_LEDGER_TABLE], ConsistentRead=True):
        for item in page["Items"]:
            row = deserialize(item)
            rows[str(row["IdempotencyKey"]).rsplit(":", 1)[0]].append(row)
    return rows


def _order_problems(order: Order, rows: list[dict[str, Any]]) -> list[str]:
    """What is wrong with one order's end: status, history, charges, refunds, shipment."""
    problems = []
    status = order.status
    if status not in FINAL_STATUSES:
        problems.append(f"not final: {status} ({order.status_reason})")
    repeated = [s for s, n in Counter(h.status for h in order.history).items() if n > 1]
    if repeated:
        problems.append(f"history repeats {repeated}")
    for row in rows:
        key = str(row["IdempotencyKey"])
        if row["TransactionId"] != transaction_id_for(key):
            problems.append(f"ledger row {row['TransactionId']} is not the transaction of {key}")
        if key != f"{order.order_id}:{order.attempt}":
            problems.append(f"ledger row for {key}, but the order is at attempt {order.attempt}")
    approved = {r["TransactionId"]: r for r in rows if r["Outcome"] == "APPROVED"}
    unrefunded = [t for t, r in approved.items() if not r.get("RefundId")]
    if len(approved) > 1:
        problems.append(f"charged {len(approved)} times: {sorted(approved)}")
    if status == OrderStatus.PAYMENT_FAILED:
        if unrefunded:
            problems.append(f"payment failed but charge {unrefunded} was not refunded")
        if order.refund_due:
            problems.append(f"payment failed and a refund is still due: {order.refund_due}")
    if status in PAID:
        paid = (order.payment or {}).get("TransactionId")
        if unrefunded != [paid]:
            problems.append(f"{status} with unrefunded charges {unrefunded}, payment {paid}")
    if status == OrderStatus.SHIPPED and not order.shipment:
        problems.append("SHIPPED without a shipment")
    if status in (OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED) and order.shipment:
        problems.append(f"{status} with a shipment")
    if status == OrderStatus.REJECTED and rows:
        problems.append("REJECTED but the gateway was asked to charge it")
    return problems


def _seconds(start: str, end: str) -> float:
    def parse(iso: str) -> datetime:
        return datetime.fromisoformat(iso.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def _latencies(orders: dict[str, Order]) -> str:
    """How long orders took from written to their last status: median, 95th, slowest."""
    took = sorted((_seconds(o.order_date, o.history[-1].at), oid) for oid, o in orders.items())
    if not took:
        return "-"
    median, p95 = took[len(took) // 2][0], took[min(len(took) - 1, int(len(took) * 0.95))][0]
    slowest, slow_id = took[-1]
    path = " > ".join(str(h.status) for h in orders[slow_id].history)
    steps: dict[str, list[float]] = defaultdict(list)
    for order in orders.values():
        for before, after in zip(order.history, order.history[1:], strict=False):
            steps[f"{before.status}>{after.status}"].append(_seconds(before.at, after.at))
    by_step = ", ".join(
        f"{step} {sorted(times)[len(times) // 2]:.1f} s" for step, times in sorted(steps.items())
    )
    return (
        f"median {median:.1f} s, 95th {p95:.1f} s, slowest {slowest:.1f} s ({slow_id}: {path})"
        f"\n  median time of each step: {by_step}"
    )


def _held_units(orders: dict[str, Order]) -> Counter[str]:
    held: Counter[str] = Counter()
    for order in orders.values():
        if order.status in HOLDING:
            for line in (order.reservation or {}).get("Lines", []):
                held[line["ItemName"]] += int(line["Quantity"])
    return held


def _stream_writes(orders_table: str, order_ids: set[str]) -> dict[str, list[str]]:
    """Every write of these orders as the Orders stream saw it, in order: which attributes
    each one added, changed or removed (the table's own account of what happened)."""
    streams, dynamodb = aws.client("dynamodbstreams"), aws.client("dynamodb")
    arn = dynamodb.describe_table(TableName=orders_table)["Table"]["LatestStreamArn"]
    writes: dict[str, list[str]] = defaultdict(list)
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                order_id = record["dynamodb"]["Keys"]["OrderId"]["S"]
                if order_id not in order_ids:
                    continue
                old = record["dynamodb"].get("OldImage", {})
                new = record["dynamodb"].get("NewImage", {})
                changed = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
                status = new.get("Status", {}).get("S")
                writes[order_id].append(
                    f"{record['dynamodb']['SequenceNumber']} {record['eventName']} -> {status}: "
                    + ", ".join(
                        f"{'+' if k not in old else '-' if k not in new else '~'}{k}"
                        for k in changed
                    )
                )
            if not page["Records"] or not page.get("NextShardIterator"):
                break
            iterator = page["NextShardIterator"]
    return writes


def _evidence(
    runtime: FaultyRuntime,
    order: Order,
    rows: list[dict[str, Any]],
    problems: list[str],
    writes: list[str],
) -> str:
    history = "\n".join(f"      {h.at} {h.status}: {h.reason}" for h in order.history)
    ledger = "\n".join(f"      {json.dumps(r, default=str, sort_keys=True)}" for r in rows)
    logs = "\n".join(f"      {line}" for line in runtime.log_lines(order.order_id))
    written = "\n".join(f"      {w}" for w in writes)
    return (
        f"order {order.order_id} ({order.status}, attempt {order.attempt}): "
        f"{'; '.join(problems)}\n    StatusHistory:\n{history}\n    ledger:\n{ledger or '      -'}"
        f"\n    extra: {json.dumps(dict(order.extra), default=str, sort_keys=True)}"
        f"\n    writes (Orders stream):\n{written or '      -'}"
        f"\n    runtime log:\n{logs or '      -'}"
    )


def test_no_order_unit_or_charge_is_lost_when_the_functions_calls_fail(
    faulty_runtime: FaultyRuntime, store: DynamoStore
) -> None:
    # Given items in stock, two of them scarce, and a pipeline whose functions' AWS calls fail
    rng = random.Random(SEED)
    stock = _stock_items(store, rng)
    started = time.monotonic()
    # When orders arrive at a steady rate and the pipeline works through them
    order_ids = _submit_steadily(store, stock, rng)
    orders = _wait_until_settled(store, order_ids)
    wall = time.monotonic() - started
    ledger = _ledger(faulty_runtime.env)
    current = {name: store.inventory_get(name) for name in stock}
    report = faults.read_reports(faulty_runtime.fault_dir)
    by_status = Counter(str(o.status) for o in orders.values())
    dead_letters = sum(wiring.dead_letter_queue().depth().values())
    stream_failures = sum(wiring.stream_failure_queue().depth().values())
    print(
        f"\n{ORDERS} orders at {ORDERS_PER_S:g}/s, {FAULT_RATE * 100:g}% of calls failing, "
        f"seed {SEED}: {wall:.1f} s from the first order to the last final status\n"
        f"  orders by status: {dict(sorted(by_status.items()))}\n"
        f"  faults injected: {sum(report['faults'].values())} of {report['calls']} calls "
        f"({report['workers']} workers): {dict(sorted(report['faults'].items()))}\n"
        f"  by code: {dict(sorted(report['details'].items()))}\n"
        f"  order to final status: {_latencies(orders)}\n"
        f"  messages in the DLQ: {dead_letters}, stream batches given up: {stream_failures}"
    )

    # Then every order ended, with no double charge or shipment and every failed charge refunded
    problems = {oid: p for oid, o in orders.items() if (p := _order_problems(o, ledger[oid]))}
    stray = sorted(set(ledger) - set(orders))
    writes = _stream_writes(store.orders_table, set(problems)) if problems else {}
    assert not problems and not stray, (
        f"{len(problems)} order(s) wrong, ledger rows of unknown orders {stray}:\n"
        + "\n".join(
            _evidence(faulty_runtime, orders[o], ledger[o], p, writes[o])
            for o, p in problems.items()
        )
    )
    # And every unit is either on the shelf or held by an order that keeps it
    held = _held_units(orders)
    for name, initial in stock.items():
        row = current[name]
        assert row is not None
        assert row.stock + held[name] == initial, (
            f"{name}: {initial} at the start, {row.stock} now, {held[name]} held by orders"
        )
    # And the run really was what it claims: faults of every kind, rejections, declines
    assert set(report["faults"]) == set(faults.KINDS), report
    assert FAULT_RATE / 2 < sum(report["faults"].values()) / report["calls"] < FAULT_RATE * 2
    assert by_status[OrderStatus.REJECTED] and by_status[OrderStatus.PAYMENT_FAILED], by_status
    assert by_status[OrderStatus.SHIPPED], by_status
