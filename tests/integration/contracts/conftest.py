"""The contract suite's fixtures: each port once as its fake (tests/fakes.py) and once as the
real adapter on a local endpoint, chosen by the fixture's param ("fake" or "real")."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.sqs import SqsQueue
from pipeline.adapters.stepfunctions import FulfilmentWorkflow
from pipeline.local.emulators import (
    LOCAL_ACCOUNT_ID,
    LOCAL_CREDENTIALS,
    LOCAL_REGION,
    REPO_ROOT,
    free_port,
    moto_server,
)
from pipeline.local.stepfunctions.server import StepFunctionsServer
from tests.fakes import FakeQueue, FakeStore, FakeWorkflow

IMPLEMENTATIONS = ["fake", "real"]
DEFINITION = REPO_ROOT / "statemachine" / "order_fulfilment.asl.json"
FUNCTIONS = ("Payment", "Shipping", "ReleaseStock", "ManualIntervention")
SETTLE_S = 10.0


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


# -- Stores: FakeStore / DynamoStore on DynamoDB Local ----------------------------------------


@pytest.fixture(params=IMPLEMENTATIONS)
def reservation_store(request: pytest.FixtureRequest) -> FakeStore | DynamoStore:
    """A ReservationStore: FakeStore, or DynamoStore on DynamoDB Local (the shared `store`)."""
    if request.param == "fake":
        return FakeStore()
    return request.getfixturevalue("store")


@pytest.fixture
def forget_orders(reservation_store: FakeStore | DynamoStore) -> Iterator[list[str]]:
    """Order ids to delete after the test: orders that would otherwise head listings other
    tests of the session read from the shared tables (e.g. far-future OrderDates)."""
    made: list[str] = []
    yield made
    for order_id in made:
        if isinstance(reservation_store, FakeStore):
            reservation_store.orders.pop(order_id, None)
        else:
            reservation_store.client.delete_item(
                TableName=reservation_store.orders_table, Key={"OrderId": {"S": order_id}}
            )


# -- Queues: FakeQueue / SqsQueue on moto ------------------------------------------------------


@pytest.fixture(scope="session")
def moto_sqs() -> Iterator[Any]:
    """An SQS client of a moto server on 127.0.0.1, for this session's contract queues."""
    emulator = moto_server(free_port())
    emulator.start()
    try:
        yield _client("sqs", emulator.url)
    finally:
        emulator.stop()


@pytest.fixture(params=IMPLEMENTATIONS)
def message_queue(request: pytest.FixtureRequest) -> Iterator[FakeQueue | SqsQueue]:
    """A MessageQueue: FakeQueue, or SqsQueue on a fresh moto queue (deleted afterwards)."""
    if request.param == "fake":
        yield FakeQueue()
        return
    sqs = request.getfixturevalue("moto_sqs")
    url = sqs.create_queue(QueueName=f"contract-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    try:
        yield SqsQueue(url, client=sqs)
    finally:
        sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def pass_time(message_queue: FakeQueue | SqsQueue) -> Callable[[float], None]:
    """Let seconds pass for the queue: the fake's clock moves, the real one is waited for."""
    if isinstance(message_queue, FakeQueue):
        return message_queue.advance
    return time.sleep


# -- Workflows: FakeWorkflow / FulfilmentWorkflow on the local Step Functions server -----------


class HeldTasks:
    """The workflow's Lambda functions: every task of an order waits until that order is let
    go, so an execution stays RUNNING for as long as a test needs; then each answers what the
    states' ResultSelectors read, and the execution succeeds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Event] = {}

    def _gate(self, order_id: str) -> threading.Event:
        with self._lock:
            return self._gates.setdefault(order_id, threading.Event())

    def let_go(self, order_id: str) -> None:
        """Let the tasks of this order's execution return."""
        self._gate(order_id).set()

    def let_all_go(self) -> None:
        """Let every task return (the end of the session)."""
        with self._lock:
            gates = list(self._gates.values())
        for gate in gates:
            gate.set()

    def __call__(self, function_arn: str, payload: Any, *, timeout: float | None = None) -> Any:
        """Run a task: wait for the order to be let go, then answer."""
        self._gate(str(payload.get("OrderId"))).wait(60)
        return {
            "OrderId": payload.get("OrderId"),
            "Payment": {"TransactionId": "txn_contract"},
            "Shipment": {"Carrier": "USPS", "TrackingNumber": "9400"},
            "Status": "SHIPPED",
        }


@pytest.fixture(scope="session")
def held_tasks() -> HeldTasks:
    """The stand-in functions of the session's local Step Functions server."""
    return HeldTasks()


@pytest.fixture(scope="session")
def local_stepfunctions(held_tasks: HeldTasks) -> Iterator[StepFunctionsServer]:
    """The project's local Step Functions server on 127.0.0.1, in memory."""
    server = StepFunctionsServer(
        invoke=held_tasks,
        port=0,
        time_scale=0.01,
        account_id=LOCAL_ACCOUNT_ID,
        region=LOCAL_REGION,
    )
    server.start()
    try:
        yield server
    finally:
        held_tasks.let_all_go()
        server.stop()


def fulfilment_definition(path: Path = DEFINITION) -> str:
    """statemachine/order_fulfilment.asl.json with its function ARNs substituted."""
    text = path.read_text()
    for name in FUNCTIONS:
        arn = f"arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT_ID}:function:{name}"
        text = text.replace("${" + name + "FunctionArn}", arn)
    assert "${" not in text, "a substitution of the definition is missing"
    return text


@pytest.fixture(scope="session")
def fulfilment_machine(local_stepfunctions: StepFunctionsServer) -> tuple[Any, str]:
    """The fulfilment state machine created on the local server: (client, its ARN)."""
    sfn = _client("stepfunctions", local_stepfunctions.endpoint_url)
    created = sfn.create_state_machine(
        name="OrderWorkflow-Contract",
        definition=fulfilment_definition(),
        roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:role/StepFunctionsRole",
    )
    return sfn, created["stateMachineArn"]


@pytest.fixture(params=IMPLEMENTATIONS)
def workflow(request: pytest.FixtureRequest) -> FakeWorkflow | FulfilmentWorkflow:
    """A Workflow: FakeWorkflow, or FulfilmentWorkflow on the local Step Functions server."""
    if request.param == "fake":
        return FakeWorkflow()
    sfn, machine_arn = request.getfixturevalue("fulfilment_machine")
    return FulfilmentWorkflow(machine_arn, client=sfn)


@pytest.fixture
def finish(
    workflow: FakeWorkflow | FulfilmentWorkflow, request: pytest.FixtureRequest
) -> Callable[[str], None]:
    """End a running execution by name, as its last state would, and wait until it has."""
    if isinstance(workflow, FakeWorkflow):
        return workflow.finish
    held: HeldTasks = request.getfixturevalue("held_tasks")

    def finish_real(name: str) -> None:
        described = workflow.describe(name)
        assert described is not None, f"no execution {name}"
        held.let_go(json.loads(described["input"])["OrderId"])
        deadline = time.monotonic() + SETTLE_S
        while (workflow.describe(name) or {}).get("status") == "RUNNING":
            assert time.monotonic() < deadline, f"{name} still RUNNING after {SETTLE_S} s"
            time.sleep(0.02)

    return finish_real
