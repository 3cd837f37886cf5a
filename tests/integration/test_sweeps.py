"""The stranded-order sweepers against DynamoDB Local and the whole local runtime: lost stream
records, and workflows stopped or failed mid-way, brought to a final status."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from operations.models import AuditLogEntry, BackgroundJob
from operations.tasks import sweep_stranded_paid_orders
from pipeline import aws, wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.mock_payments import transaction_id_for
from pipeline.domain import InventoryItem, Order, OrderLine, execution_name
from pipeline.fulfilment import payment_charge, payment_key
from pipeline.orders import order_submit
from pipeline.statuses import OrderStatus
from pipeline.sweeps import (
    SweepAction,
    SweepReport,
    sweep_stranded_pending,
    sweep_stranded_reserved,
)
from tests.fakes import FakeQueue

pytestmark = pytest.mark.integration

SETTLE_S = 60.0
ADDRESS = {
    "Name": "Ada",
    "Line1": "1 Way",
    "City": "Leeds",
    "PostalCode": "LS1 1AA",
    "Country": "GB",
}


def _minutes_ago(minutes: float) -> str:
    moment = datetime.now(UTC) - timedelta(minutes=minutes)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _item(store: DynamoStore, stock: int) -> str:
    name = f"sweep-{uuid.uuid4().hex[:10]}"
    assert store.inventory_put_if_absent(InventoryItem(name, stock, Decimal("10.00"), "sweeps"))
    return name


def _stock(store: DynamoStore, name: str) -> int:
    row = store.inventory_get(name)
    assert row is not None
    return row.stock


def _wait(what: str, check: Callable[[], Any], timeout: float = SETTLE_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.1)


def _at_once(*calls: Callable[[], SweepReport]) -> list[SweepReport]:
    """Run the sweeps on threads at the same moment; their reports."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


# -- PENDING on DynamoDB Local: no stream consumer here, so a written order's record is lost -----


def test_a_pending_order_whose_stream_record_was_lost_is_reserved_once(store: DynamoStore) -> None:
    # Given a PENDING order placed ten minutes ago whose stream record never arrived (this
    # table's stream has no consumer), and one placed a moment ago
    item = _item(store, stock=5)
    lost = Order.new(customer_name="Ada", lines=[OrderLine(item, 2)], now=_minutes_ago(10))
    fresh = Order.new(customer_name="Bob", lines=[OrderLine(item, 1)])
    store.order_put_new(lost)
    store.order_put_new(fresh)
    queues = [FakeQueue(), FakeQueue()]

    # When two sweepers run at the same moment, then a third after them
    reports = _at_once(
        *(lambda q=q: sweep_stranded_pending(store=store, queue=q, max_orders=500) for q in queues)
    )
    third = sweep_stranded_pending(store=store, queue=queues[0], max_orders=500)

    # Then the lost one was reserved in one transaction, by exactly one of them, and sent on
    # once; the fresh one (its record may be on its way) was left PENDING
    assert store.order_get(lost.order_id).status == OrderStatus.RESERVED
    assert _stock(store, item) == 3
    assert sum(lost.order_id in r.ids(SweepAction.REDRIVEN) for r in reports) == 1
    sent = [m.json() for q in queues for m in q.sent if m.json()["OrderId"] == lost.order_id]
    assert sent == [{"OrderId": lost.order_id, "Attempt": 1}]
    assert store.order_get(fresh.order_id).status == OrderStatus.PENDING
    # And the third sweeper found nothing of it to do
    assert lost.order_id not in third.found


# -- The whole local runtime: workflows stopped or failed mid-way --------------------------------


@pytest.fixture
def runtime_store(runtime_env: dict[str, str]) -> DynamoStore:
    """The running runtime's tables."""
    return wiring.dynamo_store()


def _dead_run(name: str, *, stop: bool) -> None:
    """Make run 1's execution of an order exist and be over, before the order is written.

    Its input names no real order, so nothing it does reaches the order: it only stands for a
    run that died. With `stop` it is stopped at once (StopExecution: ABORTED, as a runtime
    killed mid-way leaves it); without, it fails through the real workflow (FAILED).
    """
    workflow = wiring.fulfilment_workflow()
    started = workflow.start(name, {"OrderId": f"ghost-{uuid.uuid4().hex}", "Attempt": 1})
    assert started.started
    if stop:
        aws.client("stepfunctions").stop_execution(
            executionArn=started.execution_arn, error="Killed", cause="stopped mid-way by a test"
        )
    want = "ABORTED" if stop else "FAILED"
    _wait(f"{name} {want}", lambda: (workflow.describe(name) or {}).get("status") == want)


def _reserved_with_dead_run(store: DynamoStore, item: str, *, stop: bool) -> Order:
    """An order the pipeline itself reserved (the stream, stock taken), whose run 1 is over."""
    order_id = str(uuid.uuid4())
    _dead_run(execution_name(order_id, 1), stop=stop)
    order_submit(
        store=store,
        customer_name="Ada",
        items=[{"ItemName": item, "Quantity": 1}],
        payment_token="tok_approve",
        shipping_address=ADDRESS,
        order_id=order_id,
    )
    reserved = _wait("RESERVED", lambda: _in(store, order_id, OrderStatus.RESERVED))
    time.sleep(1)  # SQSProcessor's start of run 1 finds the dead execution: nothing starts
    assert store.order_get(order_id).status == OrderStatus.RESERVED
    return reserved


def _in(store: DynamoStore, order_id: str, status: OrderStatus) -> Order | None:
    order = store.order_get(order_id)
    return order if order.status == status else None


def _ledger_entries(env: dict[str, str], order_id: str) -> list[dict[str, Any]]:
    """The mock gateway's charges for this order (any attempt's key)."""
    client = aws.client("dynamodb")
    keys = [transaction_id_for(f"{order_id}:{n}") for n in range(1, 4)]
    found = []
    for key in keys:
        item = client.get_item(
            TableName=env["PAYMENT_LEDGER_TABLE"],
            Key={"TransactionId": {"S": key}},
            ConsistentRead=True,
        ).get("Item")
        if item:
            found.append(item)
    return found


def _states_of(name: str) -> list[str]:
    """The states an execution entered, in order."""
    workflow = wiring.fulfilment_workflow()
    client = aws.client("stepfunctions")
    events: list[dict[str, Any]] = []
    pages = client.get_paginator("get_execution_history").paginate(
        executionArn=workflow.execution_arn(name)
    )
    for page in pages:
        events += page["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("Entered")]


@pytest.mark.e2e
def test_a_reserved_order_whose_workflow_was_stopped_ships_under_a_new_run(
    runtime_store: DynamoStore, runtime_env: dict[str, str]
) -> None:
    # Given an order the pipeline reserved whose run 1 was stopped mid-way (ABORTED)
    store = runtime_store
    item = _item(store, stock=5)
    order = _reserved_with_dead_run(store, item, stop=True)

    def sweep() -> SweepReport:
        return sweep_stranded_reserved(
            store=store,
            workflow=wiring.fulfilment_workflow(),
            queue=wiring.orders_queue(),
            gateway=wiring.payment_gateway(),
            min_age_seconds=0.5,
        )

    # When two RESERVED sweepers run at the same moment
    time.sleep(0.6)
    reports = _at_once(sweep, sweep)

    # Then exactly one asked for run 2, and the order ships under it
    assert sum(order.order_id in r.ids(SweepAction.RESTARTED) for r in reports) == 1
    shipped = _wait("SHIPPED", lambda: _in(store, order.order_id, OrderStatus.SHIPPED))
    assert shipped.workflow_run == 2 and shipped.attempt == 1
    run_2 = execution_name(order.order_id, 1, 2)
    assert run_2 == f"{order.order_id}-r2"
    assert (wiring.fulfilment_workflow().describe(run_2) or {}).get("status") == "SUCCEEDED"
    # And it was charged once, under the attempt's key, and its stock taken once
    assert shipped.payment is not None
    assert shipped.payment["TransactionId"] == transaction_id_for(payment_key(shipped))
    assert len(_ledger_entries(runtime_env, order.order_id)) == 1
    assert _stock(store, item) == 4
    # And a later sweep finds nothing of it to do
    assert order.order_id not in sweep().found


@pytest.mark.e2e
def test_a_reserved_order_out_of_runs_is_released(
    runtime_store: DynamoStore, runtime_env: dict[str, str]
) -> None:
    # Given an order the pipeline reserved whose only allowed run failed
    store = runtime_store
    item = _item(store, stock=5)
    order = _reserved_with_dead_run(store, item, stop=False)
    assert _stock(store, item) == 4

    # When the RESERVED sweeper runs with a cap of one run
    time.sleep(0.6)
    report = sweep_stranded_reserved(
        store=store,
        workflow=wiring.fulfilment_workflow(),
        queue=wiring.orders_queue(),
        gateway=wiring.payment_gateway(),
        min_age_seconds=0.5,
        max_runs=1,
    )

    # Then it was released: PAYMENT_FAILED, stock back, never charged
    assert order.order_id in report.ids(SweepAction.RELEASED)
    released = store.order_get(order.order_id)
    assert released.status == OrderStatus.PAYMENT_FAILED
    assert "workflow run 1 of 1 FAILED" in released.status_reason
    assert _stock(store, item) == 5
    assert _ledger_entries(runtime_env, order.order_id) == []


@pytest.mark.e2e
@pytest.mark.django_db
def test_a_paid_order_whose_workflow_failed_ships_through_the_beat_task(
    runtime_store: DynamoStore,
    runtime_env: dict[str, str],
    settings: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an order the pipeline reserved, charged by the payment step's use case, whose
    # run 1 then failed (FAILED, through the real workflow): "stuck in PAID"
    store = runtime_store
    item = _item(store, stock=5)
    order = _reserved_with_dead_run(store, item, stop=False)
    paid = payment_charge(store=store, gateway=wiring.payment_gateway(), order_id=order.order_id)
    assert paid.status == OrderStatus.PAID and paid.payment is not None
    settings.OPS_SWEEP_PAID_MIN_AGE = 0.5
    time.sleep(0.6)
    capsys.readouterr()

    # When celery beat's PAID sweeper task runs
    result = sweep_stranded_paid_orders()

    # Then it resumed shipping under run 2, whose payment step found it PAID: it shipped,
    # with the one charge it had
    assert order.order_id in result["done"]["resumed"]  # type: ignore[index]
    shipped = _wait("SHIPPED", lambda: _in(store, order.order_id, OrderStatus.SHIPPED))
    assert shipped.payment == paid.payment
    assert len(_ledger_entries(runtime_env, order.order_id)) == 1
    run_2 = execution_name(order.order_id, 1, 2)
    _wait("run 2 over", lambda: wiring.fulfilment_workflow().describe(run_2)["status"] != "RUNNING")
    assert _states_of(run_2)[:2] == ["ProcessPayment", "ShipOrder"]
    # And the action was audited on the order, and counted as found and resumed
    entry = AuditLogEntry.objects.get(order_id=order.order_id)
    assert entry.actor == "celery beat (sweep_stranded_paid)"
    assert (entry.outcome, entry.detail["action"], entry.detail["run"]) == (
        "succeeded",
        "resumed",
        2,
    )
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    names = [m["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for m in emitted]
    assert names.count("StrandedPaidFound") >= 1 and names.count("StrandedPaidResumed") >= 1


@pytest.mark.e2e
@pytest.mark.django_db
def test_staff_run_the_paid_sweeper_as_a_background_job(
    runtime_store: DynamoStore,
    runtime_env: dict[str, str],
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given an order stuck in PAID (its run 1 FAILED after the charge), and a staff member
    # allowed to run sweepers (a superuser here; the roles give it to operators)
    store = runtime_store
    item = _item(store, stock=5)
    order = _reserved_with_dead_run(store, item, stop=False)
    payment_charge(store=store, gateway=wiring.payment_gateway(), order_id=order.order_id)
    settings.OPS_SWEEP_PAID_MIN_AGE = 0.5
    time.sleep(0.6)
    boss = get_user_model().objects.create_superuser(username=f"boss-{uuid.uuid4().hex[:6]}")
    client = Client()
    client.force_login(boss)

    # When they start the PAID sweeper from the jobs page (the worker runs it after the commit)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("operations:job-start", args=["sweep_paid"]), {"reason": "stuck in PAID"}
        )

    # Then the job finished with the order resumed, audited under the staff member's name
    job = BackgroundJob.objects.get(kind="sweep_paid")
    assert response["Location"] == reverse("operations:job", args=[job.pk])
    assert job.state == "succeeded" and order.order_id in job.result["done"]["resumed"]
    assert job.progress == job.total == job.result["examined"] >= 1
    entry = AuditLogEntry.objects.get(order_id=order.order_id)
    assert entry.actor == f"{boss.username} (sweep_stranded_paid)"
    # And the order ships
    _wait("SHIPPED", lambda: _in(store, order.order_id, OrderStatus.SHIPPED))
