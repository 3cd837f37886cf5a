"""Differential test: the local ASL interpreter against moto's, an independent implementation.

moto's ``moto.stepfunctions.parser`` is a copy of LocalStack's ASL interpreter, which LocalStack
checks against snapshots recorded on AWS. Every case of ``asl_differential_cases.json`` (the
project's own state machine as template.yaml deploys it, and small definitions covering Retry,
Catch, Choice, Parallel, Map, Wait, intrinsics and the data-flow fields) runs through both, with
each Lambda function scripted the same way, and must end the same: status, output, error and
cause, the sequence of history events (states entered and exited with their data, every task
attempt and failure, so retries and catches show), the functions' payloads and the waits asked
for.

Where the two differ, the AWS documentation decides: a project bug is fixed; anything else is a
named entry of KNOWN_DIFFERENCES, which asserts that the difference is still exactly there (so a
fix on either side makes the case fail and the entry be revisited), see docs/stepfunctions.md.

moto runs in-process (mock_aws, no Docker, no network). One call point is patched, pinned to
moto 5.2.5: ``lambda_eval_utils._invoke_lambda_function``, through which both Lambda task kinds
(the lambda:invoke integration and a function ARN as Resource) call Lambda. Retry sleeps and
Wait states are recorded instead of slept on both sides, so time does not matter.
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import re
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import moto
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import wait_function

from pipeline.local.cfn import load_template
from pipeline.local.stepfunctions.asl import (
    StateMachineInterpreter,
    TaskFailure,
    UnsupportedFeature,
)

ROOT = Path(__file__).resolve().parents[2]
CASES_FILE = Path(__file__).with_name("asl_differential_cases.json")
MOTO_VERSION = "5.2.5"

ACCOUNT = "123456789012"
REGION = "us-east-1"
# Each case runs as the state machine named after it, in one execution of this name.
EXECUTION = "run-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/differential"
FUNCTION_ARN = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:"
# A case's definition "project": the project's state machine, substituted as the template says.
PROJECT_MACHINE = "project"
MOTO_DEADLINE_SECONDS = 10


def machine_arn(machine: str) -> str:
    """The ARN of the state machine `machine`, the same on both sides."""
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{machine}"


def execution_arn(machine: str) -> str:
    """The ARN of the case's one execution of `machine`."""
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine}:{EXECUTION}"


# --------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------


def _load_cases() -> list[dict[str, Any]]:
    cases = json.loads(CASES_FILE.read_text())["cases"]
    names = [case["name"] for case in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


CASES = _load_cases()


def project_definition() -> dict[str, Any]:
    """statemachine/order_fulfilment.asl.json with template.yaml's DefinitionSubstitutions.

    Each substitution is a function's ``!GetAtt <Function>.Arn``; the function is named by its
    logical id here, which is also the name the case scripts use.
    """
    template = load_template(ROOT / "template.yaml")
    resources = template["Resources"]
    machines = [
        resource["Properties"]
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::StateMachine"
    ]
    assert len(machines) == 1, "template.yaml is expected to define one state machine"
    props = machines[0]
    text = (ROOT / props["DefinitionUri"]).read_text()
    for key, value in props["DefinitionSubstitutions"].items():
        logical_id, attribute = value["Fn::GetAtt"]
        assert attribute == "Arn", f"{key}: only function ARNs are substituted"
        assert resources[logical_id]["Type"] == "AWS::Serverless::Function", key
        text = text.replace("${" + key + "}", FUNCTION_ARN + logical_id)
    assert "${" not in text, "a placeholder of the definition was left unsubstituted"
    return json.loads(text)


def definition_of(case: dict[str, Any]) -> dict[str, Any]:
    """The case's definition: inline, or the project's own state machine."""
    if case["definition"] == PROJECT_MACHINE:
        return project_definition()
    return copy.deepcopy(case["definition"])


# --------------------------------------------------------------------------------------------
# Scripted Lambda functions, the same for both interpreters
# --------------------------------------------------------------------------------------------


class ScriptedFunctions:
    """Each function answers with its scripted outcomes in turn; the last one repeats.

    An outcome is ``{"return": value}``, ``{"echo": true}`` (the payload it was given) or
    ``{"error": "ErrorType", "message": "..."}`` (the function raised: Lambda reports the
    error object below, and Step Functions' error is its errorType, its cause the object).
    """

    def __init__(self, script: dict[str, list[dict[str, Any]]]):
        self._script = {name: list(outcomes) for name, outcomes in script.items()}
        self._lock = threading.Lock()
        self.calls: dict[str, list[Any]] = {}
        # Functions called without a script: the test fails on them, naming them.
        self.unscripted: list[str] = []

    def call(self, function_arn: str, payload: Any) -> tuple[Any, dict[str, str] | None]:
        """(result, None) or (None, Lambda's error object) for one call of `function_arn`."""
        name = function_arn.rsplit(":", 1)[-1]
        with self._lock:
            self.calls.setdefault(name, []).append(copy.deepcopy(payload))
            if name not in self._script:
                self.unscripted.append(name)
                return None, {"errorMessage": "no script", "errorType": "Unscripted"}
            outcomes = self._script[name]
            outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if "error" in outcome:
            return None, {"errorMessage": outcome["message"], "errorType": outcome["error"]}
        if outcome.get("echo"):
            return copy.deepcopy(payload), None
        return copy.deepcopy(outcome["return"]), None


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# What an execution did, in a form both implementations can be compared in
# --------------------------------------------------------------------------------------------

# The lambda:invoke result fields both sides produce (see KNOWN_DIFFERENCES for the others).
INVOKE_RESULT_FIELDS = ("ExecutedVersion", "Payload", "StatusCode")
ERROR_EVENTS_WITH_CAUSE = ("Failed", "TimedOut", "Aborted")
RUNTIME_CAUSE_PREFIX = re.compile(r"An error occurred while executing the state '[^']*'")


def comparable_cause(error: str | None, cause: str | None) -> str | None:
    """The cause, or for States.Runtime only the state it names.

    AWS documents no wording for States.Runtime causes (a path that selects nothing, ...):
    both implementations name the state the same way and then explain in their own words.
    Every other cause (a function's error object, a Fail state's Cause) is compared whole.
    """
    if error == "States.Runtime" and cause:
        match = RUNTIME_CAUSE_PREFIX.match(cause)
        if match:
            return match.group()
    return cause


@dataclass
class Outcome:
    """How one execution ended and what it did on the way."""

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    events: list[Any] = field(default_factory=list)
    calls: dict[str, list[Any]] = field(default_factory=dict)
    unscripted: list[str] = field(default_factory=list)
    pauses: list[float] = field(default_factory=list)
    refused: Exception | None = None

    def comparable(self) -> dict[str, Any]:
        """Everything the two implementations must agree on, as typed JSON (see `typed`)."""
        return typed(
            {
                "status": self.status,
                "output": self.output,
                "error": self.error,
                "cause": comparable_cause(self.error, self.cause),
                "events": self.events,
                "calls": self.calls,
                "pauses": [float(seconds) for seconds in self.pauses],
            }
        )


def typed(value: Any) -> Any:
    """`value` with its booleans tagged, so that comparing tells true from 1 as JSON does
    (Python's == says True == 1, which would hide exactly the bugs this test looks for)."""
    if isinstance(value, bool):
        return {"<bool>": value}
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [typed(item) for item in value]
    return value


def _details(event: dict[str, Any]) -> dict[str, Any]:
    found = [value for key, value in event.items() if key.endswith("EventDetails")]
    return found[0] if found and found[0] else {}


def _signature(event: dict[str, Any]) -> tuple[Any, ...]:
    """The parts of one history event that AWS defines and both implementations fill in."""
    kind = event["type"]
    details = _details(event)
    if kind.endswith("StateEntered"):
        return (kind, details["name"], json.loads(details["input"]))
    if kind.endswith("StateExited"):
        return (kind, details["name"], json.loads(details["output"]))
    if kind.endswith(ERROR_EVENTS_WITH_CAUSE):
        error = details.get("error")
        return (kind, error, comparable_cause(error, details.get("cause")))
    if kind == "TaskScheduled":
        return (kind, details["resource"], json.loads(details["parameters"]))
    if kind == "TaskSucceeded":
        result = json.loads(details["output"])
        return (kind, {key: result.get(key) for key in INVOKE_RESULT_FIELDS})
    if kind == "LambdaFunctionScheduled":
        return (kind, details["resource"], json.loads(details["input"]))
    if kind in ("LambdaFunctionSucceeded", "ExecutionSucceeded"):
        return (kind, json.loads(details["output"]))
    if kind == "ExecutionStarted":
        return (kind, json.loads(details["input"]))
    if kind in ("MapIterationStarted", "MapIterationSucceeded"):
        return (kind, details.get("index"))
    return (kind,)


PARALLEL_ENDS = ("ParallelStateSucceeded", "ParallelStateFailed", "ParallelStateAborted")


def normalise(events: list[dict[str, Any]]) -> list[Any]:
    """The history as signatures in order; a Parallel's branches run concurrently, so between
    ParallelStateStarted and its end each branch's own sequence (found by following
    previousEventId, which chains the events of one branch) is compared, in a stable order."""
    events = sorted(events, key=lambda e: e["id"])
    out: list[Any] = []
    i = 0
    while i < len(events):
        event = events[i]
        out.append(_signature(event))
        i += 1
        if event["type"] != "ParallelStateStarted":
            continue
        branch_of: dict[int, int] = {}
        branches: list[list[Any]] = []
        by_id = {e["id"]: e for e in events}
        while i < len(events) and events[i]["type"] not in PARALLEL_ENDS:
            inner = events[i]
            previous = inner["previousEventId"]
            if inner["type"] == "ParallelStateStarted":
                # A retrier's next attempt (AWS records no ParallelStateFailed for an attempt
                # that is retried); a nested Parallel would follow its ParallelStateEntered.
                assert by_id[previous]["type"] != "ParallelStateEntered", "nested Parallel"
                break
            if previous == event["id"]:
                branch_of[inner["id"]] = len(branches)
                branches.append([])
            else:
                branch_of[inner["id"]] = branch_of[previous]
            branches[branch_of[inner["id"]]].append(_signature(inner))
            i += 1
        out.append(("branches", sorted(branches, key=json.dumps)))
    return out


# --------------------------------------------------------------------------------------------
# The project's interpreter
# --------------------------------------------------------------------------------------------


def run_project(
    machine: str, definition: dict[str, Any], execution_input: Any, script: dict
) -> Outcome:
    """One execution on the project's interpreter, with waits recorded instead of slept."""
    functions = ScriptedFunctions(script)

    def invoke(function_arn: str, payload: Any, *, timeout: float | None = None) -> Any:
        result, error = functions.call(function_arn, payload)
        if error is not None:
            raise TaskFailure(error["errorType"], _compact(error))
        return result

    pauses: list[float] = []
    events: list[dict[str, Any]] = []
    try:
        interpreter = StateMachineInterpreter(definition, invoke=invoke, sleep=pauses.append)
    except UnsupportedFeature as exc:
        return Outcome("REFUSED", refused=exc)
    result = interpreter.run(
        execution_input,
        execution_arn=execution_arn(machine),
        state_machine_arn=machine_arn(machine),
        role_arn=ROLE_ARN,
        on_event=events.append,
    )
    return Outcome(
        result.status,
        result.output,
        result.error,
        result.cause,
        normalise(events),
        functions.calls,
        functions.unscripted,
        pauses,
    )


# --------------------------------------------------------------------------------------------
# moto's interpreter
# --------------------------------------------------------------------------------------------


def _check_moto_call_points() -> None:
    """Fail loudly, naming what moved, if the points patched below are not as in moto 5.2.5."""
    assert moto.__version__ == MOTO_VERSION, (
        f"moto {moto.__version__} is installed; this test patches moto {MOTO_VERSION}'s "
        "internals: re-check the call points below and update MOTO_VERSION"
    )
    invoke = lambda_eval_utils._invoke_lambda_function
    assert list(inspect.signature(invoke).parameters) == [
        "parameters",
        "region",
        "state_credentials",
    ], "moto's _invoke_lambda_function changed its signature"
    integration = inspect.getsource(lambda_eval_utils.execute_lambda_function_integration)
    assert "_invoke_lambda_function(" in integration, "moto no longer calls Lambda there"
    retry_body = inspect.getsource(retrier_decl.RetrierDecl._eval_body)
    assert "time.sleep(interval_seconds)" in retry_body, "moto's retry no longer sleeps there"
    wait = wait_function.WaitFunction._wait_interval
    assert list(inspect.signature(wait).parameters) == ["self", "env", "wait_seconds"]


@dataclass
class MotoStepFunctions:
    """moto's Step Functions in-process, its Lambda calls answered by the case's script."""

    client: Any
    pauses: list[float]
    monkeypatch: pytest.MonkeyPatch

    def run(
        self, machine: str, definition: dict[str, Any], execution_input: Any, script: dict
    ) -> Outcome:
        """One execution on moto's interpreter, driven through its Step Functions API."""
        functions = ScriptedFunctions(script)

        def invoke(parameters: dict[str, Any], region: str, state_credentials: Any) -> dict:
            payload = json.loads(parameters.get("Payload") or b"{}")
            result, error = functions.call(parameters["FunctionName"], payload)
            if error is not None:
                return {"StatusCode": 200, "FunctionError": "Unhandled", "Payload": error}
            return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": result}

        self.monkeypatch.setattr(lambda_eval_utils, "_invoke_lambda_function", invoke)
        self.pauses.clear()
        try:
            created = self.client.create_state_machine(
                name=machine, definition=json.dumps(definition), roleArn=ROLE_ARN
            )
        except ClientError as exc:
            # moto 5.2.5 reports an invalid definition with an empty error code.
            assert exc.operation_name == "CreateStateMachine", exc
            assert "in definition" in exc.response["Error"]["Message"], exc
            return Outcome("REFUSED", refused=exc)
        assert created["stateMachineArn"] == machine_arn(machine)
        started = self.client.start_execution(
            stateMachineArn=created["stateMachineArn"],
            name=EXECUTION,
            input=json.dumps(execution_input),
        )
        arn = started["executionArn"]
        assert arn == execution_arn(machine)
        deadline = time.monotonic() + MOTO_DEADLINE_SECONDS
        while True:
            described = self.client.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                break
            assert time.monotonic() < deadline, "moto's execution did not finish"
            # Each poll is a whole API call: not so often that it slows the execution down.
            time.sleep(0.02)
        pages = self.client.get_paginator("get_execution_history").paginate(executionArn=arn)
        events = [event for page in pages for event in page["events"]]
        output = described.get("output")
        return Outcome(
            described["status"],
            None if output is None else json.loads(output),
            described.get("error"),
            described.get("cause"),
            normalise(events),
            functions.calls,
            functions.unscripted,
            list(self.pauses),
        )


@pytest.fixture(scope="module")
def moto_sfn() -> Iterator[MotoStepFunctions]:
    """moto's Step Functions with execute_state_machine on; nothing leaves the process.

    One mock for the module (each case has its own state machine): starting moto per case
    would double the file's time.
    """
    _check_moto_call_points()
    with pytest.MonkeyPatch.context() as monkeypatch:
        for key in [k for k in os.environ if k.startswith("AWS_")]:
            monkeypatch.delenv(key)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
        # mock_aws answers every call in-process; should one ever escape it, it goes to a
        # closed port on 127.0.0.1 and fails, rather than to AWS.
        for proxy in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            monkeypatch.setenv(proxy, "http://127.0.0.1:9")
        for key in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(key, raising=False)
        pauses: list[float] = []
        # Retry intervals and Wait states are recorded, not slept (as on the project side).
        monkeypatch.setattr(retrier_decl, "time", types.SimpleNamespace(sleep=pauses.append))
        # moto waits only for a positive number of seconds (a Timestamp in the past gives a
        # negative one): that is a wait of zero, as the project records it.
        monkeypatch.setattr(
            wait_function.WaitFunction,
            "_wait_interval",
            lambda self, env, wait_seconds: pauses.append(max(0, wait_seconds)),
        )
        with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            client = boto3.client("stepfunctions", region_name=REGION)
            yield MotoStepFunctions(client, pauses, monkeypatch)


# --------------------------------------------------------------------------------------------
# Known differences: each one is settled by the AWS documentation (or is by design)
# --------------------------------------------------------------------------------------------

AWS_ERRORS = "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html"
AWS_INTRINSICS = "https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html"
ASL_SPEC = "https://states-language.net/spec.html"


@dataclass(frozen=True)
class KnownDifference:
    """A documented difference; the case asserts it is still exactly this difference."""

    summary: str
    # "project" or "moto": the side the AWS documentation supports; "neither" for a choice.
    correct: str
    reference: str
    # Asserts the difference beyond the case's "project" and "moto" observations.
    check: Callable[[Outcome, Outcome], None] | None = None


def _check_invoke_metadata(project: Outcome, moto_outcome: Outcome) -> None:
    # AWS's lambda:invoke result carries the SDK's HTTP and response metadata besides
    # ExecutedVersion, Payload and StatusCode; the project reproduces them, moto does not.
    metadata = {"SdkHttpMetadata", "SdkResponseMetadata"}
    assert set(project.output["Result"]) == {*INVOKE_RESULT_FIELDS, *metadata}
    assert set(moto_outcome.output["Result"]) == set(INVOKE_RESULT_FIELDS)
    assert project.output["Result"]["SdkHttpMetadata"]["HttpStatusCode"] == 200
    # Without them, everything else agrees, the history included.
    trimmed = copy.deepcopy(project)
    for key in metadata:
        del trimmed.output["Result"][key]
    trimmed.events = [
        (*e[:-1], trimmed.output) if e[0] in ("TaskStateExited", "ExecutionSucceeded") else e
        for e in trimmed.events
    ]
    assert moto_outcome.comparable() == trimmed.comparable()


KNOWN_DIFFERENCES: dict[str, KnownDifference] = {
    "map-refused": KnownDifference(
        "The local interpreter refuses Map states (UnsupportedFeature 'Map') when the "
        "definition is checked; moto runs them.",
        "neither",
        "by design: what the local interpreter cannot run faithfully it refuses by name",
    ),
    "lambda-invoke-sdk-metadata": KnownDifference(
        "moto's lambda:invoke result lacks SdkHttpMetadata and SdkResponseMetadata.",
        "project",
        "https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html",
        _check_invoke_metadata,
    ),
    "moto-no-choice-matched": KnownDifference(
        "A Choice state without a matching rule or Default: moto fails with States.Runtime "
        "instead of States.NoChoiceMatched.",
        "project",
        f"{AWS_ERRORS} (States.NoChoiceMatched); {ASL_SPEC} (Choice State)",
    ),
    "moto-intrinsic-failure-is-runtime": KnownDifference(
        "A failing intrinsic function: moto fails with States.Runtime (which no Catch "
        "handles) instead of States.IntrinsicFailure (which the state's Catch handles).",
        "project",
        f"{AWS_ERRORS} (States.IntrinsicFailure); {ASL_SPEC} (Payload Template)",
    ),
    "moto-intrinsic-escapes": KnownDifference(
        "moto fails on escaped reserved characters (\\{ \\} \\' \\\\) in an intrinsic string.",
        "project",
        f"{AWS_INTRINSICS} (reserved characters); {ASL_SPEC} (Intrinsic Functions)",
    ),
    "moto-intrinsic-null": KnownDifference(
        "moto drops a null intrinsic argument: States.Array($.id, null) gives one item.",
        "project",
        f"{ASL_SPEC} (Intrinsic Functions: arguments may be strings, numbers, null, Paths ...)",
    ),
    "moto-intrinsic-float": KnownDifference(
        "moto refuses a definition with a fractional number as intrinsic argument.",
        "project",
        f"{ASL_SPEC} (Intrinsic Functions: arguments may be ... numbers)",
    ),
    "moto-array-unique-true-is-1": KnownDifference(
        "moto's States.ArrayUnique treats true as 1 and false as 0 (Python equality).",
        "project",
        f"{AWS_INTRINSICS} (States.ArrayUnique); JSON (RFC 8259) has no boolean-number equality",
    ),
    "moto-path-below-index": KnownDifference(
        "moto wraps the value of a path below an array index ($.items[0].name) in a list.",
        "project",
        "https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html"
        " (a Reference Path selects a single node)",
    ),
}


def observed(outcome: Outcome, expected: dict[str, Any]) -> dict[str, Any]:
    """The parts of `outcome` that `expected` (a case's "project" or "moto" entry) names."""
    seen: dict[str, Any] = {}
    comparable = outcome.comparable()
    for key in expected:
        if key == "refused":
            if outcome.refused is None:
                seen[key] = None
            elif isinstance(outcome.refused, UnsupportedFeature):
                seen[key] = outcome.refused.feature
            else:
                seen[key] = typed(True)
        else:
            seen[key] = comparable[key]
    return seen


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


def test_the_table_is_well_formed() -> None:
    # Given the corpus
    used = {case["known_difference"] for case in CASES if "known_difference" in case}
    # Then every known difference names an entry, and every entry is exercised by a case
    assert used == set(KNOWN_DIFFERENCES)
    fields = {"name", "comment", "definition", "input", "functions"}
    for case in CASES:
        if "known_difference" in case:
            assert set(case) <= fields | {"known_difference", "project", "moto"}, case["name"]
            assert case["project"] and case["moto"], case["name"]
        else:
            assert set(case) <= fields, case["name"]
    for difference in KNOWN_DIFFERENCES.values():
        assert difference.correct in ("project", "moto", "neither")


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_both_interpreters_agree(case: dict[str, Any], moto_sfn: MotoStepFunctions) -> None:
    # Given one definition, one input and one script of function results
    definition = definition_of(case)
    execution_input = case.get("input", {})
    script = case.get("functions", {})

    # When each interpreter runs it
    project = run_project(case["name"], definition, execution_input, script)
    moto_outcome = moto_sfn.run(case["name"], definition, execution_input, script)
    assert project.unscripted == moto_outcome.unscripted == [], "script every function called"

    if "known_difference" not in case:
        # Then they end the same way, having done the same things in the same order
        assert project.comparable() == moto_outcome.comparable()
        return
    # Then (a known difference) they still differ, exactly as recorded
    assert project.comparable() != moto_outcome.comparable()
    assert observed(project, case["project"]) == typed(case["project"])
    assert observed(moto_outcome, case["moto"]) == typed(case["moto"])
    difference = KNOWN_DIFFERENCES[case["known_difference"]]
    if difference.check is not None:
        difference.check(project, moto_outcome)
