"""Integration tests of the local Step Functions server, driven over HTTP by a real boto3 client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pipeline.local.stepfunctions.asl import LAMBDA_INVOKE, TaskFailure
from pipeline.local.stepfunctions.server import StepFunctionsServer

ACCOUNT = "123456789012"
FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/StepFunctionsRole"
ROOT = Path(__file__).resolve().parents[2]

SIMPLE = {
    "StartAt": "Work",
    "States": {
        "Work": {
            "Type": "Task",
            "Resource": LAMBDA_INVOKE,
            "Parameters": {"FunctionName": FN + "Work", "Payload.$": "$"},
            "ResultSelector": {"echo.$": "$.Payload.echo"},
            "ResultPath": "$.result",
            "Next": "Check",
        },
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.fail", "IsPresent": True, "Next": "Broken"}],
            "Default": "Done",
        },
        "Done": {"Type": "Succeed"},
        "Broken": {"Type": "Fail", "Error": "Broken", "Cause": "asked to fail"},
    },
}


class Functions:
    """A fake invoke that counts calls and can hold them until released."""

    def __init__(self, failures: dict[str, TaskFailure] | None = None):
        self.calls: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.returned = threading.Event()
        self.failures = failures or {}

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def count(self, name: str = "Work") -> int:
        with self.lock:
            return sum(1 for called, _ in self.calls if called == name)

    def __call__(self, function_arn: str, payload: Any, *, timeout: float | None = None) -> Any:
        name = function_arn.rsplit(":", 1)[-1]
        with self.lock:
            self.calls.append((name, payload))
        self.entered.set()
        self.gate.wait(10)
        self.returned.set()
        if name in self.failures:
            raise self.failures[name]
        return {"echo": payload, "Payment": {"TransactionId": "tx"}, "Status": "DONE"}


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., StepFunctionsServer]]:
    servers: list[StepFunctionsServer] = []
    held: list[Functions] = []

    def start(
        functions: Functions, db_path: Path | None = None, **options: Any
    ) -> StepFunctionsServer:
        options.setdefault("time_scale", 0.01)
        server = StepFunctionsServer(invoke=functions, db_path=db_path, port=0, **options)
        server.start()
        servers.append(server)
        held.append(functions)
        return server

    yield start
    for functions in held:
        functions.release()
    for server in servers:
        server.stop()


def client_for(server: StepFunctionsServer) -> Any:
    return boto3.client(
        "stepfunctions",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        endpoint_url=f"http://127.0.0.1:{server.port}",
        config=Config(max_pool_connections=32, retries={"max_attempts": 1, "mode": "standard"}),
    )


def create_machine(client: Any, name: str = "Simple", definition: dict[str, Any] = SIMPLE) -> str:
    response = client.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=ROLE
    )
    return response["stateMachineArn"]


def wait_until_done(client: Any, execution_arn: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = client.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        time.sleep(0.01)
    raise AssertionError(f"{execution_arn} still RUNNING after {timeout} s")


def error_code(raised: pytest.ExceptionInfo[ClientError]) -> str:
    return raised.value.response["Error"]["Code"]


def history(client: Any, execution_arn: str) -> list[dict[str, Any]]:
    return client.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]


# --------------------------------------------------------------------------------------------
# State machines
# --------------------------------------------------------------------------------------------


def test_state_machine_create_describe_list_update_delete(start_server):
    client = client_for(start_server(Functions()))

    arn = create_machine(client)
    assert arn == f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:Simple"

    described = client.describe_state_machine(stateMachineArn=arn)
    assert (described["status"], described["type"], described["roleArn"]) == (
        "ACTIVE",
        "STANDARD",
        ROLE,
    )
    assert json.loads(described["definition"]) == SIMPLE
    assert [m["name"] for m in client.list_state_machines()["stateMachines"]] == ["Simple"]

    # An identical create answers with the same machine; a different one is refused.
    assert create_machine(client) == arn
    changed = {**SIMPLE, "Comment": "changed"}
    with pytest.raises(ClientError) as raised:
        create_machine(client, definition=changed)
    assert error_code(raised) == "StateMachineAlreadyExists"

    client.update_state_machine(stateMachineArn=arn, definition=json.dumps(changed))
    described = client.describe_state_machine(stateMachineArn=arn)
    assert json.loads(described["definition"])["Comment"] == "changed"

    client.delete_state_machine(stateMachineArn=arn)
    with pytest.raises(ClientError) as raised:
        client.describe_state_machine(stateMachineArn=arn)
    assert error_code(raised) == "StateMachineDoesNotExist"


def test_list_state_machines_pages(start_server):
    client = client_for(start_server(Functions()))
    for i in range(5):
        create_machine(client, name=f"M{i}")

    names, token = [], None
    while True:
        page = client.list_state_machines(maxResults=2, **({"nextToken": token} if token else {}))
        names += [m["name"] for m in page["stateMachines"]]
        token = page.get("nextToken")
        if not token:
            break

    assert names == [f"M{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("options", "code", "fragment"),
    [
        (
            {
                "definition": json.dumps(
                    {"StartAt": "M", "States": {"M": {"Type": "Map", "End": True}}}
                )
            },
            "InvalidDefinition",
            "Map",
        ),
        ({"definition": "{not json"}, "InvalidDefinition", "not JSON"),
        (
            {
                "definition": json.dumps(
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}}}
                )
            },
            "InvalidDefinition",
            "'B'",
        ),
        ({"name": "has space"}, "InvalidName", "has space"),
        ({"type": "EXPRESS"}, "StateMachineTypeNotSupported", "EXPRESS"),
    ],
)
def test_create_state_machine_refuses_what_it_cannot_run(start_server, options, code, fragment):
    client = client_for(start_server(Functions()))
    arguments = {"name": "Machine", "definition": json.dumps(SIMPLE), "roleArn": ROLE, **options}

    with pytest.raises(ClientError) as raised:
        client.create_state_machine(**arguments)

    assert error_code(raised) == code
    assert fragment in raised.value.response["Error"]["Message"]


def test_unknown_operations_are_reported_as_such(start_server):
    client = client_for(start_server(Functions()))
    with pytest.raises(ClientError) as raised:
        client.list_activities()
    assert error_code(raised) == "UnknownOperationException"


# --------------------------------------------------------------------------------------------
# Executions
# --------------------------------------------------------------------------------------------


def test_an_execution_runs_to_success_and_records_its_history(start_server):
    # Given a state machine and a notification hook
    finished: list[dict[str, Any]] = []
    functions = Functions()
    client = client_for(start_server(functions, on_execution_finished=finished.append))
    machine = create_machine(client)

    # When an execution starts
    started = client.start_execution(
        stateMachineArn=machine, name="order-1", input=json.dumps({"OrderId": "o1"})
    )
    described = wait_until_done(client, started["executionArn"])

    # Then it succeeded with the task's result in its output
    assert started["executionArn"].endswith(":execution:Simple:order-1")
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {
        "OrderId": "o1",
        "result": {"echo": {"OrderId": "o1"}},
    }
    assert described["stopDate"] >= described["startDate"]
    assert functions.calls == [("Work", {"OrderId": "o1"})]

    # And its history reads like AWS's
    events = history(client, started["executionArn"])
    assert [e["type"] for e in events] == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]
    assert [e["id"] for e in events] == list(range(1, 12))
    assert [e["previousEventId"] for e in events] == list(range(0, 11))
    scheduled = events[2]["taskScheduledEventDetails"]
    assert json.loads(scheduled["parameters"])["FunctionName"] == FN + "Work"

    # And the hook heard about it once, dates as datetimes
    assert [(f["executionArn"], f["status"]) for f in finished] == [
        (started["executionArn"], "SUCCEEDED")
    ]
    assert finished[0]["stopDate"] >= finished[0]["startDate"]


def test_history_pages_forwards_and_backwards(start_server):
    client = client_for(start_server(Functions()))
    machine = create_machine(client)
    arn = client.start_execution(stateMachineArn=machine, name="h")["executionArn"]
    wait_until_done(client, arn)

    def all_ids(**options: Any) -> list[int]:
        ids, token = [], None
        while True:
            extra = {"nextToken": token} if token else {}
            page = client.get_execution_history(executionArn=arn, maxResults=3, **options, **extra)
            ids += [e["id"] for e in page["events"]]
            token = page.get("nextToken")
            if not token:
                return ids

    assert all_ids() == list(range(1, 12))
    assert all_ids(reverseOrder=True) == list(range(11, 0, -1))
    without_data = client.get_execution_history(executionArn=arn, includeExecutionData=False)
    assert "input" not in without_data["events"][0]["executionStartedEventDetails"]


def test_a_failing_execution_reports_error_and_cause(start_server):
    client = client_for(start_server(Functions()))
    machine = create_machine(client)

    arn = client.start_execution(stateMachineArn=machine, input=json.dumps({"fail": 1}))[
        "executionArn"
    ]
    described = wait_until_done(client, arn)

    assert (described["status"], described["error"], described["cause"]) == (
        "FAILED",
        "Broken",
        "asked to fail",
    )
    assert "output" not in described
    assert history(client, arn)[-1]["executionFailedEventDetails"] == {
        "error": "Broken",
        "cause": "asked to fail",
    }


def test_list_executions_filters_by_status_and_pages_newest_first(start_server):
    client = client_for(start_server(Functions()))
    machine = create_machine(client)
    names = []
    for i in range(7):
        document = {"fail": True} if i in (2, 5) else {}
        name = f"run-{i}"
        arn = client.start_execution(stateMachineArn=machine, name=name, input=json.dumps(document))
        wait_until_done(client, arn["executionArn"])
        names.append(name)

    failed = client.list_executions(stateMachineArn=machine, statusFilter="FAILED")["executions"]
    succeeded = client.list_executions(stateMachineArn=machine, statusFilter="SUCCEEDED")
    assert [e["name"] for e in failed] == ["run-5", "run-2"]
    assert len(succeeded["executions"]) == 5

    paged, token = [], None
    while True:
        extra = {"nextToken": token} if token else {}
        page = client.list_executions(stateMachineArn=machine, maxResults=3, **extra)
        paged += [e["name"] for e in page["executions"]]
        token = page.get("nextToken")
        if not token:
            break
    assert paged == list(reversed(names))

    with pytest.raises(ClientError) as raised:
        client.list_executions(stateMachineArn=machine, nextToken="garbage")
    assert error_code(raised) == "InvalidToken"


def test_execution_names_are_validated_and_unknown_executions_reported(start_server):
    client = client_for(start_server(Functions()))
    machine = create_machine(client)

    for bad in ("has space", "x" * 81, "semi;colon"):
        with pytest.raises(ClientError) as raised:
            client.start_execution(stateMachineArn=machine, name=bad)
        assert error_code(raised) == "InvalidName"

    missing = machine.replace(":stateMachine:", ":execution:") + ":nope"
    with pytest.raises(ClientError) as raised:
        client.describe_execution(executionArn=missing)
    assert error_code(raised) == "ExecutionDoesNotExist"
    with pytest.raises(ClientError) as raised:
        client.describe_execution(executionArn="arn:aws:states:us-east-1:1:nothing")
    assert error_code(raised) == "InvalidArn"
    with pytest.raises(ClientError) as raised:
        client.start_execution(stateMachineArn=machine, input="{broken")
    assert error_code(raised) == "InvalidExecutionInput"


def test_a_name_is_idempotent_only_while_running_with_the_same_input(start_server):
    # Given an execution held inside its task
    functions = Functions()
    functions.hold()
    client = client_for(start_server(functions))
    machine = create_machine(client)
    document = json.dumps({"OrderId": "o1"})
    first = client.start_execution(stateMachineArn=machine, name="o1", input=document)

    # When the same name is started again while it runs
    again = client.start_execution(stateMachineArn=machine, name="o1", input=document)
    with pytest.raises(ClientError) as different:
        client.start_execution(stateMachineArn=machine, name="o1", input='{"OrderId": "o2"}')

    # Then the same input gets the same execution, other input is refused
    assert (again["executionArn"], again["startDate"]) == (
        first["executionArn"],
        first["startDate"],
    )
    assert error_code(different) == "ExecutionAlreadyExists"

    # And once it has finished, even the same input is refused
    functions.release()
    wait_until_done(client, first["executionArn"])
    with pytest.raises(ClientError) as finished:
        client.start_execution(stateMachineArn=machine, name="o1", input=document)
    assert error_code(finished) == "ExecutionAlreadyExists"
    assert functions.count() == 1


def start_concurrently(client: Any, machine: str, inputs: list[str]) -> list[Any]:
    """Start one execution name from len(inputs) threads released at the same instant."""
    barrier = threading.Barrier(len(inputs))
    outcomes: list[Any] = [None] * len(inputs)

    def start(index: int) -> None:
        barrier.wait()
        try:
            outcomes[index] = client.start_execution(
                stateMachineArn=machine, name="same-order", input=inputs[index]
            )["executionArn"]
        except ClientError as exc:
            outcomes[index] = exc.response["Error"]["Code"]

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return outcomes


def test_twenty_concurrent_starts_of_one_name_make_one_execution(start_server):
    # Given an execution that will be held in its task while the racing starts arrive
    functions = Functions()
    functions.hold()
    client = client_for(start_server(functions))
    machine = create_machine(client)

    # When 20 threads start the same name with the same input at once
    outcomes = start_concurrently(client, machine, ['{"OrderId": "o1"}'] * 20)
    functions.release()

    # Then all of them got the one execution, which ran its task once
    assert len(set(outcomes)) == 1 and outcomes[0].endswith(":same-order")
    wait_until_done(client, outcomes[0])
    assert len(client.list_executions(stateMachineArn=machine)["executions"]) == 1
    assert functions.count() == 1


def test_twenty_concurrent_starts_with_different_inputs_let_exactly_one_through(start_server):
    functions = Functions()
    functions.hold()
    client = client_for(start_server(functions))
    machine = create_machine(client)

    outcomes = start_concurrently(client, machine, [json.dumps({"n": i}) for i in range(20)])
    functions.release()

    winners = [o for o in outcomes if o.startswith("arn:")]
    assert len(winners) == 1
    assert outcomes.count("ExecutionAlreadyExists") == 19
    wait_until_done(client, winners[0])
    assert len(client.list_executions(stateMachineArn=machine)["executions"]) == 1
    assert functions.count() == 1


def test_stop_execution_aborts_and_nothing_after_it_is_recorded(start_server):
    # Given an execution held inside its task
    finished: list[dict[str, Any]] = []
    functions = Functions()
    functions.hold()
    client = client_for(start_server(functions, on_execution_finished=finished.append))
    machine = create_machine(client)
    arn = client.start_execution(stateMachineArn=machine, name="stop-me")["executionArn"]
    assert functions.entered.wait(5)

    # When it is stopped, and its task only returns afterwards
    stopped = client.stop_execution(executionArn=arn, error="Operator", cause="not needed")
    functions.release()
    assert functions.returned.wait(5)
    time.sleep(0.05)  # room for a wrongly recorded late result to show up

    # Then it is ABORTED with the given reason, and the late task result changed nothing
    described = client.describe_execution(executionArn=arn)
    assert (described["status"], described["error"], described["cause"]) == (
        "ABORTED",
        "Operator",
        "not needed",
    )
    assert described["stopDate"] == stopped["stopDate"]
    events = history(client, arn)
    assert events[-1]["type"] == "ExecutionAborted"
    assert events[-1]["executionAbortedEventDetails"] == {
        "error": "Operator",
        "cause": "not needed",
    }
    assert "TaskSucceeded" not in [e["type"] for e in events]
    assert [f["status"] for f in finished] == ["ABORTED"]
    # Stopping a finished execution changes nothing.
    assert client.stop_execution(executionArn=arn)["stopDate"] == stopped["stopDate"]


def test_at_most_the_configured_number_of_executions_run_at_once(start_server):
    functions = Functions()
    functions.hold()
    client = client_for(start_server(functions, max_concurrent_executions=2))
    machine = create_machine(client)
    arns = [
        client.start_execution(stateMachineArn=machine, name=f"p{i}")["executionArn"]
        for i in range(4)
    ]

    deadline = time.monotonic() + 5
    while functions.count() < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert functions.count() == 2
    statuses = {client.describe_execution(executionArn=a)["status"] for a in arns}
    assert statuses == {"RUNNING"}

    functions.release()
    assert {wait_until_done(client, a)["status"] for a in arns} == {"SUCCEEDED"}
    assert functions.count() == 4


def test_deleting_a_machine_waits_for_its_running_executions(start_server):
    functions = Functions()
    functions.hold()
    client = client_for(start_server(functions))
    machine = create_machine(client)
    arn = client.start_execution(stateMachineArn=machine)["executionArn"]

    client.delete_state_machine(stateMachineArn=machine)

    assert client.describe_state_machine(stateMachineArn=machine)["status"] == "DELETING"
    with pytest.raises(ClientError) as raised:
        client.start_execution(stateMachineArn=machine)
    assert error_code(raised) == "StateMachineDeleting"
    functions.release()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            client.describe_state_machine(stateMachineArn=machine)
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "StateMachineDoesNotExist"
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the machine was not deleted after its execution ended")
    with pytest.raises(ClientError):
        client.describe_execution(executionArn=arn)


def test_the_project_definition_runs_behind_the_api(start_server):
    # Given the project's state machine with the payment declining
    text = (ROOT / "statemachine" / "order_fulfilment.asl.json").read_text()
    for name in ("Payment", "ReleaseStock", "Shipping", "ManualIntervention"):
        text = text.replace("${" + name + "FunctionArn}", FN + name)
    declined = TaskFailure("PaymentDeclined", json.dumps({"errorMessage": "no funds"}))
    functions = Functions(failures={"Payment": declined})
    client = client_for(start_server(functions))
    machine = client.create_state_machine(name="OrderFulfilment", definition=text, roleArn=ROLE)[
        "stateMachineArn"
    ]

    # When an order goes through it
    arn = client.start_execution(
        stateMachineArn=machine, name="o-42", input=json.dumps({"OrderId": "o-42", "Attempt": 1})
    )["executionArn"]
    described = wait_until_done(client, arn)

    # Then the decline was not retried, stock was released and the workflow ended PaymentFailed
    assert described["status"] == "SUCCEEDED"
    assert functions.count("Payment") == 1 and functions.count("ReleaseStock") == 1
    events = history(client, arn)
    failed = next(e for e in events if e["type"] == "TaskFailed")
    assert failed["taskFailedEventDetails"]["error"] == "PaymentDeclined"
    last_state = [e for e in events if e["type"].endswith("StateEntered")][-1]
    assert last_state["stateEnteredEventDetails"]["name"] == "PaymentFailed"


# --------------------------------------------------------------------------------------------
# Persistence
# --------------------------------------------------------------------------------------------


def test_a_restarted_server_still_knows_its_executions(start_server, tmp_path):
    # Given a server that ran an execution, then stopped
    db_path = tmp_path / "sfn.sqlite3"
    first = start_server(Functions(), db_path=db_path)
    client = client_for(first)
    machine = create_machine(client)
    arn = client.start_execution(stateMachineArn=machine, name="kept", input='{"a": 1}')[
        "executionArn"
    ]
    wait_until_done(client, arn)
    events_before = history(client, arn)
    first.stop()

    # When a new server opens the same file
    client = client_for(start_server(Functions(), db_path=db_path))

    # Then the machine, the execution and its history are there, and the name stays taken
    assert client.describe_state_machine(stateMachineArn=machine)["name"] == "Simple"
    assert client.describe_execution(executionArn=arn)["status"] == "SUCCEEDED"
    assert history(client, arn) == events_before
    with pytest.raises(ClientError) as raised:
        client.start_execution(stateMachineArn=machine, name="kept", input='{"a": 1}')
    assert error_code(raised) == "ExecutionAlreadyExists"


def test_an_execution_running_when_the_server_stopped_is_resumed_on_start(start_server, tmp_path):
    # Given an execution stuck in its task when its server stops
    db_path = tmp_path / "sfn.sqlite3"
    stuck = Functions()
    stuck.hold()
    first = start_server(stuck, db_path=db_path)
    client = client_for(first)
    machine = create_machine(client)
    arn = client.start_execution(stateMachineArn=machine, name="resume-me", input='{"a": 1}')[
        "executionArn"
    ]
    assert stuck.entered.wait(5)
    first.stop()

    # When a new server starts on the same file (its task held, to look at it mid-way)
    fresh = Functions()
    fresh.hold()
    client = client_for(start_server(fresh, db_path=db_path))

    # Then the execution is still RUNNING and is run again from its first state
    assert fresh.entered.wait(5)
    assert client.describe_execution(executionArn=arn)["status"] == "RUNNING"
    fresh.release()
    described = wait_until_done(client, arn)
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["result"] == {"echo": {"a": 1}}
    assert fresh.calls == [("Work", {"a": 1})]

    # And the old process's late task result leaves no trace in the new history
    stuck.release()
    assert stuck.returned.wait(5)
    time.sleep(0.05)  # room for a wrongly recorded late result to show up
    types = [e["type"] for e in history(client, arn)]
    assert types.count("ExecutionStarted") == 1
    assert types[0] == "ExecutionStarted" and types[-1] == "ExecutionSucceeded"
    assert types.count("TaskScheduled") == 1
