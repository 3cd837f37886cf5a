"""Validation and compilation of a definition: what runs here, and what is refused by name."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from pipeline.local.stepfunctions.asl.choice import compile_rule, parse_timestamp
from pipeline.local.stepfunctions.asl.intrinsics import FAIL_PATH_INTRINSICS
from pipeline.local.stepfunctions.asl.model import Catcher, Machine, Retrier, State
from pipeline.local.stepfunctions.asl.paths import JsonPath, parse_path
from pipeline.local.stepfunctions.asl.templates import Call, compile_expression, compile_template
from pipeline.local.stepfunctions.asl.types import (
    LAMBDA_INVOKE,
    InvalidDefinition,
    UnsupportedFeature,
)
from pipeline.local.stepfunctions.asl.values import is_int, is_number

_RESERVED_ERRORS = {
    "States.ALL",
    "States.DataLimitExceeded",
    "States.ExceedToleratedFailureThreshold",
    "States.HeartbeatTimeout",
    "States.Http.Socket",
    "States.IntrinsicFailure",
    "States.ItemReaderFailed",
    "States.NoChoiceMatched",
    "States.ParameterPathFailure",
    "States.Permissions",
    "States.ResultPathMatchFailure",
    "States.ResultWriterFailed",
    "States.Runtime",
    "States.TaskFailed",
    "States.Timeout",
    "States.BranchFailed",
    "States.QueryEvaluationError",
}
_MAX_TIMEOUT = 99999999

_COMMON_FIELDS = {"Type", "Comment", "QueryLanguage"}
_FIELDS = {
    "Pass": {"Next", "End", "InputPath", "OutputPath", "Parameters", "Result", "ResultPath"},
    "Task": {
        "Next",
        "End",
        "InputPath",
        "OutputPath",
        "Parameters",
        "ResultSelector",
        "ResultPath",
        "Retry",
        "Catch",
        "Resource",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
    },
    "Choice": {"InputPath", "OutputPath", "Choices", "Default"},
    "Wait": {"Next", "End", "InputPath", "OutputPath", "Seconds", "SecondsPath"}
    | {"Timestamp", "TimestampPath"},
    "Succeed": {"InputPath", "OutputPath"},
    "Fail": {"Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": {
        "Next",
        "End",
        "InputPath",
        "OutputPath",
        "Parameters",
        "ResultSelector",
        "ResultPath",
        "Retry",
        "Catch",
        "Branches",
    },
}
# Valid ASL this interpreter does not run: refused by name rather than ignored.
_UNSUPPORTED_FIELDS = {
    "Assign": "variables (Assign)",
    "Arguments": "JSONata (Arguments)",
    "Output": "JSONata (Output)",
    "Items": "JSONata (Items)",
    "HeartbeatSeconds": "task heartbeats",
    "HeartbeatSecondsPath": "task heartbeats",
    "Credentials": "cross-account task credentials",
    "ItemProcessor": "Map",
    "Iterator": "Map",
    "ItemReader": "distributed Map",
}
_UNSUPPORTED_TYPES = {"Map": "Map state"}
_LAMBDA_ARN_RE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}"
    r"(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)
_INVOKE_PARAMETERS = {"FunctionName", "Payload", "InvocationType"}


def validate_definition(definition: dict[str, Any]) -> None:
    """Raise InvalidDefinition or UnsupportedFeature unless the interpreter can run `definition`."""
    compile_definition(definition)


def compile_definition(definition: Any) -> Machine:
    """The compiled machine of `definition`; raises InvalidDefinition or UnsupportedFeature."""
    if not isinstance(definition, dict):
        raise InvalidDefinition("the definition must be a JSON object")
    language = definition.get("QueryLanguage", "JSONPath")
    if language != "JSONPath":
        raise UnsupportedFeature(
            f"QueryLanguage {language!r} is not supported; only JSONPath is",
            feature="JSONata" if language == "JSONata" else str(language),
        )
    allowed = {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}
    unknown = set(definition) - allowed
    if unknown:
        raise InvalidDefinition(f"unknown top-level fields: {sorted(unknown)}")
    if "Version" in definition and definition["Version"] != "1.0":
        raise InvalidDefinition(f"Version must be '1.0', not {definition['Version']!r}")
    machine = _compile_machine(definition, "the state machine")
    if "TimeoutSeconds" in definition:
        machine.timeout = _positive_int(definition["TimeoutSeconds"], "TimeoutSeconds", None)
    return machine


def _positive_int(value: Any, where: str, state: str | None, *, minimum: int = 1) -> int:
    if not is_int(value) or value < minimum or value > _MAX_TIMEOUT:
        raise InvalidDefinition(
            f"{where} must be an integer from {minimum} to {_MAX_TIMEOUT}, not {value!r}",
            state=state,
        )
    return value


def _compile_machine(raw: dict[str, Any], where: str) -> Machine:
    start_at = raw.get("StartAt")
    states_raw = raw.get("States")
    if not isinstance(start_at, str):
        raise InvalidDefinition(f"{where} has no StartAt")
    if not isinstance(states_raw, dict) or not states_raw:
        raise InvalidDefinition(f"{where} has no States")
    if start_at not in states_raw:
        raise InvalidDefinition(f"{where}: StartAt names an unknown state {start_at!r}")
    states = {name: _compile_state(name, body) for name, body in states_raw.items()}
    for state in states.values():
        for target in _targets(state):
            if target not in states:
                raise InvalidDefinition(
                    f"state {state.name!r} goes to an unknown state {target!r}", state=state.name
                )
    reachable = {start_at}
    pending = [start_at]
    while pending:
        for target in _targets(states[pending.pop()]):
            if target not in reachable:
                reachable.add(target)
                pending.append(target)
    unreachable = sorted(set(states) - reachable)
    if unreachable:
        raise InvalidDefinition(f"{where}: states not reachable from StartAt: {unreachable}")
    return Machine(start_at, states)


def _targets(state: State) -> Iterable[str]:
    if state.next:
        yield state.next
    if state.default:
        yield state.default
    for _, target in state.choices:
        yield target
    for catcher in state.catchers:
        yield catcher.next


def _compile_state(name: str, raw: Any) -> State:
    if not isinstance(name, str) or not 1 <= len(name) <= 80:
        raise InvalidDefinition(f"state name {name!r} must have 1 to 80 characters")
    if not isinstance(raw, dict):
        raise InvalidDefinition(f"state {name!r} must be an object", state=name)
    kind = raw.get("Type")
    if kind in _UNSUPPORTED_TYPES:
        raise UnsupportedFeature(
            f"state {name!r}: the {_UNSUPPORTED_TYPES[kind]} is not supported",
            state=name,
            feature=str(kind),
        )
    if kind not in _FIELDS:
        raise InvalidDefinition(f"state {name!r} has an unknown Type {kind!r}", state=name)
    if raw.get("QueryLanguage", "JSONPath") != "JSONPath":
        raise UnsupportedFeature(
            f"state {name!r}: QueryLanguage {raw['QueryLanguage']!r} is not supported",
            state=name,
            feature="JSONata",
        )
    for key in raw:
        if key in _COMMON_FIELDS or key in _FIELDS[kind]:
            continue
        if key in _UNSUPPORTED_FIELDS:
            raise UnsupportedFeature(
                f"state {name!r}: {key} ({_UNSUPPORTED_FIELDS[key]}) is not supported",
                state=name,
                feature=_UNSUPPORTED_FIELDS[key],
            )
        raise InvalidDefinition(f"state {name!r}: unknown field {key!r} for {kind}", state=name)
    state = State(name, kind)
    _compile_transition(state, raw)
    _compile_data_fields(state, raw)
    if kind in ("Task", "Parallel"):
        state.retriers = _compile_retry(raw.get("Retry", []), name)
        state.catchers = _compile_catch(raw.get("Catch", []), name)
    compile_specific = {
        "Pass": _compile_pass,
        "Task": _compile_task,
        "Choice": _compile_choice,
        "Wait": _compile_wait,
        "Fail": _compile_fail,
        "Parallel": _compile_parallel,
    }.get(kind)
    if compile_specific:
        compile_specific(state, raw)
    return state


def _compile_transition(state: State, raw: dict[str, Any]) -> None:
    name = state.name
    if state.kind in ("Choice", "Succeed", "Fail"):
        return
    has_next, end = "Next" in raw, raw.get("End", False)
    if not isinstance(end, bool):
        raise InvalidDefinition(f"state {name!r}: End must be a boolean", state=name)
    if has_next == end:
        raise InvalidDefinition(f"state {name!r} needs exactly one of Next and End", state=name)
    if has_next:
        if not isinstance(raw["Next"], str):
            raise InvalidDefinition(f"state {name!r}: Next must be a state name", state=name)
        state.next = raw["Next"]


def _optional_path(raw: dict[str, Any], key: str, state: str) -> JsonPath | None:
    value = raw.get(key, "$")
    if value is None:
        return None
    return parse_path(value, f"state {state!r} {key}", state=state, context_ok=False)


def _compile_data_fields(state: State, raw: dict[str, Any]) -> None:
    name = state.name
    if "InputPath" in _FIELDS[state.kind]:
        state.input_path = _optional_path(raw, "InputPath", name)
        state.output_path = _optional_path(raw, "OutputPath", name)
    if "ResultPath" in _FIELDS[state.kind]:
        state.result_path = _optional_path(raw, "ResultPath", name)
    for key in ("Parameters", "ResultSelector"):
        if key not in raw or key not in _FIELDS[state.kind]:
            continue
        if not isinstance(raw[key], dict):
            raise InvalidDefinition(f"state {name!r}: {key} must be an object", state=name)
        node = compile_template(raw[key], f"state {name!r} {key}", name)
        if key == "Parameters":
            state.parameters = node
        else:
            state.result_selector = node


def _error_names(raw: Any, where: str, state: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw or not all(isinstance(e, str) and e for e in raw):
        raise InvalidDefinition(
            f"{where}: ErrorEquals must be a non-empty list of names", state=state
        )
    if "States.ALL" in raw and len(raw) != 1:
        raise InvalidDefinition(
            f"{where}: States.ALL must appear alone in ErrorEquals", state=state
        )
    for error in raw:
        if error.startswith("States.") and error not in _RESERVED_ERRORS:
            raise InvalidDefinition(f"{where}: {error!r} is not a known States error", state=state)
    return tuple(raw)


def _check_all_is_last(entries: list[Any], where: str, state: str) -> None:
    for i, entry in enumerate(entries[:-1]):
        if "States.ALL" in entry.errors:
            raise InvalidDefinition(
                f"state {state!r}: the {where} entry [{i}] with States.ALL must be the last",
                state=state,
            )


def _compile_retry(raw: Any, state: str) -> list[Retrier]:
    if not isinstance(raw, list):
        raise InvalidDefinition(f"state {state!r}: Retry must be a list", state=state)
    allowed = {"ErrorEquals", "IntervalSeconds", "MaxAttempts", "BackoffRate", "Comment"}
    allowed |= {"MaxDelaySeconds", "JitterStrategy"}
    retriers = []
    for i, entry in enumerate(raw):
        where = f"state {state!r} Retry[{i}]"
        if not isinstance(entry, dict):
            raise InvalidDefinition(f"{where} must be an object", state=state)
        unknown = set(entry) - allowed
        if unknown:
            raise InvalidDefinition(f"{where}: unknown fields {sorted(unknown)}", state=state)
        retrier = Retrier(_error_names(entry.get("ErrorEquals"), where, state))
        if "IntervalSeconds" in entry:
            retrier.interval = _positive_int(
                entry["IntervalSeconds"], f"{where} IntervalSeconds", state
            )
        if "MaxAttempts" in entry:
            retrier.max_attempts = _positive_int(
                entry["MaxAttempts"], f"{where} MaxAttempts", state, minimum=0
            )
        if "BackoffRate" in entry:
            rate = entry["BackoffRate"]
            if not is_number(rate) or rate < 1.0:
                raise InvalidDefinition(f"{where}: BackoffRate must be >= 1.0", state=state)
            retrier.backoff = float(rate)
        if "MaxDelaySeconds" in entry:
            retrier.max_delay = _positive_int(
                entry["MaxDelaySeconds"], f"{where} MaxDelaySeconds", state
            )
        if "JitterStrategy" in entry:
            if entry["JitterStrategy"] not in ("FULL", "NONE"):
                raise InvalidDefinition(
                    f"{where}: JitterStrategy must be FULL or NONE", state=state
                )
            retrier.jitter = entry["JitterStrategy"]
        retriers.append(retrier)
    _check_all_is_last(retriers, "Retry", state)
    return retriers


def _compile_catch(raw: Any, state: str) -> list[Catcher]:
    if not isinstance(raw, list):
        raise InvalidDefinition(f"state {state!r}: Catch must be a list", state=state)
    catchers = []
    for i, entry in enumerate(raw):
        where = f"state {state!r} Catch[{i}]"
        if not isinstance(entry, dict):
            raise InvalidDefinition(f"{where} must be an object", state=state)
        for key in entry:
            if key in ("Assign", "Output"):
                raise UnsupportedFeature(
                    f"{where}: {key} is not supported",
                    state=state,
                    feature=_UNSUPPORTED_FIELDS[key],
                )
            if key not in ("ErrorEquals", "Next", "ResultPath", "Comment"):
                raise InvalidDefinition(f"{where}: unknown field {key!r}", state=state)
        if not isinstance(entry.get("Next"), str):
            raise InvalidDefinition(f"{where} needs Next", state=state)
        catchers.append(
            Catcher(
                _error_names(entry.get("ErrorEquals"), where, state),
                entry["Next"],
                _optional_path(entry, "ResultPath", state),
            )
        )
    _check_all_is_last(catchers, "Catch", state)
    return catchers


def _compile_pass(state: State, raw: dict[str, Any]) -> None:
    if "Result" in raw:
        state.has_result = True
        state.result = raw["Result"]


def _compile_task(state: State, raw: dict[str, Any]) -> None:
    name = state.name
    resource = raw.get("Resource")
    if not isinstance(resource, str):
        raise InvalidDefinition(f"state {name!r}: a Task needs a Resource", state=name)
    state.resource = resource
    if resource == LAMBDA_INVOKE:
        state.integration = "invoke"
        params = raw.get("Parameters")
        keys = {k.removesuffix(".$") for k in params} if isinstance(params, dict) else set()
        if "FunctionName" not in keys:
            raise InvalidDefinition(
                f"state {name!r}: lambda:invoke needs Parameters.FunctionName", state=name
            )
        extra = sorted(keys - _INVOKE_PARAMETERS)
        if extra:
            raise UnsupportedFeature(
                f"state {name!r}: lambda:invoke parameters {extra} are not supported",
                state=name,
                feature=f"lambda:invoke {extra[0]}",
            )
        if "InvocationType.$" in params or params.get("InvocationType", "RequestResponse") != (
            "RequestResponse"
        ):
            raise UnsupportedFeature(
                f"state {name!r}: only InvocationType RequestResponse is supported",
                state=name,
                feature="lambda:invoke InvocationType",
            )
    elif _LAMBDA_ARN_RE.match(resource):
        state.integration = "function"
    else:
        pattern = ""
        if resource.startswith(LAMBDA_INVOKE + "."):
            pattern = " (callback and .sync patterns are not supported)"
        raise UnsupportedFeature(
            f"state {name!r}: Resource {resource!r} is not supported{pattern}; "
            f"only {LAMBDA_INVOKE} and Lambda function ARNs are",
            state=name,
            feature=f"Resource {resource}",
        )
    if "TimeoutSeconds" in raw and "TimeoutSecondsPath" in raw:
        raise InvalidDefinition(
            f"state {name!r}: TimeoutSeconds and TimeoutSecondsPath exclude each other", state=name
        )
    if "TimeoutSeconds" in raw:
        state.timeout = _positive_int(raw["TimeoutSeconds"], f"state {name!r} TimeoutSeconds", name)
    if "TimeoutSecondsPath" in raw:
        state.timeout_path = parse_path(
            raw["TimeoutSecondsPath"],
            f"state {name!r} TimeoutSecondsPath",
            state=name,
            context_ok=False,
        )


def _compile_choice(state: State, raw: dict[str, Any]) -> None:
    name = state.name
    choices = raw.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidDefinition(f"state {name!r}: Choices must be a non-empty list", state=name)
    for i, rule in enumerate(choices):
        compiled = compile_rule(rule, f"state {name!r} Choices[{i}]", name, top=True)
        if not isinstance(rule["Next"], str):
            raise InvalidDefinition(f"state {name!r} Choices[{i}]: Next must be a name", state=name)
        state.choices.append((compiled, rule["Next"]))
    if "Default" in raw:
        if not isinstance(raw["Default"], str):
            raise InvalidDefinition(f"state {name!r}: Default must be a state name", state=name)
        state.default = raw["Default"]


def _compile_wait(state: State, raw: dict[str, Any]) -> None:
    name = state.name
    given = [k for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if k in raw]
    if len(given) != 1:
        raise InvalidDefinition(
            f"state {name!r}: a Wait needs exactly one of Seconds, SecondsPath, Timestamp, "
            f"TimestampPath (got {given or 'none'})",
            state=name,
        )
    key = given[0]
    where = f"state {name!r} {key}"
    if key == "Seconds":
        state.seconds = _positive_int(raw[key], where, name, minimum=0)
    elif key == "Timestamp":
        state.timestamp = parse_timestamp(raw[key])
        if state.timestamp is None:
            raise InvalidDefinition(
                f"{where}: {raw[key]!r} is not an RFC 3339 timestamp", state=name
            )
    elif key == "SecondsPath":
        state.seconds_path = parse_path(raw[key], where, state=name, context_ok=False)
    else:
        state.timestamp_path = parse_path(raw[key], where, state=name, context_ok=False)


def _compile_fail(state: State, raw: dict[str, Any]) -> None:
    name = state.name
    for plain, dynamic in (("Error", "ErrorPath"), ("Cause", "CausePath")):
        if plain in raw and dynamic in raw:
            raise InvalidDefinition(f"state {name!r}: {plain} and {dynamic} exclude each other")
        if plain in raw and not isinstance(raw[plain], str):
            raise InvalidDefinition(f"state {name!r}: {plain} must be a string", state=name)
        if dynamic in raw:
            node = compile_expression(raw[dynamic], f"state {name!r} {dynamic}", name)
            if isinstance(node, Call) and node.name not in FAIL_PATH_INTRINSICS:
                raise InvalidDefinition(
                    f"state {name!r}: {node.name} cannot be used in {dynamic}", state=name
                )
            if plain == "Error":
                state.error_expr = node
            else:
                state.cause_expr = node
    state.error = raw.get("Error")
    state.cause = raw.get("Cause")


def _compile_parallel(state: State, raw: dict[str, Any]) -> None:
    name = state.name
    branches = raw.get("Branches")
    if not isinstance(branches, list) or not branches:
        raise InvalidDefinition(f"state {name!r}: Branches must be a non-empty list", state=name)
    for i, branch in enumerate(branches):
        where = f"state {name!r} Branches[{i}]"
        if not isinstance(branch, dict):
            raise InvalidDefinition(f"{where} must be an object", state=name)
        unknown = set(branch) - {"StartAt", "States", "Comment"}
        if unknown:
            raise InvalidDefinition(f"{where}: unknown fields {sorted(unknown)}", state=name)
        state.branches.append(_compile_machine(branch, where))
