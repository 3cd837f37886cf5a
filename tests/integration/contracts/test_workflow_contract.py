"""The Workflow contract: FakeWorkflow and FulfilmentWorkflow (on the local Step Functions
server, running statemachine/order_fulfilment.asl.json) alike."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest

from pipeline.adapters.stepfunctions import FulfilmentWorkflow
from pipeline.domain import execution_name
from tests.fakes import FakeWorkflow

pytestmark = pytest.mark.integration

AnyWorkflow = FakeWorkflow | FulfilmentWorkflow


def _order_id() -> str:
    return str(uuid.uuid4())


def test_a_second_start_while_the_execution_runs_starts_nothing(workflow: AnyWorkflow) -> None:
    # Given an order's execution, started and still running (its payment task is held)
    order_id = _order_id()
    payload = {"OrderId": order_id, "Attempt": 1}
    first = workflow.start(order_id, payload)

    # When the same queue message is handled again: same name, same payload
    second = workflow.start(order_id, dict(payload))

    # Then only the first call started it, and both name the same execution, still running
    assert (first.started, second.started) == (True, False)
    assert second.execution_arn == first.execution_arn
    described = workflow.describe(order_id)
    assert described is not None and described["status"] == "RUNNING"


def test_a_start_after_the_execution_finished_starts_nothing(
    workflow: AnyWorkflow, finish: Callable[[str], None]
) -> None:
    # Given an order's execution that has finished
    order_id = _order_id()
    payload = {"OrderId": order_id, "Attempt": 1}
    first = workflow.start(order_id, payload)
    finish(order_id)

    # When it is started again, with its payload and with another
    again = workflow.start(order_id, payload)
    other = workflow.start(order_id, {"OrderId": order_id, "Attempt": 9})

    # Then neither starts anything: the same execution, finished as it was
    assert (again.started, other.started) == (False, False)
    assert again.execution_arn == other.execution_arn == first.execution_arn
    described = workflow.describe(order_id)
    assert described is not None and described["status"] == "SUCCEEDED"


def test_each_attempt_of_an_order_is_an_execution_of_its_own(workflow: AnyWorkflow) -> None:
    # Given an order's first attempt, running
    order_id = _order_id()
    workflow.start(execution_name(order_id, 1), {"OrderId": order_id, "Attempt": 1})

    # When its second attempt (after a staff resubmission) is started
    second = workflow.start(execution_name(order_id, 2), {"OrderId": order_id, "Attempt": 2})

    # Then that is a new execution, under the attempt's name
    assert second.started
    assert second.execution_arn.endswith(f":{order_id}-2")


def test_describe_shows_the_execution_its_status_and_input(
    workflow: AnyWorkflow, finish: Callable[[str], None]
) -> None:
    # Given a started execution
    order_id = _order_id()
    payload = {"OrderId": order_id, "Attempt": 1}
    started = workflow.start(order_id, payload)

    # When it is described while running, then after it finished
    running = workflow.describe(order_id)
    finish(order_id)
    finished = workflow.describe(order_id)

    # Then both name it by its ARN (derived from the state machine's) and carry its input
    assert running is not None and finished is not None
    expected_arn = (
        workflow.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{order_id}"
    )
    assert started.execution_arn == running["executionArn"] == expected_arn
    assert (running["name"], running["stateMachineArn"]) == (order_id, workflow.state_machine_arn)
    assert running["status"] == "RUNNING" and "stopDate" not in running
    assert json.loads(running["input"]).items() >= payload.items()
    # And once finished it has its stop date and its output
    assert finished["status"] == "SUCCEEDED"
    assert finished["stopDate"] >= finished["startDate"]
    assert json.loads(finished["output"])["OrderId"] == order_id


def test_describe_of_a_name_never_started_is_none(workflow: AnyWorkflow) -> None:
    # Given a name no execution has
    name = _order_id()

    # When it is described
    described = workflow.describe(name)

    # Then there is nothing to describe
    assert described is None
