"""Unit tests of the local ASL interpreter: states, paths, intrinsics, Retry/Catch, validation."""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random
import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.stepfunctions.asl import (
    LAMBDA_INVOKE,
    ExecutionResult,
    InvalidDefinition,
    StateMachineInterpreter,
    StopSignal,
    TaskFailure,
    UnsupportedFeature,
    validate_definition,
)

ACCOUNT = "123456789012"
FN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
MACHINE_ARN = f"arn:aws:states:us-east-1:{ACCOUNT}:stateMachine:Orders"
EXECUTION_ARN = f"arn:aws:states:us-east-1:{ACCOUNT}:execution:Orders:run-1"
ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """Sleeps instantly, recording each requested interval and advancing both clocks."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.mono = 1000.0
        self.wall = datetime(2030, 1, 1, tzinfo=UTC)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.mono += seconds
        self.wall += timedelta(seconds=seconds)

    def monotonic(self) -> float:
        return self.mono

    def now(self) -> datetime:
        return self.wall


class Functions:
    """A fake invoke: each function name maps to outcomes used in turn (the last one repeats).

    An outcome is a value to return, a TaskFailure/exception to raise, or a callable of the
    payload giving either.
    """

    def __init__(self, **outcomes: Any):
        self.outcomes = {
            name: list(o) if isinstance(o, list) else [o] for name, o in outcomes.items()
        }
        self.calls: list[tuple[str, Any, float | None]] = []
        self.lock = threading.Lock()

    def __call__(self, function_arn: str, payload: Any, *, timeout: float | None = None) -> Any:
        name = function_arn.rsplit(":", 1)[-1]
        with self.lock:
            self.calls.append((name, copy.deepcopy(payload), timeout))
            queue = self.outcomes[name]
            outcome = queue.pop(0) if len(queue) > 1 else queue[0]
        if callable(outcome) and not isinstance(outcome, type):
            outcome = outcome(payload)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def payloads(self, name: str) -> list[Any]:
        return [payload for called, payload, _ in self.calls if called == name]


def failure(error: str, message: str = "it went wrong") -> TaskFailure:
    cause = {"errorMessage": message, "errorType": error, "stackTrace": []}
    return TaskFailure(error, json.dumps(cause))


def run(
    definition: dict[str, Any],
    execution_input: Any = None,
    *,
    invoke: Callable[..., Any] | None = None,
    time_scale: float = 1.0,
    clock: FakeClock | None = None,
    stop: StopSignal | None = None,
    real_sleep: bool = False,
    rng: random.Random | None = None,
) -> tuple[ExecutionResult, list[dict[str, Any]], FakeClock]:
    clock = clock or FakeClock()
    events: list[dict[str, Any]] = []
    interpreter = StateMachineInterpreter(
        definition,
        invoke=invoke or Functions(),
        time_scale=time_scale,
        sleep=None if real_sleep else clock.sleep,
        now=clock.now,
        monotonic=None if real_sleep else clock.monotonic,
        rng=rng,
    )
    result = interpreter.run(
        {} if execution_input is None else execution_input,
        execution_arn=EXECUTION_ARN,
        state_machine_arn=MACHINE_ARN,
        on_event=events.append,
        stop=stop,
    )
    return result, events, clock


def single(state: dict[str, Any], name: str = "Only") -> dict[str, Any]:
    """A machine of one state that ends the execution."""
    body = dict(state)
    if body["Type"] in ("Pass", "Task", "Wait", "Parallel"):
        body["End"] = True
    return {"StartAt": name, "States": {name: body}}


def task(function: str = "Work", **fields: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": LAMBDA_INVOKE,
        "Parameters": {"FunctionName": FN + function, "Payload.$": "$"},
    }
    state.update(fields)
    return state


def types(events: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in events]


def entered(events: list[dict[str, Any]]) -> list[str]:
    return [
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")
    ]


# --------------------------------------------------------------------------------------------
# Pass and the data paths
# --------------------------------------------------------------------------------------------


def test_pass_result_is_merged_into_the_input_at_result_path():
    # Given a Pass state with a fixed Result placed at a nested ResultPath
    definition = single({"Type": "Pass", "Result": {"x": 1}, "ResultPath": "$.r.s"})

    # When it runs
    result, _, _ = run(definition, {"a": 1, "r": {"keep": True}})

    # Then the result sits at $.r.s and the rest of the input is kept
    assert result.status == "SUCCEEDED"
    assert result.output == {"a": 1, "r": {"keep": True, "s": {"x": 1}}}


def test_pass_without_result_outputs_its_effective_input():
    result, _, _ = run(single({"Type": "Pass", "InputPath": "$.a"}), {"a": {"b": 2}, "c": 3})
    assert result.output == {"b": 2}


def test_result_path_null_discards_the_result_and_keeps_the_input():
    result, _, _ = run(single({"Type": "Pass", "Result": "ignored", "ResultPath": None}), {"a": 1})
    assert result.output == {"a": 1}


def test_null_input_path_and_output_path_give_empty_objects():
    in_null, _, _ = run(single({"Type": "Pass", "InputPath": None}), {"a": 1})
    out_null, _, _ = run(single({"Type": "Pass", "OutputPath": None}), {"a": 1})
    assert in_null.output == {}
    assert out_null.output == {}


def test_result_path_merges_into_the_raw_input_not_the_input_path_selection():
    # InputPath narrows what the state works on; ResultPath still writes into the raw input.
    definition = single({"Type": "Pass", "InputPath": "$.order", "ResultPath": "$.copy"})
    result, _, _ = run(definition, {"order": {"id": "o1"}, "other": 1})
    assert result.output == {"order": {"id": "o1"}, "other": 1, "copy": {"id": "o1"}}


def test_output_path_selects_part_of_the_output():
    definition = single({"Type": "Pass", "Result": {"v": [10, 20]}, "OutputPath": "$.v[1]"})
    result, _, _ = run(definition, {})
    assert result.output == 20


def test_parameters_resolve_paths_indexes_brackets_and_nested_templates():
    definition = single(
        {
            "Type": "Pass",
            "Parameters": {
                "second.$": "$.items[1].name",
                "odd.$": "$['odd key']",
                "whole.$": "$",
                "literal": "$.not.a.path",
                "nested": {"id.$": "$.id", "list": [{"x.$": "$.items[0].name"}, 7]},
            },
        }
    )
    document = {"id": "o1", "items": [{"name": "a"}, {"name": "b"}], "odd key": True}

    result, _, _ = run(definition, document)

    assert result.output == {
        "second": "b",
        "odd": True,
        "whole": document,
        "literal": "$.not.a.path",
        "nested": {"id": "o1", "list": [{"x": "a"}, 7]},
    }


def test_a_missing_path_fails_the_execution_with_states_runtime_despite_catch_all():
    # Given a task whose Parameters reference a field the input lacks, and a catch-all
    functions = Functions(Work={"ok": True})
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                Parameters={"FunctionName": FN + "Work", "Payload": {"id.$": "$.missing"}},
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                End=True,
            ),
            "Caught": {"Type": "Succeed"},
        },
    }

    # When it runs
    result, _, _ = run(definition, {"present": 1}, invoke=functions)

    # Then States.Runtime is not caught, and the function was never called
    assert result.status == "FAILED"
    assert result.error == "States.Runtime"
    assert "$.missing" in (result.cause or "")
    assert functions.calls == []


def test_result_path_into_a_non_object_input_is_a_runtime_error():
    result, _, _ = run(single({"Type": "Pass", "Result": 1, "ResultPath": "$.x"}), "a string")
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_input_path_that_selects_nothing_is_a_runtime_error():
    result, _, _ = run(single({"Type": "Pass", "InputPath": "$.nope"}), {"a": 1})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


# --------------------------------------------------------------------------------------------
# Context object and intrinsic functions
# --------------------------------------------------------------------------------------------


def test_context_object_fields():
    definition = single(
        {
            "Type": "Pass",
            "Parameters": {
                "id.$": "$$.Execution.Id",
                "name.$": "$$.Execution.Name",
                "input.$": "$$.Execution.Input",
                "inputField.$": "$$.Execution.Input.order",
                "start.$": "$$.Execution.StartTime",
                "state.$": "$$.State.Name",
                "entered.$": "$$.State.EnteredTime",
                "retries.$": "$$.State.RetryCount",
                "machine.$": "$$.StateMachine.Id",
                "machineName.$": "$$.StateMachine.Name",
            },
        },
        name="Describe",
    )

    result, _, _ = run(definition, {"order": "o1"})

    assert result.output == {
        "id": EXECUTION_ARN,
        "name": "run-1",
        "input": {"order": "o1"},
        "inputField": "o1",
        "start": "2030-01-01T00:00:00.000Z",
        "state": "Describe",
        "entered": "2030-01-01T00:00:00.000Z",
        "retries": 0,
        "machine": MACHINE_ARN,
        "machineName": "Orders",
    }


INTRINSIC_INPUT = {
    "name": "Ann",
    "amount": 12.5,
    "flag": True,
    "json": '{"k": [1, 2]}',
    "obj": {"b": 1, "a": [True, None]},
    "other": {"a": "replaced", "c": 3},
    "nums": [1, 2, 3, 4, 5],
    "dups": [1, 2, 1, {"x": 1}, {"x": 1}],
    "count": 5,
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (
            "States.Format('Hello {}, you owe {} ({})', $.name, $.amount, $.flag)",
            "Hello Ann, you owe 12.5 (true)",
        ),
        ("States.Format('braces \\{\\} and \\'{}\\'', $.name)", "braces {} and 'Ann'"),
        ("States.Format('run {}', $$.Execution.Name)", "run run-1"),
        ("States.StringToJson($.json)", {"k": [1, 2]}),
        ("States.JsonToString($.obj)", '{"b":1,"a":[true,null]}'),
        (
            "States.Array($.name, 1, 'x', true, null, States.Array())",
            ["Ann", 1, "x", True, None, []],
        ),
        ("States.ArrayPartition($.nums, 2)", [[1, 2], [3, 4], [5]]),
        ("States.ArrayContains($.nums, 3)", True),
        ("States.ArrayContains($.nums, 9)", False),
        ("States.ArrayRange(1, 9, 3)", [1, 4, 7]),
        ("States.ArrayGetItem($.nums, 1)", 2),
        ("States.ArrayLength($.nums)", 5),
        ("States.ArrayUnique($.dups)", [1, 2, {"x": 1}]),
        ("States.Base64Encode($.name)", "QW5u"),
        ("States.Base64Decode('QW5u')", "Ann"),
        ("States.Hash($.name, 'SHA-256')", hashlib.sha256(b"Ann").hexdigest()),
        ("States.JsonMerge($.obj, $.other, false)", {"b": 1, "a": "replaced", "c": 3}),
        ("States.MathAdd($.count, -1)", 4),
        ("States.ArrayLength(States.ArrayPartition($.nums, 2))", 3),
    ],
)
def test_intrinsic_functions(expression: str, expected: Any):
    definition = single({"Type": "Pass", "Parameters": {"value.$": expression}})
    result, _, _ = run(definition, INTRINSIC_INPUT)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {"value": expected}


def test_states_uuid_gives_a_fresh_v4_uuid_each_time():
    definition = single(
        {"Type": "Pass", "Parameters": {"a.$": "States.UUID()", "b.$": "States.UUID()"}}
    )
    result, _, _ = run(definition, {})
    pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert pattern.match(result.output["a"]) and pattern.match(result.output["b"])
    assert result.output["a"] != result.output["b"]


def test_a_failing_intrinsic_raises_states_intrinsic_failure_which_catch_sees():
    functions = Functions(Work={})
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                Parameters={"FunctionName": FN + "Work", "Payload.$": "States.StringToJson($.s)"},
                Catch=[{"ErrorEquals": ["States.IntrinsicFailure"], "Next": "Handled"}],
                End=True,
            ),
            "Handled": {"Type": "Pass", "End": True},
        },
    }

    result, events, _ = run(definition, {"s": "not json"}, invoke=functions)

    assert result.status == "SUCCEEDED"
    assert result.output["Error"] == "States.IntrinsicFailure"
    assert entered(events) == ["T", "Handled"]
    assert functions.calls == []


# --------------------------------------------------------------------------------------------
# Choice
# --------------------------------------------------------------------------------------------

CHOICE_INPUT = {
    "name": "Ann",
    "other": "Bob",
    "amount": 12.5,
    "limit": 20,
    "flag": True,
    "yes": True,
    "nothing": None,
    "file": "report.pdf",
    "starred": "log-*",
    "when": "2030-01-01T10:00:00Z",
    "later": "2030-01-01T12:00:00.5+01:00",
}


@pytest.mark.parametrize(
    ("rule", "matches"),
    [
        ({"Variable": "$.name", "StringEquals": "Ann"}, True),
        ({"Variable": "$.amount", "StringEquals": "12.5"}, False),  # wrong type: false, no error
        ({"Variable": "$.name", "StringLessThan": "Bob"}, True),
        ({"Variable": "$.name", "StringGreaterThanEquals": "Ann"}, True),
        ({"Variable": "$.name", "StringEqualsPath": "$.other"}, False),
        ({"Variable": "$.name", "StringLessThanPath": "$.other"}, True),
        ({"Variable": "$.amount", "NumericEquals": 12.5}, True),
        ({"Variable": "$.amount", "NumericGreaterThan": 10}, True),
        ({"Variable": "$.amount", "NumericLessThanEqualsPath": "$.limit"}, True),
        ({"Variable": "$.flag", "NumericEquals": 1}, False),  # a boolean is not a number
        ({"Variable": "$.flag", "BooleanEquals": True}, True),
        ({"Variable": "$.flag", "BooleanEqualsPath": "$.yes"}, True),
        ({"Variable": "$.when", "TimestampEquals": "2030-01-01T10:00:00.000Z"}, True),
        ({"Variable": "$.when", "TimestampLessThan": "2030-01-01T09:00:00Z"}, False),
        ({"Variable": "$.when", "TimestampLessThanPath": "$.later"}, True),
        ({"Variable": "$.name", "TimestampEquals": "2030-01-01T10:00:00Z"}, False),
        ({"Variable": "$.file", "StringMatches": "*.pdf"}, True),
        ({"Variable": "$.file", "StringMatches": "*.doc"}, False),
        ({"Variable": "$.starred", "StringMatches": "log-\\*"}, True),
        ({"Variable": "$.file", "StringMatches": "log-\\*"}, False),
        ({"Variable": "$.missing", "IsPresent": False}, True),
        ({"Variable": "$.name", "IsPresent": True}, True),
        ({"Variable": "$.nothing", "IsNull": True}, True),
        ({"Variable": "$.name", "IsString": True}, True),
        ({"Variable": "$.flag", "IsNumeric": False}, True),
        ({"Variable": "$.amount", "IsNumeric": True}, True),
        ({"Variable": "$.flag", "IsBoolean": True}, True),
        ({"Variable": "$.when", "IsTimestamp": True}, True),
        ({"Variable": "$.name", "IsTimestamp": True}, False),
        ({"Variable": "$$.Execution.Name", "StringEquals": "run-1"}, True),
        (
            {
                "And": [
                    {"Variable": "$.name", "StringEquals": "Ann"},
                    {"Not": {"Variable": "$.amount", "NumericGreaterThan": 100}},
                ]
            },
            True,
        ),
        (
            {
                "Or": [
                    {"Variable": "$.name", "StringEquals": "Zed"},
                    {"Variable": "$.flag", "BooleanEquals": False},
                ]
            },
            False,
        ),
        # IsPresent guards a field that would otherwise be a runtime error.
        (
            {
                "And": [
                    {"Variable": "$.missing", "IsPresent": True},
                    {"Variable": "$.missing", "StringEquals": "x"},
                ]
            },
            False,
        ),
    ],
)
def test_choice_rules(rule: dict[str, Any], matches: bool):
    definition = {
        "StartAt": "Decide",
        "States": {
            "Decide": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": "yes", "End": True},
            "No": {"Type": "Pass", "Result": "no", "End": True},
        },
    }
    result, _, _ = run(definition, CHOICE_INPUT)
    assert result.status == "SUCCEEDED", result.cause
    assert result.output == ("yes" if matches else "no")


def test_choice_takes_the_first_matching_rule_and_applies_output_path():
    definition = {
        "StartAt": "Decide",
        "States": {
            "Decide": {
                "Type": "Choice",
                "OutputPath": "$.payload",
                "Choices": [
                    {"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Big"},
                    {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "Medium"},
                ],
            },
            "Big": {"Type": "Succeed"},
            "Medium": {"Type": "Succeed"},
        },
    }
    result, events, _ = run(definition, {"n": 10, "payload": {"p": 1}})
    assert entered(events) == ["Decide", "Big"]
    assert result.output == {"p": 1}


def test_choice_without_match_or_default_fails_with_no_choice_matched():
    definition = {
        "StartAt": "Decide",
        "States": {
            "Decide": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}],
            },
            "One": {"Type": "Succeed"},
        },
    }
    result, _, _ = run(definition, {"n": 2})
    assert (result.status, result.error) == ("FAILED", "States.NoChoiceMatched")


def test_choice_on_a_missing_variable_is_a_runtime_error():
    definition = {
        "StartAt": "Decide",
        "States": {
            "Decide": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "One"}],
                "Default": "One",
            },
            "One": {"Type": "Succeed"},
        },
    }
    result, _, _ = run(definition, {})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


# --------------------------------------------------------------------------------------------
# Wait, Succeed, Fail
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "document", "time_scale", "expected_sleep"),
    [
        ({"Seconds": 10}, {}, 1.0, 10.0),
        ({"Seconds": 10}, {}, 0.5, 5.0),
        ({"SecondsPath": "$.delay"}, {"delay": 7}, 1.0, 7.0),
        ({"Timestamp": "2030-01-01T00:01:00Z"}, {}, 1.0, 60.0),
        ({"TimestampPath": "$.at"}, {"at": "2030-01-01T00:00:30.000Z"}, 0.1, 3.0),
        ({"TimestampPath": "$.at"}, {"at": "2029-12-31T00:00:00Z"}, 1.0, 0.0),
    ],
)
def test_wait_schedules_the_scaled_delay(wait, document, time_scale, expected_sleep):
    result, events, clock = run(single({"Type": "Wait", **wait}), document, time_scale=time_scale)
    assert result.status == "SUCCEEDED"
    assert result.output == document
    assert clock.sleeps == [pytest.approx(expected_sleep)]
    assert types(events)[1:3] == ["WaitStateEntered", "WaitStateExited"]


def test_wait_seconds_path_must_select_a_non_negative_integer():
    result, _, _ = run(single({"Type": "Wait", "SecondsPath": "$.d"}), {"d": -1})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_succeed_applies_input_and_output_paths():
    definition = single({"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"})
    result, _, _ = run(definition, {"a": {"b": 3}})
    assert result.output == 3


def test_fail_state_fails_the_execution_with_its_error_and_cause():
    result, events, _ = run(single({"Type": "Fail", "Error": "Nope", "Cause": "because"}), {})
    assert (result.status, result.error, result.cause) == ("FAILED", "Nope", "because")
    assert types(events) == ["ExecutionStarted", "FailStateEntered", "ExecutionFailed"]
    assert events[-1]["executionFailedEventDetails"] == {"error": "Nope", "cause": "because"}


def test_fail_state_error_path_and_cause_path():
    definition = single(
        {
            "Type": "Fail",
            "ErrorPath": "$.code",
            "CausePath": "States.Format('order {} failed', $.id)",
        }
    )
    result, _, _ = run(definition, {"code": "Broken", "id": "o7"})
    assert (result.error, result.cause) == ("Broken", "order o7 failed")


# --------------------------------------------------------------------------------------------
# Tasks
# --------------------------------------------------------------------------------------------


def test_lambda_invoke_wraps_the_function_result_like_aws():
    functions = Functions(Work=lambda payload: {"doubled": payload["n"] * 2})
    definition = single(
        task(
            Parameters={"FunctionName": FN + "Work", "Payload": {"n.$": "$.n"}},
            ResultPath="$.r",
        )
    )

    result, events, _ = run(definition, {"n": 21}, invoke=functions)

    assert functions.calls == [("Work", {"n": 21}, None)]
    r = result.output["r"]
    assert r["Payload"] == {"doubled": 42}
    assert (r["StatusCode"], r["ExecutedVersion"]) == (200, "$LATEST")
    assert r["SdkHttpMetadata"]["HttpStatusCode"] == 200
    assert types(events) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    scheduled = events[2]["taskScheduledEventDetails"]
    assert (scheduled["resourceType"], scheduled["resource"], scheduled["region"]) == (
        "lambda",
        "invoke",
        "us-east-1",
    )
    assert json.loads(scheduled["parameters"]) == {
        "FunctionName": FN + "Work",
        "Payload": {"n": 21},
    }


def test_result_selector_picks_from_the_raw_task_result():
    functions = Functions(Work={"Status": "OK", "noise": 1})
    definition = single(task(ResultSelector={"status.$": "$.Payload.Status"}, ResultPath="$.out"))
    result, _, _ = run(definition, {"id": 1}, invoke=functions)
    assert result.output == {"id": 1, "out": {"status": "OK"}}


def test_a_function_arn_resource_returns_the_function_result_itself():
    functions = Functions(Direct=lambda payload: {"echo": payload})
    definition = single(
        {"Type": "Task", "Resource": FN + "Direct", "InputPath": "$.in", "ResultPath": "$.out"}
    )

    result, events, _ = run(definition, {"in": {"a": 1}}, invoke=functions)

    assert result.output == {"in": {"a": 1}, "out": {"echo": {"a": 1}}}
    assert functions.calls[0][:2] == ("Direct", {"a": 1})
    assert types(events)[2:5] == [
        "LambdaFunctionScheduled",
        "LambdaFunctionStarted",
        "LambdaFunctionSucceeded",
    ]
    assert events[2]["lambdaFunctionScheduledEventDetails"]["resource"] == FN + "Direct"


def test_task_failure_is_recorded_with_aws_detail_fields():
    boom = failure("PaymentDeclined", "card refused")
    result, events, _ = run(single(task()), {}, invoke=Functions(Work=boom))

    assert (result.status, result.error, result.cause) == ("FAILED", "PaymentDeclined", boom.cause)
    failed = next(e for e in events if e["type"] == "TaskFailed")
    assert failed["taskFailedEventDetails"] == {
        "resourceType": "lambda",
        "resource": "invoke",
        "error": "PaymentDeclined",
        "cause": boom.cause,
    }
    assert types(events)[-2:] == ["TaskFailed", "ExecutionFailed"]


def test_any_exception_from_invoke_becomes_a_task_error_named_after_its_class():
    class GatewayDown(Exception):
        pass

    result, _, _ = run(single(task()), {}, invoke=Functions(Work=GatewayDown("down")))

    assert result.error == "GatewayDown"
    cause = json.loads(result.cause or "")
    assert (cause["errorType"], cause["errorMessage"]) == ("GatewayDown", "down")
    assert isinstance(cause["stackTrace"], list)


def test_task_failure_from_exception_matches_lambda_error_shape():
    try:
        raise ValueError("bad order")
    except ValueError as exc:
        failure_ = TaskFailure.from_exception(exc)
    assert failure_.error == "ValueError"
    cause = json.loads(failure_.cause)
    assert cause["errorMessage"] == "bad order" and cause["errorType"] == "ValueError"
    assert any("raise ValueError" in line for line in cause["stackTrace"])


# --------------------------------------------------------------------------------------------
# Retry and Catch
# --------------------------------------------------------------------------------------------


def retry_catch_machine(retry: list[dict[str, Any]], catch_result_path: Any = "$.err"):
    return {
        "StartAt": "T",
        "States": {
            "T": task(
                Retry=retry,
                Catch=[
                    {
                        "ErrorEquals": ["States.ALL"],
                        "ResultPath": catch_result_path,
                        "Next": "Handled",
                    }
                ],
                Next="Done",
            ),
            "Handled": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
        },
    }


def test_retry_backs_off_then_catch_places_the_error_on_the_state_input():
    # Given a task that always fails and a retrier of 3 attempts from 2 s doubling
    boom = failure("Boom")
    functions = Functions(Work=boom)
    retry = [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}]

    # When it runs
    result, events, clock = run(retry_catch_machine(retry), {"id": "o1"}, invoke=functions)

    # Then it was tried 1 + 3 times, waiting 2, 4 and 8 s, and the catcher merged the error
    assert len(functions.calls) == 4
    assert clock.sleeps == [2, 4, 8]
    assert result.status == "SUCCEEDED"
    assert result.output == {"id": "o1", "err": {"Error": "Boom", "Cause": boom.cause}}
    assert entered(events) == ["T", "Handled"]
    assert types(events).count("TaskFailed") == 4


def test_retry_intervals_follow_time_scale():
    functions = Functions(Work=failure("Boom"))
    retry = [{"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "MaxAttempts": 3, "BackoffRate": 2}]
    _, _, clock = run(retry_catch_machine(retry), {}, invoke=functions, time_scale=0.05)
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_retry_defaults_are_one_second_three_attempts_rate_two():
    functions = Functions(Work=failure("Boom"))
    _, _, clock = run(retry_catch_machine([{"ErrorEquals": ["Boom"]}]), {}, invoke=functions)
    assert clock.sleeps == [1, 2, 4]


def test_max_delay_seconds_caps_the_interval():
    retry = [
        {
            "ErrorEquals": ["Boom"],
            "IntervalSeconds": 2,
            "BackoffRate": 3,
            "MaxAttempts": 3,
            "MaxDelaySeconds": 5,
        }
    ]
    functions = Functions(Work=failure("Boom"))
    _, _, clock = run(retry_catch_machine(retry), {}, invoke=functions)
    assert clock.sleeps == [2, 5, 5]


def test_full_jitter_draws_each_interval_between_zero_and_the_backoff_value():
    retry = [
        {"ErrorEquals": ["Boom"], "IntervalSeconds": 4, "MaxAttempts": 3, "JitterStrategy": "FULL"}
    ]
    functions = Functions(Work=failure("Boom"))
    _, _, clock = run(retry_catch_machine(retry), {}, invoke=functions, rng=random.Random(7))
    assert len(clock.sleeps) == 3
    assert all(
        0 <= slept <= ceiling for slept, ceiling in zip(clock.sleeps, [4, 8, 16], strict=True)
    )
    assert clock.sleeps != [4, 8, 16]


def test_max_attempts_zero_never_retries():
    functions = Functions(Work=failure("Boom"))
    retry = [{"ErrorEquals": ["Boom"], "MaxAttempts": 0}]
    result, _, clock = run(retry_catch_machine(retry), {}, invoke=functions)
    assert len(functions.calls) == 1 and clock.sleeps == []
    assert result.output["err"]["Error"] == "Boom"


def test_an_error_no_retrier_matches_goes_straight_to_catch():
    functions = Functions(Work=failure("Declined"))
    retry = [{"ErrorEquals": ["Transient"], "MaxAttempts": 5}]
    result, _, clock = run(retry_catch_machine(retry), {}, invoke=functions)
    assert len(functions.calls) == 1 and clock.sleeps == []
    assert result.output["err"]["Error"] == "Declined"


def test_only_the_first_matching_retrier_counts_even_when_exhausted():
    functions = Functions(Work=failure("A"))
    retry = [
        {"ErrorEquals": ["A"], "MaxAttempts": 1},
        {"ErrorEquals": ["States.ALL"], "MaxAttempts": 5},
    ]
    _, _, clock = run(retry_catch_machine(retry), {}, invoke=functions)
    assert len(functions.calls) == 2 and clock.sleeps == [1]


def test_each_retrier_counts_its_own_attempts_and_retry_count_counts_all():
    # Errors alternate A, B, A, B, then the call succeeds.
    functions = Functions(Work=[failure("A"), failure("B"), failure("A"), failure("B"), {"ok": 1}])
    retry = [
        {"ErrorEquals": ["A"], "IntervalSeconds": 1, "MaxAttempts": 2},
        {"ErrorEquals": ["B"], "IntervalSeconds": 5, "MaxAttempts": 2},
    ]
    definition = single(
        task(
            Parameters={"FunctionName": FN + "Work", "Payload": {"try.$": "$$.State.RetryCount"}},
            Retry=retry,
        )
    )

    result, _, clock = run(definition, {}, invoke=functions)

    assert result.status == "SUCCEEDED"
    assert clock.sleeps == [1, 5, 2, 10]
    assert [p["try"] for p in functions.payloads("Work")] == [0, 1, 2, 3, 4]


def test_catch_result_path_null_keeps_the_input_unchanged():
    functions = Functions(Work=failure("Boom"))
    result, _, _ = run(retry_catch_machine([], catch_result_path=None), {"id": 1}, invoke=functions)
    assert result.output == {"id": 1}


def test_catch_default_result_path_replaces_the_input_with_the_error():
    functions = Functions(Work=failure("Boom", "x"))
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(Catch=[{"ErrorEquals": ["Boom"], "Next": "Handled"}], End=True),
            "Handled": {"Type": "Pass", "End": True},
        },
    }
    result, _, _ = run(definition, {"id": 1}, invoke=functions)
    assert set(result.output) == {"Error", "Cause"}


def test_first_matching_catcher_wins():
    functions = Functions(Work=failure("Specific"))
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                Catch=[
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["Specific", "Other2"], "Next": "Right"},
                    {"ErrorEquals": ["States.ALL"], "Next": "Wrong"},
                ],
                End=True,
            ),
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
            "Right": {"Type": "Succeed"},
        },
    }
    result, _, _ = run(definition, {}, invoke=functions)
    assert result.status == "SUCCEEDED"


def test_uncaught_task_error_fails_the_execution_with_the_function_error():
    boom = failure("Boom")
    definition = single(task(Catch=[{"ErrorEquals": ["Other"], "Next": "X"}]))
    definition["States"]["X"] = {"Type": "Succeed"}
    result, _, _ = run(definition, {}, invoke=Functions(Work=boom))
    assert (result.status, result.error, result.cause) == ("FAILED", "Boom", boom.cause)


@pytest.fixture
def release_blocked_functions():
    gate = threading.Event()
    yield gate
    gate.set()  # lets abandoned helper threads finish


def blocking(gate: threading.Event, seconds: float = 5.0):
    def call(payload: Any) -> Any:
        gate.wait(seconds)
        return {"late": True}

    return call


def test_task_timeout_raises_states_timeout_which_task_failed_does_not_match(
    release_blocked_functions,
):
    # Given a task with TimeoutSeconds 1 whose function hangs; scaled, 1 s becomes 20 ms
    functions = Functions(Slow=blocking(release_blocked_functions))
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                "Slow",
                TimeoutSeconds=1,
                Retry=[{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 3}],
                Catch=[{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.err", "Next": "Late"}],
                End=True,
            ),
            "Late": {"Type": "Succeed"},
        },
    }

    # When it runs
    started = time.monotonic()
    result, events, _ = run(definition, {}, invoke=functions, time_scale=0.02, real_sleep=True)

    # Then the task timed out once, was not retried by States.TaskFailed, and was caught
    assert time.monotonic() - started < 2
    assert result.status == "SUCCEEDED"
    assert result.output["err"]["Error"] == "States.Timeout"
    assert len(functions.calls) == 1
    assert functions.calls[0][2] == pytest.approx(0.02)  # the function is told its time budget
    assert "TaskTimedOut" in types(events)


def test_states_task_failed_matches_function_errors():
    functions = Functions(Work=[failure("Anything"), {"ok": True}])
    definition = single(task(Retry=[{"ErrorEquals": ["States.TaskFailed"], "MaxAttempts": 1}]))
    result, _, clock = run(definition, {}, invoke=functions)
    assert result.status == "SUCCEEDED" and clock.sleeps == [1]


def test_states_all_matches_a_timeout(release_blocked_functions):
    functions = Functions(Slow=blocking(release_blocked_functions))
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(
                "Slow",
                TimeoutSeconds=1,
                Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
                End=True,
            ),
            "Caught": {"Type": "Succeed"},
        },
    }
    result, _, _ = run(definition, {}, invoke=functions, time_scale=0.02, real_sleep=True)
    assert result.status == "SUCCEEDED" and result.output["Error"] == "States.Timeout"


# --------------------------------------------------------------------------------------------
# Parallel
# --------------------------------------------------------------------------------------------


def test_parallel_runs_branches_on_the_same_input_and_lists_their_outputs():
    functions = Functions(Price=lambda p: {"price": p["qty"] * 3})
    definition = single(
        {
            "Type": "Parallel",
            "Branches": [
                {"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}},
                {
                    "StartAt": "Call",
                    "States": {
                        "Call": {
                            "Type": "Task",
                            "Resource": FN + "Price",
                            "End": True,
                        }
                    },
                },
            ],
            "ResultSelector": {"echo.$": "$[0]", "price.$": "$[1].price"},
            "ResultPath": "$.parallel",
        }
    )

    result, events, _ = run(definition, {"qty": 2}, invoke=functions)

    assert result.status == "SUCCEEDED"
    assert result.output == {"qty": 2, "parallel": {"echo": {"qty": 2}, "price": 6}}
    assert {"ParallelStateStarted", "ParallelStateSucceeded"} <= set(types(events))
    ids = [e["id"] for e in events]
    assert ids == list(range(1, len(events) + 1))


def test_a_failed_branch_stops_the_others_and_the_parallel_catch_handles_it():
    # Given one branch that fails after 0.1 s and one that would wait 30 s (real, interruptible)
    broke = failure("BranchBroke")

    def fail_soon(payload: Any) -> Any:
        time.sleep(0.1)
        return broke

    functions = Functions(Breaks=fail_soon)
    definition = {
        "StartAt": "Both",
        "States": {
            "Both": {
                "Type": "Parallel",
                "Branches": [
                    {
                        "StartAt": "Bad",
                        "States": {"Bad": {"Type": "Task", "Resource": FN + "Breaks", "End": True}},
                    },
                    {
                        "StartAt": "Slow",
                        "States": {"Slow": {"Type": "Wait", "Seconds": 30, "End": True}},
                    },
                ],
                "Catch": [
                    {"ErrorEquals": ["BranchBroke"], "ResultPath": "$.err", "Next": "Handled"}
                ],
                "End": True,
            },
            "Handled": {"Type": "Succeed"},
        },
    }

    # When it runs
    started = time.monotonic()
    result, events, _ = run(definition, {"a": 1}, invoke=functions, real_sleep=True)

    # Then the waiting branch was aborted and the Parallel's catcher took the branch error
    assert time.monotonic() - started < 5
    assert result.status == "SUCCEEDED"
    assert result.output == {"a": 1, "err": {"Error": "BranchBroke", "Cause": broke.cause}}
    assert "WaitStateAborted" in types(events)
    assert "ParallelStateFailed" in types(events)


def test_retrying_a_parallel_state_runs_every_branch_again():
    functions = Functions(Flaky=[failure("Transient"), {"ok": True}], Steady={"ok": True})
    branch = {"StartAt": "Call", "States": {"Call": {"Type": "Task", "End": True}}}
    flaky = copy.deepcopy(branch)
    flaky["States"]["Call"]["Resource"] = FN + "Flaky"
    steady = copy.deepcopy(branch)
    steady["States"]["Call"]["Resource"] = FN + "Steady"
    definition = single(
        {
            "Type": "Parallel",
            "Branches": [flaky, steady],
            "Retry": [{"ErrorEquals": ["Transient"], "IntervalSeconds": 3}],
        }
    )

    result, _, clock = run(definition, {}, invoke=functions)

    assert result.status == "SUCCEEDED"
    assert clock.sleeps == [3]
    assert len(functions.payloads("Flaky")) == 2
    # Steady ran in the first attempt (unless the failure stopped it first) and in the retry.
    assert 1 <= len(functions.payloads("Steady")) <= 2


def test_a_retried_parallel_records_parallel_state_failed_only_when_it_fails_for_good():
    # Given a Parallel whose only branch fails every time, retried twice
    functions = Functions(Flaky=failure("Transient"))
    call = {"Type": "Task", "Resource": FN + "Flaky", "End": True}
    branch = {"StartAt": "Call", "States": {"Call": call}}
    definition = single(
        {
            "Type": "Parallel",
            "Branches": [branch],
            "Retry": [{"ErrorEquals": ["Transient"], "IntervalSeconds": 1, "MaxAttempts": 2}],
        }
    )

    # When it runs
    result, events, _ = run(definition, {}, invoke=functions)

    # Then each attempt starts the branches again, and only the last one is recorded as failed
    # (as AWS records it: no ParallelStateFailed for an attempt that a retrier runs again)
    assert (result.status, result.error) == ("FAILED", "Transient")
    parallel = [t for t in types(events) if t.startswith("ParallelState")]
    assert parallel == [
        "ParallelStateEntered",
        "ParallelStateStarted",
        "ParallelStateStarted",
        "ParallelStateStarted",
        "ParallelStateFailed",
    ]


# --------------------------------------------------------------------------------------------
# Execution outcome, stop and history
# --------------------------------------------------------------------------------------------


def test_execution_timeout_times_out_a_long_wait():
    definition = {**single({"Type": "Wait", "Seconds": 100}), "TimeoutSeconds": 10}
    result, events, clock = run(definition, {})
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")
    assert clock.sleeps == [10]
    assert types(events)[-1] == "ExecutionTimedOut"


def test_a_stop_during_a_wait_aborts_the_execution():
    stop = StopSignal()
    clock = FakeClock()

    def sleep_then_stop(seconds: float) -> None:
        clock.sleep(seconds)
        stop.set("Operator", "stopped by a test")

    definition = {
        "StartAt": "W",
        "States": {
            "W": {"Type": "Wait", "Seconds": 5, "Next": "After"},
            "After": {"Type": "Pass", "End": True},
        },
    }
    interpreter = StateMachineInterpreter(definition, invoke=Functions(), sleep=sleep_then_stop)
    events: list[dict[str, Any]] = []

    result = interpreter.run({}, on_event=events.append, stop=stop)

    assert (result.status, result.error, result.cause) == (
        "ABORTED",
        "Operator",
        "stopped by a test",
    )
    assert types(events)[-2:] == ["WaitStateAborted", "ExecutionAborted"]
    assert "After" not in entered(events)


def test_a_stop_while_a_task_runs_aborts_without_waiting_for_the_function(
    release_blocked_functions,
):
    stop = StopSignal()
    functions = Functions(Slow=blocking(release_blocked_functions, 10))
    threading.Timer(0.05, stop.set).start()
    started = time.monotonic()
    result, events, _ = run(single(task("Slow")), {}, invoke=functions, stop=stop, real_sleep=True)
    assert result.status == "ABORTED"
    assert time.monotonic() - started < 2
    assert types(events)[-2:] == ["TaskStateAborted", "ExecutionAborted"]


def test_history_events_chain_and_carry_aws_detail_names():
    definition = {
        "StartAt": "P",
        "States": {
            "P": {"Type": "Pass", "Next": "C"},
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "S"}],
            },
            "S": {"Type": "Succeed"},
        },
    }
    result, events, _ = run(definition, {"a": 1})

    assert result.status == "SUCCEEDED"
    assert types(events) == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        "ChoiceStateEntered",
        "ChoiceStateExited",
        "SucceedStateEntered",
        "SucceedStateExited",
        "ExecutionSucceeded",
    ]
    for previous, event in itertools.pairwise(events):
        assert event["id"] == previous["id"] + 1
        assert event["previousEventId"] == previous["id"]
        assert isinstance(event["timestamp"], datetime)
    assert events[0]["executionStartedEventDetails"]["input"] == '{"a":1}'
    assert events[1]["stateEnteredEventDetails"]["name"] == "P"
    assert json.loads(events[2]["stateExitedEventDetails"]["output"]) == {"a": 1}
    assert json.loads(events[-1]["executionSucceededEventDetails"]["output"]) == {"a": 1}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def pass_end(**extra: Any) -> dict[str, Any]:
    return {"Type": "Pass", "End": True, **extra}


@pytest.mark.parametrize(
    ("definition", "error", "fragment"),
    [
        (
            {"StartAt": "Each", "States": {"Each": {"Type": "Map", "End": True}}},
            UnsupportedFeature,
            "'Each': the Map state",
        ),
        (
            single(
                {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "Parameters": {}}
            ),
            UnsupportedFeature,
            "arn:aws:states:::dynamodb:putItem",
        ),
        (
            single(
                {
                    "Type": "Task",
                    "Resource": LAMBDA_INVOKE + ".waitForTaskToken",
                    "Parameters": {"FunctionName": "f"},
                }
            ),
            UnsupportedFeature,
            "callback",
        ),
        ({**single(pass_end()), "QueryLanguage": "JSONata"}, UnsupportedFeature, "JSONata"),
        (single({"Type": "Pass", "QueryLanguage": "JSONata"}), UnsupportedFeature, "JSONata"),
        (single({"Type": "Pass", "Assign": {"x": 1}}), UnsupportedFeature, "Assign"),
        (single(task(HeartbeatSeconds=5)), UnsupportedFeature, "heartbeat"),
        (
            single(task(Parameters={"FunctionName": "f", "Qualifier": "live"})),
            UnsupportedFeature,
            "Qualifier",
        ),
        (
            single({"Type": "Pass", "Parameters": {"x.$": "$..price"}}),
            UnsupportedFeature,
            "JSONPath",
        ),
        (single({"Type": "Pass", "InputPath": "$.items[*]"}), UnsupportedFeature, "JSONPath"),
        (
            single({"Type": "Pass", "Parameters": {"x.$": "$.a[?(@.b)]"}}),
            UnsupportedFeature,
            "JSONPath",
        ),
        (
            single({"Type": "Pass", "Parameters": {"x.$": "States.StringSplit($.a, ',')"}}),
            UnsupportedFeature,
            "States.StringSplit",
        ),
        (
            single({"Type": "Pass", "Parameters": {"x.$": "States.Nope()"}}),
            UnsupportedFeature,
            "States.Nope",
        ),
        (
            single({"Type": "Pass", "Parameters": {"x.$": "$$.Task.Token"}}),
            UnsupportedFeature,
            "$$.Task.Token",
        ),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nowhere"}}},
            InvalidDefinition,
            "'Nowhere'",
        ),
        ({"States": {"A": pass_end()}}, InvalidDefinition, "StartAt"),
        ({"StartAt": "B", "States": {"A": pass_end()}}, InvalidDefinition, "'B'"),
        (
            {"StartAt": "A", "States": {"A": pass_end(), "Orphan": pass_end()}},
            InvalidDefinition,
            "Orphan",
        ),
        (single({"Type": "Pass", "Next": "Only"}), InvalidDefinition, "Next and End"),
        (
            {"StartAt": "A", "States": {"A": {"Type": "Pass"}}},
            InvalidDefinition,
            "Next and End",
        ),
        (single({"Type": "Pass", "Colour": "red"}), InvalidDefinition, "'Colour'"),
        (
            single(task(Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])),
            InvalidDefinition,
            "must be the last",
        ),
        (
            {
                "StartAt": "T",
                "States": {
                    "T": task(Catch=[{"ErrorEquals": ["States.ALL", "X"], "Next": "E"}], End=True),
                    "E": {"Type": "Succeed"},
                },
            },
            InvalidDefinition,
            "alone",
        ),
        (
            {
                "StartAt": "T",
                "States": {"T": task(Catch=[{"ErrorEquals": ["X"]}], End=True)},
            },
            InvalidDefinition,
            "needs Next",
        ),
        (single(task(Retry=[{"ErrorEquals": ["States.Made.Up"]}])), InvalidDefinition, "Made.Up"),
        (
            single(task(Retry=[{"ErrorEquals": ["X"], "BackoffRate": 0.5}])),
            InvalidDefinition,
            "Backoff",
        ),
        (
            single(task(Retry=[{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}])),
            InvalidDefinition,
            "JitterStrategy",
        ),
        (
            single(task(Parameters={"Payload": {}})),
            InvalidDefinition,
            "FunctionName",
        ),
        (
            single({"Type": "Wait", "Seconds": 1, "Timestamp": "2030-01-01T00:00:00Z"}),
            InvalidDefinition,
            "exactly one",
        ),
        (single({"Type": "Wait", "Timestamp": "2030-01-01 00:00"}), InvalidDefinition, "RFC 3339"),
        (
            {
                "StartAt": "C",
                "States": {
                    "C": {
                        "Type": "Choice",
                        "Choices": [
                            {"Variable": "$.a", "StringEquals": "x", "IsNull": True, "Next": "E"}
                        ],
                    },
                    "E": {"Type": "Succeed"},
                },
            },
            InvalidDefinition,
            "exactly one comparison",
        ),
        (
            {
                "StartAt": "C",
                "States": {
                    "C": {"Type": "Choice", "Choices": [{"Variable": "$.a", "IsNull": True}]}
                },
            },
            InvalidDefinition,
            "needs Next",
        ),
        (
            single(
                {
                    "Type": "Parallel",
                    "Branches": [{"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}],
                }
            ),
            InvalidDefinition,
            "'Y'",
        ),
        (
            single({"Type": "Pass", "Parameters": {"x.$": "States.Format('{} {}', $.a)"}}),
            InvalidDefinition,
            "placeholders",
        ),
        (
            single({"Type": "Pass", "Parameters": {"x.$": "States.Array($.a"}}),
            InvalidDefinition,
            "intrinsic",
        ),
        (single({"Type": "Pass", "Parameters": {"x.$": "a.b"}}), InvalidDefinition, "neither"),
        (
            single({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
            InvalidDefinition,
            "exclude",
        ),
    ],
)
def test_validation_rejects_with_the_feature_named(definition, error, fragment):
    with pytest.raises(error) as raised:
        validate_definition(definition)
    assert fragment in str(raised.value)


def test_unsupported_features_name_the_state():
    definition = {"StartAt": "Fan", "States": {"Fan": {"Type": "Map", "End": True}}}
    with pytest.raises(UnsupportedFeature) as raised:
        validate_definition(definition)
    assert (raised.value.state, raised.value.feature) == ("Fan", "Map")
    assert isinstance(raised.value, ValueError)


def test_the_interpreter_refuses_an_invalid_definition_up_front():
    with pytest.raises(InvalidDefinition):
        StateMachineInterpreter({"StartAt": "X", "States": {}}, invoke=Functions())


# --------------------------------------------------------------------------------------------
# The project's own state machine
# --------------------------------------------------------------------------------------------

PROJECT_FUNCTIONS = ("Payment", "ReleaseStock", "Shipping", "ManualIntervention")


@pytest.fixture(scope="module")
def fulfilment_definition() -> dict[str, Any]:
    text = (ROOT / "statemachine" / "order_fulfilment.asl.json").read_text()
    for name in PROJECT_FUNCTIONS:
        text = text.replace("${" + name + "FunctionArn}", FN + name)
    assert "${" not in text, "a placeholder was left unsubstituted"
    return json.loads(text)


def project_functions(**overrides: Any) -> Functions:
    outcomes: dict[str, Any] = {
        "Payment": lambda p: {"OrderId": p["OrderId"], "Payment": {"TransactionId": "tx-1"}},
        "Shipping": lambda p: {"OrderId": p["OrderId"], "Shipment": {"TrackingNumber": "TRK"}},
        "ReleaseStock": {"Status": "PAYMENT_FAILED"},
        "ManualIntervention": {"Status": "MANUAL_INTERVENTION"},
    }
    outcomes.update(overrides)
    return Functions(**outcomes)


def run_fulfilment(definition: dict[str, Any], functions: Functions):
    return run(definition, {"OrderId": "o-1", "Attempt": 1}, invoke=functions, time_scale=0.05)


def test_fulfilment_paid_and_shipped_ends_at_order_shipped(fulfilment_definition):
    functions = project_functions()

    result, events, clock = run_fulfilment(fulfilment_definition, functions)

    assert result.status == "SUCCEEDED"
    assert entered(events) == ["ProcessPayment", "ShipOrder", "OrderShipped"]
    assert result.output == {
        "OrderId": "o-1",
        "Attempt": 1,
        "PaymentResult": {"Payment": {"TransactionId": "tx-1"}},
        "ShipmentResult": {"Shipment": {"TrackingNumber": "TRK"}},
    }
    assert functions.payloads("Payment") == [{"OrderId": "o-1", "Attempt": 1, "RetryCount": 0}]
    assert clock.sleeps == []


def test_fulfilment_retries_a_gateway_outage_with_backoff_and_retry_count(fulfilment_definition):
    outage = failure("PaymentGatewayUnavailable", "gateway timeout")
    approved = {"Payment": {"TransactionId": "tx-9"}}
    functions = project_functions(Payment=[outage, outage, approved])

    result, events, clock = run_fulfilment(fulfilment_definition, functions)

    assert result.status == "SUCCEEDED"
    assert entered(events)[-1] == "OrderShipped"
    assert clock.sleeps == pytest.approx([2 * 0.05, 4 * 0.05])
    assert [p["RetryCount"] for p in functions.payloads("Payment")] == [0, 1, 2]


def test_fulfilment_gives_up_after_three_retries_and_releases_stock(fulfilment_definition):
    outage = failure("PaymentGatewayUnavailable", "gateway timeout")
    functions = project_functions(Payment=outage)

    result, events, clock = run_fulfilment(fulfilment_definition, functions)

    assert len(functions.payloads("Payment")) == 1 + 3
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])
    assert functions.payloads("ReleaseStock") == [
        {
            "OrderId": "o-1",
            "Attempt": 1,
            "Error": "PaymentGatewayUnavailable",
            "Cause": outage.cause,
        }
    ]
    assert result.status == "SUCCEEDED"
    assert entered(events)[-1] == "PaymentFailed"
    assert result.output["Compensation"] == {"Status": "PAYMENT_FAILED"}


def test_fulfilment_does_not_retry_a_decline(fulfilment_definition):
    declined = failure("PaymentDeclined", "insufficient funds")
    functions = project_functions(Payment=declined)

    result, events, clock = run_fulfilment(fulfilment_definition, functions)

    assert len(functions.payloads("Payment")) == 1
    assert clock.sleeps == []
    assert functions.payloads("ReleaseStock") == [
        {"OrderId": "o-1", "Attempt": 1, "Error": "PaymentDeclined", "Cause": declined.cause}
    ]
    assert (result.status, entered(events)[-1]) == ("SUCCEEDED", "PaymentFailed")
    assert functions.payloads("Shipping") == []


def test_fulfilment_flags_manual_intervention_when_no_carrier_is_available(fulfilment_definition):
    unavailable = failure("CarrierUnavailable", "all carriers down")
    functions = project_functions(Shipping=unavailable)

    result, events, clock = run_fulfilment(fulfilment_definition, functions)

    assert len(functions.payloads("Shipping")) == 1 + 2
    assert clock.sleeps == pytest.approx([0.1, 0.2])
    assert functions.payloads("ManualIntervention") == [
        {"OrderId": "o-1", "Attempt": 1, "Error": "CarrierUnavailable", "Cause": unavailable.cause}
    ]
    assert (result.status, entered(events)[-1]) == ("SUCCEEDED", "ManualIntervention")
    assert result.output["Review"] == {"Status": "MANUAL_INTERVENTION"}


def test_fulfilment_fails_when_stock_cannot_be_released(fulfilment_definition):
    functions = project_functions(
        Payment=failure("PaymentDeclined"), ReleaseStock=failure("ReleaseFailed", "table gone")
    )

    result, events, clock = run_fulfilment(fulfilment_definition, functions)

    assert len(functions.payloads("ReleaseStock")) == 1 + 6
    assert clock.sleeps == pytest.approx([0.05 * 2 * 2**n for n in range(6)])
    assert (result.status, result.error) == ("FAILED", "CompensationFailed")
    assert entered(events)[-1] == "CompensationFailed"


def test_execution_timeout_also_cuts_a_running_task(release_blocked_functions):
    # TimeoutSeconds 1 scaled by 0.02 is a 20 ms budget; the function would hang for 5 s.
    functions = Functions(Slow=blocking(release_blocked_functions))
    definition = {**single(task("Slow")), "TimeoutSeconds": 1}
    started = time.monotonic()
    result, events, _ = run(definition, {}, invoke=functions, time_scale=0.02, real_sleep=True)
    assert time.monotonic() - started < 2
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")
    assert types(events)[-1] == "ExecutionTimedOut"


def test_timeout_seconds_path_reads_the_task_budget_from_the_input(release_blocked_functions):
    functions = Functions(Slow=blocking(release_blocked_functions))
    definition = single(task("Slow", TimeoutSecondsPath="$.budget"))
    result, _, _ = run(
        definition, {"budget": 1}, invoke=functions, time_scale=0.02, real_sleep=True
    )
    assert (result.status, result.error) == ("FAILED", "States.Timeout")
    assert functions.calls[0][2] == pytest.approx(0.02)


def test_end_false_next_to_next_is_accepted():
    definition = {
        "StartAt": "A",
        "States": {"A": {"Type": "Pass", "Next": "B", "End": False}, "B": pass_end()},
    }
    validate_definition(definition)


def test_a_function_that_edits_its_event_does_not_change_the_execution_data():
    def vandal(payload: Any) -> Any:
        payload["id"] = "changed"
        return {"ok": True}

    definition = single({"Type": "Task", "Resource": FN + "Vandal", "ResultPath": "$.r"})
    result, _, _ = run(definition, {"id": "o1"}, invoke=Functions(Vandal=vandal))
    assert result.output == {"id": "o1", "r": {"ok": True}}
