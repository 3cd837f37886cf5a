"""An Amazon States Language interpreter (JSONPath mode) that runs state machines in-process.

What it honours, exactly as AWS documents it: Pass, Task, Choice, Wait, Succeed, Fail and
Parallel states; InputPath, Parameters, ResultSelector, ResultPath and OutputPath; the context
object; the intrinsic functions listed in ``_INTRINSICS``; Retry (ErrorEquals, IntervalSeconds,
MaxAttempts, BackoffRate, MaxDelaySeconds, JitterStrategy) and Catch; Task and execution
timeouts. Tasks are AWS Lambda calls, either ``arn:aws:states:::lambda:invoke`` (the optimised
integration, whose result wraps the function's in ``Payload``) or a function ARN as Resource.

What it cannot honour is refused by ``validate_definition`` with ``UnsupportedFeature`` naming
the state and the feature (Map, JSONata, variables, other service integrations, callbacks,
heartbeats, JSONPath beyond ``$.a.b`` / ``$.a[0]`` / ``$['a']``, ...), so a definition that
validates runs here as it would on AWS. Structural mistakes raise ``InvalidDefinition``.

Choices made where AWS leaves room, so that they are visible rather than accidental:

- A path that selects nothing (InputPath, a ``.$`` field, ResultSelector, ResultPath, OutputPath,
  a Choice Variable, SecondsPath, ...) fails the execution with ``States.Runtime``, which no
  Retry or Catch handles, as on AWS. A failing intrinsic function raises
  ``States.IntrinsicFailure``, which the state's Retry and Catch do see.
- ``time_scale`` compresses the workflow's clock as a whole: retry intervals, Wait states, and
  the Task and execution ``TimeoutSeconds`` are all multiplied by it, so that their order stays
  what the definition says.
- A timed-out task's function is not interrupted (AWS does not interrupt it either); its late
  result is discarded.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import random
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

log = logging.getLogger(__name__)

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"

# Execution statuses, as DescribeExecution spells them.
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
ABORTED = "ABORTED"
TIMED_OUT = "TIMED_OUT"


# --------------------------------------------------------------------------------------------
# Public errors and types
# --------------------------------------------------------------------------------------------


class InvalidDefinition(ValueError):
    """The definition is not a valid state machine (structure, names, types of fields)."""

    def __init__(self, message: str, *, state: str | None = None):
        super().__init__(message)
        self.state = state


class UnsupportedFeature(ValueError):
    """The definition is valid ASL but uses something this interpreter cannot run faithfully."""

    def __init__(self, message: str, *, state: str | None = None, feature: str | None = None):
        super().__init__(message)
        self.state = state
        self.feature = feature


class TaskFailure(Exception):
    """A task's function failed; `error` is the error name Retry and Catch match on."""

    def __init__(self, error: str, cause: str):
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause

    @classmethod
    def from_exception(cls, exc: BaseException) -> TaskFailure:
        """The failure AWS Lambda's Python runtime reports for an exception a handler raised."""
        stack = traceback.format_tb(exc.__traceback__) if exc.__traceback__ else []
        cause = {
            "errorMessage": str(exc),
            "errorType": type(exc).__name__,
            "requestId": str(uuid.uuid4()),
            "stackTrace": stack,
        }
        return cls(type(exc).__name__, json.dumps(cause))


class Invoke(Protocol):
    """Runs a Lambda function: returns its JSON result or raises TaskFailure."""

    def __call__(self, function_arn: str, payload: Any, *, timeout: float | None = None) -> Any:
        """Call the function; `timeout` is the (scaled) number of seconds the task may take."""
        ...


class StopSignal:
    """Asks a running execution to stop; checked between states, during waits and tasks."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._children: list[StopSignal] = []
        self.error: str | None = None
        self.cause: str | None = None

    def set(self, error: str | None = None, cause: str | None = None) -> None:
        """Request the stop; `error` and `cause` end up on the ExecutionAborted event."""
        with self._lock:
            if self._event.is_set():
                return
            self.error, self.cause = error, cause
            self._event.set()
            children = list(self._children)
        for child in children:
            child.set(error, cause)

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self._event.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Sleep up to `timeout` seconds, waking early when a stop is requested."""
        return self._event.wait(timeout)

    def child(self) -> StopSignal:
        """A signal set whenever this one is, which can also be set on its own."""
        child = StopSignal()
        with self._lock:
            self._children.append(child)
            already = self._event.is_set()
        if already:
            child.set(self.error, self.cause)
        return child


@dataclass(frozen=True)
class ExecutionResult:
    """How an execution ended: its status and either its output or its error and cause."""

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


# --------------------------------------------------------------------------------------------
# Internal control flow
# --------------------------------------------------------------------------------------------


class _StatesError(Exception):
    """An error raised while running a state; Retry/Catch apply unless it is States.Runtime."""

    def __init__(self, error: str | None, cause: str | None, *, catchable: bool = True):
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
        self.catchable = catchable


def _runtime_error(state: str, message: str) -> _StatesError:
    return _StatesError(
        "States.Runtime",
        f"An error occurred while executing the state '{state}'. {message}",
        catchable=False,
    )


class _Stopped(Exception):
    """The execution (or the enclosing Parallel branch) was asked to stop."""


class _ExecutionTimedOut(Exception):
    """The state machine's TimeoutSeconds elapsed."""


class _TaskTimedOut(Exception):
    """A task ran past its TimeoutSeconds."""


class _Missing(Exception):
    """A path selected nothing."""


# --------------------------------------------------------------------------------------------
# JSONPath subset: $, $.a.b, $.a[0], $['a'] (and the same after $$ for the context object)
# --------------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[^.\[\]\s*?@,:()'\"$]+")
_INDEX_RE = re.compile(r"\[(\d+)\]")
_QUOTED_RE = re.compile(r"\['([^'\\]*)'\]|\[\"([^\"\\]*)\"\]")

_CONTEXT_FIELDS = {
    "Execution": {"Id", "Input", "Name", "RoleArn", "StartTime", "RedriveCount"},
    "State": {"EnteredTime", "Name", "RetryCount"},
    "StateMachine": {"Id", "Name"},
}


@dataclass(frozen=True)
class _Path:
    text: str
    context: bool
    steps: tuple[str | int, ...]

    def get(self, data: Any, ctx: dict[str, Any]) -> Any:
        value = ctx if self.context else data
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    raise _Missing(self.text)
            elif not isinstance(value, dict) or step not in value:
                raise _Missing(self.text)
            value = value[step]
        return value

    def exists(self, data: Any, ctx: dict[str, Any]) -> bool:
        try:
            self.get(data, ctx)
        except _Missing:
            return False
        return True


_ROOT = _Path("$", False, ())


def _parse_path(text: Any, where: str, *, state: str | None, context_ok: bool = True) -> _Path:
    if not isinstance(text, str) or not text.startswith("$"):
        raise InvalidDefinition(f"{where}: {text!r} is not a JSONPath", state=state)
    is_context = text.startswith("$$")
    if is_context and not context_ok:
        raise UnsupportedFeature(
            f"{where}: context object paths ({text!r}) are not supported here",
            state=state,
            feature="context path",
        )
    pos = 2 if is_context else 1
    steps: list[str | int] = []
    while pos < len(text):
        name = index = quoted = None
        if text[pos] == "." and not text.startswith("..", pos):
            name = _NAME_RE.match(text, pos + 1)
        elif text[pos] == "[":
            index = _INDEX_RE.match(text, pos)
            quoted = None if index else _QUOTED_RE.match(text, pos)
        match = name or index or quoted
        if match is None:
            raise UnsupportedFeature(
                f"{where}: JSONPath {text!r} goes beyond the supported subset "
                "($, $.a.b, $.a[0], $['a']): no wildcards, filters, slices or recursive descent",
                state=state,
                feature="JSONPath",
            )
        if name:
            steps.append(name.group())
        elif index:
            steps.append(int(index.group(1)))
        else:
            steps.append(match.group(1) if match.group(1) is not None else match.group(2))
        pos = match.end()
    if is_context:
        _check_context_path(text, steps, where, state)
    return _Path(text, is_context, tuple(steps))


def _check_context_path(text: str, steps: list[str | int], where: str, state: str | None) -> None:
    if not steps:
        return
    fields = _CONTEXT_FIELDS.get(steps[0]) if isinstance(steps[0], str) else None
    known = fields is not None and (len(steps) == 1 or steps[1] in fields)
    # Only the execution input has structure below its own field.
    deep_ok = len(steps) <= 2 or (steps[0] == "Execution" and steps[1] == "Input")
    if not (known and deep_ok):
        raise UnsupportedFeature(
            f"{where}: context object path {text!r} is not available "
            "(supported: $$.Execution.*, $$.State.*, $$.StateMachine.*)",
            state=state,
            feature="context object",
        )


def _put(target: Any, steps: tuple[str | int, ...], value: Any) -> Any:
    """A copy of `target` with `value` placed at `steps`, creating missing objects on the way."""
    if not steps:
        return value
    root = copy.deepcopy(target)
    current = root
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                raise _Missing(f"[{step}]")
        elif not isinstance(current, dict):
            raise _Missing(step)
        elif not last and step not in current:
            current[step] = {}
        if last:
            current[step] = value
        else:
            current = current[step]
    return root


# --------------------------------------------------------------------------------------------
# Intrinsic functions
# --------------------------------------------------------------------------------------------


class _IntrinsicError(Exception):
    """An intrinsic function was given arguments it cannot work with."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _fn_format(args: list[Any], template_parts: tuple[str, ...] | None) -> str:
    template = args[0]
    if not isinstance(template, str):
        raise _IntrinsicError("the template (first argument) must be a string")
    parts = template_parts if template_parts is not None else tuple(template.split("{}"))
    values = args[1:]
    if len(parts) - 1 != len(values):
        raise _IntrinsicError(
            f"the template has {len(parts) - 1} placeholders but {len(values)} values were given"
        )
    out = [parts[0]]
    for value, tail in zip(values, parts[1:], strict=True):
        if isinstance(value, dict | list):
            raise _IntrinsicError("values must be strings, numbers, booleans or null")
        out.append(value if isinstance(value, str) else _compact(value))
        out.append(tail)
    return "".join(out)


def _fn_string_to_json(args: list[Any]) -> Any:
    (text,) = args
    if not isinstance(text, str):
        raise _IntrinsicError("the argument must be a string")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _IntrinsicError(f"the string is not JSON: {exc}") from exc


def _fn_array_partition(args: list[Any]) -> list[Any]:
    array, size = args
    if not isinstance(array, list) or not _is_int(size) or size <= 0:
        raise _IntrinsicError("expects an array and a positive integer chunk size")
    return [array[i : i + size] for i in range(0, len(array), size)]


def _fn_array_contains(args: list[Any]) -> bool:
    array, value = args
    if not isinstance(array, list):
        raise _IntrinsicError("the first argument must be an array")
    return any(_same_json(item, value) for item in array)


def _same_json(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1, although Python says so.
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _fn_array_range(args: list[Any]) -> list[int]:
    start, end, step = args
    if not all(_is_int(v) for v in args) or step == 0:
        raise _IntrinsicError("expects integer start, end and a non-zero integer step")
    values = list(range(start, end + (1 if step > 0 else -1), step))
    if len(values) > 1000:
        raise _IntrinsicError("the range would have more than 1000 items")
    return values


def _fn_array_get_item(args: list[Any]) -> Any:
    array, index = args
    if not isinstance(array, list) or not _is_int(index) or index < 0:
        raise _IntrinsicError("expects an array and a non-negative integer index")
    if index >= len(array):
        raise _IntrinsicError(f"index {index} is out of bounds for an array of {len(array)}")
    return array[index]


def _fn_array_unique(args: list[Any]) -> list[Any]:
    (array,) = args
    if not isinstance(array, list):
        raise _IntrinsicError("the argument must be an array")
    seen: set[str] = set()
    unique = []
    for item in array:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _fn_base64_encode(args: list[Any]) -> str:
    (text,) = args
    if not isinstance(text, str) or len(text) > 10000:
        raise _IntrinsicError("expects a string of at most 10000 characters")
    return base64.b64encode(text.encode()).decode()


def _fn_base64_decode(args: list[Any]) -> str:
    (text,) = args
    if not isinstance(text, str) or len(text) > 10000:
        raise _IntrinsicError("expects a string of at most 10000 characters")
    try:
        return base64.b64decode(text, validate=True).decode()
    except ValueError as exc:
        raise _IntrinsicError(f"not valid base64 text: {exc}") from exc


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384"}
_HASHES["SHA-512"] = "sha512"


def _fn_hash(args: list[Any]) -> str:
    data, algorithm = args
    if not isinstance(data, str) or len(data) > 10000:
        raise _IntrinsicError("expects a string of at most 10000 characters to hash")
    if algorithm not in _HASHES:
        raise _IntrinsicError(f"algorithm must be one of {', '.join(_HASHES)}")
    return hashlib.new(_HASHES[algorithm], data.encode()).hexdigest()


def _fn_json_merge(args: list[Any]) -> dict[str, Any]:
    left, right, deep = args
    if not isinstance(left, dict) or not isinstance(right, dict):
        raise _IntrinsicError("expects two JSON objects")
    if deep is not False:
        raise _IntrinsicError("only shallow merges (third argument false) are supported")
    return {**left, **right}


def _fn_math_add(args: list[Any]) -> int:
    a, b = args
    if not (_is_int(a) and _is_int(b)):
        raise _IntrinsicError("expects two integers")
    return a + b


def _unary(check: Callable[[Any], bool], message: str, fn: Callable[[Any], Any]):
    def call(args: list[Any]) -> Any:
        if not check(args[0]):
            raise _IntrinsicError(message)
        return fn(args[0])

    return call


# name -> (implementation, min args, max args or None)
_INTRINSICS: dict[str, tuple[Callable[[list[Any]], Any], int, int | None]] = {
    "States.StringToJson": (_fn_string_to_json, 1, 1),
    "States.JsonToString": (lambda args: _compact(args[0]), 1, 1),
    "States.Array": (list, 0, None),
    "States.ArrayPartition": (_fn_array_partition, 2, 2),
    "States.ArrayContains": (_fn_array_contains, 2, 2),
    "States.ArrayRange": (_fn_array_range, 3, 3),
    "States.ArrayGetItem": (_fn_array_get_item, 2, 2),
    "States.ArrayLength": (
        _unary(lambda a: isinstance(a, list), "the argument must be an array", len),
        1,
        1,
    ),
    "States.ArrayUnique": (_fn_array_unique, 1, 1),
    "States.Base64Encode": (_fn_base64_encode, 1, 1),
    "States.Base64Decode": (_fn_base64_decode, 1, 1),
    "States.Hash": (_fn_hash, 2, 2),
    "States.JsonMerge": (_fn_json_merge, 3, 3),
    "States.MathAdd": (_fn_math_add, 2, 2),
    "States.UUID": (lambda args: str(uuid.uuid4()), 0, 0),
}
# States.Format takes the parsed template as well; it is dispatched separately.
_INTRINSIC_NAMES = {*_INTRINSICS, "States.Format"}
# Functions AWS has and this interpreter refuses rather than guess their edge cases.
_REFUSED_INTRINSICS = {"States.StringSplit", "States.MathRandom"}
_FAIL_PATH_INTRINSICS = {
    "States.Format",
    "States.JsonToString",
    "States.ArrayGetItem",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.UUID",
}


class _Node:
    """A compiled piece of a payload template or an intrinsic argument."""

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        raise NotImplementedError


@dataclass
class _Const(_Node):
    value: Any
    # For string literals: the text split at unescaped "{}" (States.Format placeholders).
    parts: tuple[str, ...] | None = None

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        return copy.deepcopy(self.value)


@dataclass
class _PathNode(_Node):
    path: _Path
    field_name: str

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        try:
            return copy.deepcopy(self.path.get(data, ctx))
        except _Missing:
            raise _runtime_error(
                state,
                f"The JSONPath '{self.path.text}' specified for the field '{self.field_name}' "
                "could not be found in the input.",
            ) from None


@dataclass
class _Call(_Node):
    name: str
    args: list[_Node]
    text: str

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        values = [arg.eval(data, ctx, state) for arg in self.args]
        try:
            if self.name == "States.Format":
                first = self.args[0]
                parts = first.parts if isinstance(first, _Const) else None
                return _fn_format(values, parts)
            return _INTRINSICS[self.name][0](values)
        except _IntrinsicError as exc:
            raise _StatesError(
                "States.IntrinsicFailure",
                f"The intrinsic function '{self.text}' in state '{state}' failed: {exc}",
            ) from None


@dataclass
class _Object(_Node):
    items: list[tuple[str, _Node]]

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        return {key: node.eval(data, ctx, state) for key, node in self.items}


@dataclass
class _Array(_Node):
    items: list[_Node]

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        return [node.eval(data, ctx, state) for node in self.items]


_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_FUNCTION_NAME_RE = re.compile(r"States\.[A-Za-z0-9]+")


class _IntrinsicParser:
    """Parses `States.Fn(arg, ...)`; arguments are literals, paths or nested calls."""

    MAX_DEPTH = 10

    def __init__(self, text: str, where: str, state: str | None):
        self.text = text
        self.where = where
        self.state = state
        self.pos = 0

    def fail(self, message: str) -> InvalidDefinition:
        return InvalidDefinition(
            f"{self.where}: {message} in intrinsic {self.text!r} at offset {self.pos}",
            state=self.state,
        )

    def parse(self) -> _Call:
        call = self.call(1)
        self.skip_spaces()
        if self.pos != len(self.text):
            raise self.fail("unexpected text after the closing parenthesis")
        return call

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def call(self, depth: int) -> _Call:
        if depth > self.MAX_DEPTH:
            raise self.fail(f"more than {self.MAX_DEPTH} nested intrinsic functions")
        start = self.pos
        match = _FUNCTION_NAME_RE.match(self.text, self.pos)
        if not match:
            raise self.fail("expected an intrinsic function name")
        name = match.group()
        if name not in _INTRINSIC_NAMES:
            reason = "is not implemented" if name in _REFUSED_INTRINSICS else "is not known"
            raise UnsupportedFeature(
                f"{self.where}: intrinsic function {name} {reason} by the local interpreter",
                state=self.state,
                feature=name,
            )
        self.pos = match.end()
        if self.pos >= len(self.text) or self.text[self.pos] != "(":
            raise self.fail("expected '('")
        self.pos += 1
        args: list[_Node] = []
        self.skip_spaces()
        if self.pos < len(self.text) and self.text[self.pos] == ")":
            self.pos += 1
        else:
            while True:
                self.skip_spaces()
                args.append(self.argument(depth))
                self.skip_spaces()
                if self.pos >= len(self.text):
                    raise self.fail("missing ')'")
                if self.text[self.pos] == ")":
                    self.pos += 1
                    break
                if self.text[self.pos] != ",":
                    raise self.fail("expected ',' or ')'")
                self.pos += 1
        self.check_arity(name, args)
        return _Call(name, args, self.text[start : self.pos])

    def check_arity(self, name: str, args: list[_Node]) -> None:
        low, high = (1, None) if name == "States.Format" else _INTRINSICS[name][1:]
        if len(args) < low or (high is not None and len(args) > high):
            expected = f"{low}" if low == high else f"{low}..{high if high is not None else 'n'}"
            raise self.fail(f"{name} takes {expected} arguments, got {len(args)}")
        if name == "States.Format" and isinstance(args[0], _Const):
            template = args[0]
            if not isinstance(template.value, str) or template.parts is None:
                raise self.fail("States.Format needs a string template")
            if len(template.parts) - 1 != len(args) - 1:
                raise self.fail(
                    f"States.Format template has {len(template.parts) - 1} placeholders "
                    f"but {len(args) - 1} values"
                )
        if (
            name == "States.JsonMerge"
            and isinstance(args[2], _Const)
            and args[2].value is not False
        ):
            raise self.fail("States.JsonMerge supports only shallow merges (false)")

    def argument(self, depth: int) -> _Node:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.fail("missing argument")
        if text[pos] == "'":
            return self.string()
        if text[pos] == "$":
            return self.path()
        if text.startswith("States.", pos):
            return self.call(depth + 1)
        for word, value in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                self.pos += len(word)
                return _Const(value)
        number = _NUMBER_RE.match(text, pos)
        if number:
            self.pos = number.end()
            literal = number.group()
            return _Const(float(literal) if any(c in literal for c in ".eE") else int(literal))
        raise self.fail("expected a string, number, boolean, null, path or function")

    def string(self) -> _Const:
        # Escapes: \' \{ \} \\ ; an escaped brace is never a States.Format placeholder.
        self.pos += 1
        parts: list[str] = []
        current: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.fail("unterminated string literal")
            ch = text[self.pos]
            if ch == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in "'{}\\":
                current.append(text[self.pos + 1])
                self.pos += 2
            elif ch == "'":
                self.pos += 1
                break
            elif text.startswith("{}", self.pos):
                parts.append("".join(current))
                current = []
                self.pos += 2
            else:
                current.append(ch)
                self.pos += 1
        parts.append("".join(current))
        return _Const("{}".join(parts), tuple(parts))

    def path(self) -> _PathNode:
        start = self.pos
        depth = 0
        quote: str | None = None
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "'\"" and depth:
                quote = ch
            elif ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            elif ch in ",)" and depth == 0:
                break
            self.pos += 1
        raw = text[start : self.pos].rstrip()
        return _PathNode(_parse_path(raw, self.where, state=self.state), self.where)


def _compile_expression(text: Any, where: str, state: str | None) -> _Node:
    """The value of a `.$` field: a path or an intrinsic function call."""
    if not isinstance(text, str):
        raise InvalidDefinition(f"{where}: the value must be a string", state=state)
    if text.startswith("$"):
        return _PathNode(_parse_path(text, where, state=state), where.rsplit(".", 1)[-1])
    if text.startswith("States."):
        return _IntrinsicParser(text, where, state).parse()
    raise InvalidDefinition(
        f"{where}: {text!r} is neither a JSONPath nor an intrinsic function", state=state
    )


def _compile_template(value: Any, where: str, state: str | None) -> _Node:
    if isinstance(value, dict):
        items: list[tuple[str, _Node]] = []
        seen: set[str] = set()
        for key, sub in value.items():
            if key.endswith(".$"):
                out_key = key[:-2]
                node = _compile_expression(sub, f"{where}.{key}", state)
            else:
                out_key = key
                node = _compile_template(sub, f"{where}.{key}", state)
            if out_key in seen:
                raise InvalidDefinition(f"{where}: field {out_key!r} is given twice", state=state)
            seen.add(out_key)
            items.append((out_key, node))
        return _Object(items)
    if isinstance(value, list):
        return _Array([_compile_template(v, f"{where}[{i}]", state) for i, v in enumerate(value)])
    return _Const(value)


# --------------------------------------------------------------------------------------------
# Choice rules
# --------------------------------------------------------------------------------------------

_TIMESTAMP_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(value: Any) -> datetime | None:
    """The datetime of an ASL timestamp (RFC 3339 with uppercase T and Z), or None."""
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP_RE.match(value)
    if not match:
        return None
    fraction = (match.group(2) or "")[:6].ljust(6, "0")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        return datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}")
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _string_kind(v: Any) -> Any:
    return v if isinstance(v, str) else _NO


def _number_kind(v: Any) -> Any:
    return v if _is_number(v) else _NO


def _timestamp_kind(v: Any) -> Any:
    parsed = parse_timestamp(v)
    return parsed if parsed is not None else _NO


def _boolean_kind(v: Any) -> Any:
    return v if isinstance(v, bool) else _NO


_NO = object()  # a value of the wrong type: the comparison is false, not an error

# operator -> (coerce both sides, compare)
_COMPARISONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any], bool]]] = {}
for _suffix, _compare in _ORDERINGS.items():
    _COMPARISONS[f"String{_suffix}"] = (_string_kind, _compare)
    _COMPARISONS[f"Numeric{_suffix}"] = (_number_kind, _compare)
    _COMPARISONS[f"Timestamp{_suffix}"] = (_timestamp_kind, _compare)
_COMPARISONS["BooleanEquals"] = (_boolean_kind, _ORDERINGS["Equals"])

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsString": lambda v: isinstance(v, str),
    "IsNumeric": _is_number,
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}

_Rule = Callable[[Any, dict[str, Any], str], bool]


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    # "*" matches anything; "\*" is a literal star and "\\" a literal backslash.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _variable(path: _Path, data: Any, ctx: dict[str, Any], state: str) -> Any:
    try:
        return path.get(data, ctx)
    except _Missing:
        raise _runtime_error(
            state,
            f"Invalid path '{path.text}': The choice state's condition path references "
            "an invalid value.",
        ) from None


def _compile_rule(rule: Any, where: str, state: str, *, top: bool) -> _Rule:
    if not isinstance(rule, dict):
        raise InvalidDefinition(f"{where}: a choice rule must be an object", state=state)
    for unsupported, feature in (("Condition", "JSONata"), ("Assign", "variables (Assign)")):
        if unsupported in rule:
            raise UnsupportedFeature(
                f"{where}: {unsupported} needs {feature}, which is not supported",
                state=state,
                feature=feature,
            )
    if top and "Next" not in rule:
        raise InvalidDefinition(f"{where}: a top-level choice rule needs Next", state=state)
    if not top and "Next" in rule:
        raise InvalidDefinition(f"{where}: only top-level choice rules have Next", state=state)
    keys = set(rule) - {"Comment", "Next"}
    combinators = keys & {"And", "Or", "Not"}
    if combinators:
        if len(keys) != 1:
            raise InvalidDefinition(
                f"{where}: {sorted(keys)} cannot be combined in one rule", state=state
            )
        op = combinators.pop()
        operand = rule[op]
        if op == "Not":
            inner = _compile_rule(operand, f"{where}.Not", state, top=False)
            return lambda d, c, s: not inner(d, c, s)
        if not isinstance(operand, list) or not operand:
            raise InvalidDefinition(f"{where}.{op}: must be a non-empty list", state=state)
        rules = [
            _compile_rule(r, f"{where}.{op}[{i}]", state, top=False) for i, r in enumerate(operand)
        ]
        if op == "And":
            return lambda d, c, s: all(r(d, c, s) for r in rules)
        return lambda d, c, s: any(r(d, c, s) for r in rules)
    if "Variable" not in keys:
        raise InvalidDefinition(f"{where}: a comparison needs Variable", state=state)
    variable = _parse_path(rule["Variable"], f"{where}.Variable", state=state)
    ops = keys - {"Variable"}
    if len(ops) != 1:
        raise InvalidDefinition(
            f"{where}: a rule needs exactly one comparison operator, got {sorted(ops) or 'none'}",
            state=state,
        )
    op = ops.pop()
    return _compile_comparison(op, rule[op], variable, f"{where}.{op}", state)


def _compile_comparison(op: str, operand: Any, variable: _Path, where: str, state: str) -> _Rule:
    if op == "IsPresent" or op in _TYPE_TESTS:
        if not isinstance(operand, bool):
            raise InvalidDefinition(f"{where}: must be true or false", state=state)
        if op == "IsPresent":
            return lambda d, c, s: variable.exists(d, c) == operand
        test = _TYPE_TESTS[op]
        return lambda d, c, s: test(_variable(variable, d, c, s)) == operand
    if op == "StringMatches":
        if not isinstance(operand, str):
            raise InvalidDefinition(f"{where}: the pattern must be a string", state=state)
        regex = _wildcard_regex(operand)

        def matches(d: Any, c: dict[str, Any], s: str) -> bool:
            value = _variable(variable, d, c, s)
            return isinstance(value, str) and regex.fullmatch(value) is not None

        return matches
    base, by_path = (op[:-4], True) if op.endswith("Path") else (op, False)
    if base not in _COMPARISONS:
        raise InvalidDefinition(f"{where}: unknown comparison operator {op!r}", state=state)
    kind, compare = _COMPARISONS[base]
    if by_path:
        other = _parse_path(operand, where, state=state)

        def right(d: Any, c: dict[str, Any], s: str) -> Any:
            return _variable(other, d, c, s)

    else:
        if kind(operand) is _NO:
            raise InvalidDefinition(
                f"{where}: {operand!r} has the wrong type for {op}", state=state
            )
        literal = operand

        def right(d: Any, c: dict[str, Any], s: str) -> Any:
            return literal

    def evaluate(d: Any, c: dict[str, Any], s: str) -> bool:
        left = kind(_variable(variable, d, c, s))
        other_value = kind(right(d, c, s))
        if left is _NO or other_value is _NO:
            return False
        return compare(left, other_value)

    return evaluate


# --------------------------------------------------------------------------------------------
# Compiled definition
# --------------------------------------------------------------------------------------------

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


@dataclass
class _Retrier:
    errors: tuple[str, ...]
    interval: int = 1
    max_attempts: int = 3
    backoff: float = 2.0
    max_delay: int | None = None
    jitter: str = "NONE"

    def delay(self, attempt: int, rng: random.Random) -> float:
        seconds = self.interval * self.backoff ** (attempt - 1)
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay)
        if self.jitter == "FULL":
            seconds = rng.uniform(0, seconds)
        return seconds


@dataclass
class _Catcher:
    errors: tuple[str, ...]
    next: str
    result_path: _Path | None  # None: ResultPath null, keep the input as it was


@dataclass
class _State:
    name: str
    kind: str
    next: str | None = None
    input_path: _Path | None = _ROOT  # None: InputPath null
    output_path: _Path | None = _ROOT
    parameters: _Node | None = None
    result_selector: _Node | None = None
    result_path: _Path | None = _ROOT  # None: ResultPath null
    result: Any = None
    has_result: bool = False
    retriers: list[_Retrier] = field(default_factory=list)
    catchers: list[_Catcher] = field(default_factory=list)
    resource: str = ""
    integration: str = ""  # "invoke" (lambda:invoke) or "function" (a function ARN)
    timeout: int | None = None
    timeout_path: _Path | None = None
    choices: list[tuple[_Rule, str]] = field(default_factory=list)
    default: str | None = None
    seconds: int | None = None
    seconds_path: _Path | None = None
    timestamp: datetime | None = None
    timestamp_path: _Path | None = None
    error: str | None = None
    error_expr: _Node | None = None
    cause: str | None = None
    cause_expr: _Node | None = None
    branches: list[_Machine] = field(default_factory=list)


@dataclass
class _Machine:
    start_at: str
    states: dict[str, _State]
    timeout: int | None = None


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
    _compile_definition(definition)


def _compile_definition(definition: Any) -> _Machine:
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
    if not _is_int(value) or value < minimum or value > _MAX_TIMEOUT:
        raise InvalidDefinition(
            f"{where} must be an integer from {minimum} to {_MAX_TIMEOUT}, not {value!r}",
            state=state,
        )
    return value


def _compile_machine(raw: dict[str, Any], where: str) -> _Machine:
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
    return _Machine(start_at, states)


def _targets(state: _State) -> Iterable[str]:
    if state.next:
        yield state.next
    if state.default:
        yield state.default
    for _, target in state.choices:
        yield target
    for catcher in state.catchers:
        yield catcher.next


def _compile_state(name: str, raw: Any) -> _State:
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
    state = _State(name, kind)
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


def _compile_transition(state: _State, raw: dict[str, Any]) -> None:
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


def _optional_path(raw: dict[str, Any], key: str, state: str) -> _Path | None:
    value = raw.get(key, "$")
    if value is None:
        return None
    return _parse_path(value, f"state {state!r} {key}", state=state, context_ok=False)


def _compile_data_fields(state: _State, raw: dict[str, Any]) -> None:
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
        node = _compile_template(raw[key], f"state {name!r} {key}", name)
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


def _compile_retry(raw: Any, state: str) -> list[_Retrier]:
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
        retrier = _Retrier(_error_names(entry.get("ErrorEquals"), where, state))
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
            if not _is_number(rate) or rate < 1.0:
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


def _compile_catch(raw: Any, state: str) -> list[_Catcher]:
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
            _Catcher(
                _error_names(entry.get("ErrorEquals"), where, state),
                entry["Next"],
                _optional_path(entry, "ResultPath", state),
            )
        )
    _check_all_is_last(catchers, "Catch", state)
    return catchers


def _compile_pass(state: _State, raw: dict[str, Any]) -> None:
    if "Result" in raw:
        state.has_result = True
        state.result = raw["Result"]


def _compile_task(state: _State, raw: dict[str, Any]) -> None:
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
        state.timeout_path = _parse_path(
            raw["TimeoutSecondsPath"],
            f"state {name!r} TimeoutSecondsPath",
            state=name,
            context_ok=False,
        )


def _compile_choice(state: _State, raw: dict[str, Any]) -> None:
    name = state.name
    choices = raw.get("Choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidDefinition(f"state {name!r}: Choices must be a non-empty list", state=name)
    for i, rule in enumerate(choices):
        compiled = _compile_rule(rule, f"state {name!r} Choices[{i}]", name, top=True)
        if not isinstance(rule["Next"], str):
            raise InvalidDefinition(f"state {name!r} Choices[{i}]: Next must be a name", state=name)
        state.choices.append((compiled, rule["Next"]))
    if "Default" in raw:
        if not isinstance(raw["Default"], str):
            raise InvalidDefinition(f"state {name!r}: Default must be a state name", state=name)
        state.default = raw["Default"]


def _compile_wait(state: _State, raw: dict[str, Any]) -> None:
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
        state.seconds_path = _parse_path(raw[key], where, state=name, context_ok=False)
    else:
        state.timestamp_path = _parse_path(raw[key], where, state=name, context_ok=False)


def _compile_fail(state: _State, raw: dict[str, Any]) -> None:
    name = state.name
    for plain, dynamic in (("Error", "ErrorPath"), ("Cause", "CausePath")):
        if plain in raw and dynamic in raw:
            raise InvalidDefinition(f"state {name!r}: {plain} and {dynamic} exclude each other")
        if plain in raw and not isinstance(raw[plain], str):
            raise InvalidDefinition(f"state {name!r}: {plain} must be a string", state=name)
        if dynamic in raw:
            node = _compile_expression(raw[dynamic], f"state {name!r} {dynamic}", name)
            if isinstance(node, _Call) and node.name not in _FAIL_PATH_INTRINSICS:
                raise InvalidDefinition(
                    f"state {name!r}: {node.name} cannot be used in {dynamic}", state=name
                )
            if plain == "Error":
                state.error_expr = node
            else:
                state.cause_expr = node
    state.error = raw.get("Error")
    state.cause = raw.get("Cause")


def _compile_parallel(state: _State, raw: dict[str, Any]) -> None:
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


# --------------------------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------------------------


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _matches(names: tuple[str, ...], error: str | None) -> bool:
    if "States.ALL" in names:
        return True
    if "States.TaskFailed" in names and error != "States.Timeout":
        return True
    return error in names


def _arn_part(arn: str, index: int, default: str) -> str:
    parts = arn.split(":")
    return parts[index] if len(parts) > index and parts[index] else default


@dataclass
class _Trace:
    """The event chain of one thread of control, for previousEventId."""

    last_id: int = 0


class _Run:
    """One execution: its context object, deadline and event log."""

    def __init__(
        self,
        interpreter: StateMachineInterpreter,
        context: dict[str, Any],
        deadline: float | None,
        on_event: Callable[[dict[str, Any]], None] | None,
        region: str,
    ):
        self.interpreter = interpreter
        self.context = context
        self.deadline = deadline
        self.on_event = on_event
        self.region = region
        self._lock = threading.Lock()
        self._next_id = 1

    def emit(
        self, trace: _Trace, kind: str, details_key: str | None = None, details: Any = None
    ) -> int:
        # One lock for numbering and delivery keeps the sink's order equal to the id order,
        # also when Parallel branches report at the same time.
        with self._lock:
            event: dict[str, Any] = {
                "id": self._next_id,
                "previousEventId": trace.last_id,
                "timestamp": self.interpreter.now(),
                "type": kind,
            }
            if details_key:
                event[details_key] = details
            trace.last_id = self._next_id
            self._next_id += 1
            if self.on_event:
                self.on_event(event)
        return event["id"]

    def remaining(self) -> float | None:
        if self.deadline is None:
            return None
        return self.deadline - self.interpreter.monotonic()

    def checkpoint(self, stop: StopSignal) -> None:
        if stop.is_set():
            raise _Stopped
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise _ExecutionTimedOut

    def state_context(self, state: str, entered: datetime, retry_count: int) -> dict[str, Any]:
        return {
            **self.context,
            "State": {"Name": state, "EnteredTime": _iso(entered), "RetryCount": retry_count},
        }


class StateMachineInterpreter:
    """Runs executions of one validated definition; safe to use from several threads."""

    def __init__(
        self,
        definition: dict[str, Any],
        *,
        invoke: Invoke,
        time_scale: float = 1.0,
        sleep: Callable[[float], None] | None = None,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ):
        """Validate `definition` (raising InvalidDefinition/UnsupportedFeature) and keep it.

        `sleep(seconds)` replaces the interruptible default wait: tests record the scheduled
        intervals with it. `now` and `monotonic` replace the wall and deadline clocks.
        """
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._machine = _compile_definition(definition)
        self._invoke = invoke
        self._time_scale = time_scale
        self._sleep = sleep
        self.now = now or (lambda: datetime.now(UTC))
        self.monotonic = monotonic or time.monotonic
        self._rng = rng or random.Random()

    def run(
        self,
        execution_input: Any,
        *,
        execution_arn: str | None = None,
        state_machine_arn: str = "arn:aws:states:us-east-1:123456789012:stateMachine:Local",
        role_arn: str | None = None,
        start_time: datetime | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        stop: StopSignal | None = None,
    ) -> ExecutionResult:
        """Run one execution to its end and report how it ended; never raises for the workflow."""
        machine_name = _arn_part(state_machine_arn, 6, "Local")
        region = _arn_part(state_machine_arn, 3, "us-east-1")
        if execution_arn is None:
            prefix = state_machine_arn.replace(":stateMachine:", ":execution:")
            execution_arn = f"{prefix}:{uuid.uuid4()}"
        stop = stop or StopSignal()
        started = start_time or self.now()
        context = {
            "Execution": {
                "Id": execution_arn,
                "Input": execution_input,
                "Name": _arn_part(execution_arn, 7, ""),
                "StartTime": _iso(started),
                "RedriveCount": 0,
            },
            "StateMachine": {"Id": state_machine_arn, "Name": machine_name},
        }
        if role_arn:
            context["Execution"]["RoleArn"] = role_arn
        timeout = self._machine.timeout
        deadline = self.monotonic() + timeout * self._time_scale if timeout else None
        run = _Run(self, context, deadline, on_event, region)
        trace = _Trace()
        started_details: dict[str, Any] = {
            "input": _dumps(execution_input),
            "inputDetails": {"truncated": False},
        }
        if role_arn:
            started_details["roleArn"] = role_arn
        run.emit(trace, "ExecutionStarted", "executionStartedEventDetails", started_details)
        try:
            output = self._run_machine(self._machine, execution_input, run, trace, stop)
            run.checkpoint(stop)
        except _Stopped:
            details = {k: v for k, v in (("error", stop.error), ("cause", stop.cause)) if v}
            run.emit(trace, "ExecutionAborted", "executionAbortedEventDetails", details)
            return ExecutionResult(ABORTED, error=stop.error, cause=stop.cause)
        except _ExecutionTimedOut:
            cause = f"The execution ran longer than its TimeoutSeconds ({timeout})."
            details = {"error": "States.Timeout", "cause": cause}
            run.emit(trace, "ExecutionTimedOut", "executionTimedOutEventDetails", details)
            return ExecutionResult(TIMED_OUT, error="States.Timeout", cause=cause)
        except _StatesError as exc:
            details = {
                k: v for k, v in (("error", exc.error), ("cause", exc.cause)) if v is not None
            }
            run.emit(trace, "ExecutionFailed", "executionFailedEventDetails", details)
            return ExecutionResult(FAILED, error=exc.error, cause=exc.cause)
        except Exception as exc:
            # A bug here must still end the execution with a recorded outcome.
            log.exception("interpreter failure in %s", execution_arn)
            cause = f"local interpreter error: {type(exc).__name__}: {exc}"
            details = {"error": "States.Runtime", "cause": cause}
            run.emit(trace, "ExecutionFailed", "executionFailedEventDetails", details)
            return ExecutionResult(FAILED, error="States.Runtime", cause=cause)
        details = {"output": _dumps(output), "outputDetails": {"truncated": False}}
        run.emit(trace, "ExecutionSucceeded", "executionSucceededEventDetails", details)
        return ExecutionResult(SUCCEEDED, output=output)

    # -- states -------------------------------------------------------------------------------

    def _run_machine(
        self, machine: _Machine, value: Any, run: _Run, trace: _Trace, stop: StopSignal
    ) -> Any:
        name: str | None = machine.start_at
        while name is not None:
            run.checkpoint(stop)
            name, value = self._run_state(machine.states[name], value, run, trace, stop)
        return value

    def _run_state(
        self, state: _State, raw: Any, run: _Run, trace: _Trace, stop: StopSignal
    ) -> tuple[str | None, Any]:
        entered = self.now()
        details = {"name": state.name, "input": _dumps(raw), "inputDetails": {"truncated": False}}
        run.emit(trace, f"{state.kind}StateEntered", "stateEnteredEventDetails", details)
        handler = getattr(self, f"_state_{state.kind.lower()}")
        try:
            next_name, output = handler(state, raw, run, trace, stop, entered)
        except _Stopped:
            if state.kind in ("Task", "Wait", "Parallel"):
                run.emit(trace, f"{state.kind}StateAborted")
            raise
        details = {
            "name": state.name,
            "output": _dumps(output),
            "outputDetails": {"truncated": False},
        }
        run.emit(trace, f"{state.kind}StateExited", "stateExitedEventDetails", details)
        return next_name, output

    def _path(self, path: _Path | None, value: Any, state: _State, field_name: str) -> Any:
        if path is None:
            return {}
        try:
            return path.get(value, {})
        except _Missing:
            raise _runtime_error(
                state.name,
                f"Invalid path '{path.text}' : The {field_name} could not be applied to the "
                f"input {_dumps(value)[:200]}.",
            ) from None

    def _result_path(self, path: _Path | None, raw: Any, result: Any, state: _State) -> Any:
        if path is None:
            return raw
        try:
            return _put(raw, path.steps, result)
        except _Missing:
            raise _runtime_error(
                state.name,
                f"Unable to apply ResultPath '{path.text}' to the input {_dumps(raw)[:200]}.",
            ) from None

    def _state_pass(self, state, raw, run, trace, stop, entered):
        effective = self._path(state.input_path, raw, state, "InputPath")
        if state.parameters is not None:
            ctx = run.state_context(state.name, entered, 0)
            effective = state.parameters.eval(effective, ctx, state.name)
        result = copy.deepcopy(state.result) if state.has_result else effective
        output = self._result_path(state.result_path, raw, result, state)
        return state.next, self._path(state.output_path, output, state, "OutputPath")

    def _state_succeed(self, state, raw, run, trace, stop, entered):
        effective = self._path(state.input_path, raw, state, "InputPath")
        return None, self._path(state.output_path, effective, state, "OutputPath")

    def _state_fail(self, state, raw, run, trace, stop, entered):
        ctx = run.state_context(state.name, entered, 0)
        error, cause = state.error, state.cause
        if state.error_expr is not None:
            error = self._string_of(state.error_expr, raw, ctx, state, "ErrorPath")
        if state.cause_expr is not None:
            cause = self._string_of(state.cause_expr, raw, ctx, state, "CausePath")
        raise _StatesError(error, cause)

    def _string_of(self, node: _Node, raw: Any, ctx: dict[str, Any], state: _State, key: str):
        value = node.eval(raw, ctx, state.name)
        if not isinstance(value, str):
            raise _runtime_error(state.name, f"{key} must select a string, got {_dumps(value)}.")
        return value

    def _state_choice(self, state, raw, run, trace, stop, entered):
        effective = self._path(state.input_path, raw, state, "InputPath")
        ctx = run.state_context(state.name, entered, 0)
        target = next((t for rule, t in state.choices if rule(effective, ctx, state.name)), None)
        target = target or state.default
        if target is None:
            raise _StatesError(
                "States.NoChoiceMatched",
                f"No Matches! The Choice state '{state.name}' has no rule matching its input "
                "and no Default.",
            )
        return target, self._path(state.output_path, effective, state, "OutputPath")

    def _state_wait(self, state, raw, run, trace, stop, entered):
        effective = self._path(state.input_path, raw, state, "InputPath")
        if state.seconds is not None:
            delay: float = state.seconds
        elif state.seconds_path is not None:
            seconds = self._path(state.seconds_path, effective, state, "SecondsPath")
            if not _is_int(seconds) or seconds < 0:
                raise _runtime_error(
                    state.name, f"SecondsPath must select a non-negative integer, got {seconds!r}."
                )
            delay = seconds
        else:
            moment = state.timestamp
            if state.timestamp_path is not None:
                value = self._path(state.timestamp_path, effective, state, "TimestampPath")
                moment = parse_timestamp(value)
                if moment is None:
                    raise _runtime_error(
                        state.name, f"TimestampPath must select a timestamp, got {value!r}."
                    )
            assert moment is not None
            delay = max(0.0, (moment - self.now()).total_seconds())
        self._pause(delay, run, stop)
        return state.next, self._path(state.output_path, effective, state, "OutputPath")

    def _state_task(self, state, raw, run, trace, stop, entered):
        return self._with_retry(state, raw, run, trace, stop, entered, self._task_body)

    def _state_parallel(self, state, raw, run, trace, stop, entered):
        return self._with_retry(state, raw, run, trace, stop, entered, self._parallel_body)

    def _with_retry(self, state, raw, run, trace, stop, entered, body):
        attempts = [0] * len(state.retriers)
        retries = 0
        while True:
            ctx = run.state_context(state.name, entered, retries)
            try:
                effective = self._path(state.input_path, raw, state, "InputPath")
                if state.parameters is not None:
                    effective = state.parameters.eval(effective, ctx, state.name)
                result = body(state, raw, effective, run, trace, stop)
                if state.result_selector is not None:
                    result = state.result_selector.eval(result, ctx, state.name)
                output = self._result_path(state.result_path, raw, result, state)
                return state.next, self._path(state.output_path, output, state, "OutputPath")
            except _StatesError as exc:
                if not exc.catchable:
                    raise
                index = next(
                    (i for i, r in enumerate(state.retriers) if _matches(r.errors, exc.error)),
                    None,
                )
                # Only the first matching retrier counts, even when it is exhausted.
                if index is not None and attempts[index] < state.retriers[index].max_attempts:
                    attempts[index] += 1
                    retries += 1
                    self._pause(state.retriers[index].delay(attempts[index], self._rng), run, stop)
                    continue
                catcher = next((c for c in state.catchers if _matches(c.errors, exc.error)), None)
                if catcher is None:
                    raise
                error_output = {"Error": exc.error, "Cause": exc.cause}
                return catcher.next, self._result_path(
                    catcher.result_path, raw, error_output, state
                )

    def _task_body(self, state, raw, effective, run, trace, stop):
        timeout = state.timeout
        if state.timeout_path is not None:
            timeout = self._path(state.timeout_path, raw, state, "TimeoutSecondsPath")
            if not _is_int(timeout) or timeout < 1:
                raise _runtime_error(
                    state.name, f"TimeoutSecondsPath must select a positive integer: {timeout!r}."
                )
        if state.integration == "invoke":
            return self._lambda_invoke(state, effective, timeout, run, trace, stop)
        return self._lambda_function(state, effective, timeout, run, trace, stop)

    def _lambda_invoke(self, state, params, timeout, run, trace, stop):
        function = params.get("FunctionName")
        if not isinstance(function, str) or not function:
            raise _runtime_error(state.name, "Parameters.FunctionName must be a non-empty string.")
        # Without a Payload the function receives an empty event, as Lambda's Invoke does.
        payload = params.get("Payload", {})
        resource = {"resourceType": "lambda", "resource": "invoke"}
        scheduled = {**resource, "region": run.region, "parameters": _dumps(params)}
        if timeout:
            scheduled["timeoutInSeconds"] = timeout
        run.emit(trace, "TaskScheduled", "taskScheduledEventDetails", scheduled)
        run.emit(trace, "TaskStarted", "taskStartedEventDetails", resource)
        try:
            value = self._call(function, payload, timeout, run, stop)
        except _TaskTimedOut:
            cause = f"The task ran longer than its TimeoutSeconds ({timeout})."
            details = {**resource, "error": "States.Timeout", "cause": cause}
            run.emit(trace, "TaskTimedOut", "taskTimedOutEventDetails", details)
            raise _StatesError("States.Timeout", cause) from None
        except TaskFailure as exc:
            details = {**resource, "error": exc.error, "cause": exc.cause}
            run.emit(trace, "TaskFailed", "taskFailedEventDetails", details)
            raise _StatesError(exc.error, exc.cause) from None
        result = _lambda_invoke_result(value)
        details = {**resource, "output": _dumps(result), "outputDetails": {"truncated": False}}
        run.emit(trace, "TaskSucceeded", "taskSucceededEventDetails", details)
        return result

    def _lambda_function(self, state, payload, timeout, run, trace, stop):
        scheduled = {
            "resource": state.resource,
            "input": _dumps(payload),
            "inputDetails": {"truncated": False},
        }
        if timeout:
            scheduled["timeoutInSeconds"] = timeout
        run.emit(trace, "LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails", scheduled)
        run.emit(trace, "LambdaFunctionStarted")
        try:
            value = self._call(state.resource, payload, timeout, run, stop)
        except _TaskTimedOut:
            cause = f"The task ran longer than its TimeoutSeconds ({timeout})."
            details = {"error": "States.Timeout", "cause": cause}
            run.emit(trace, "LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails", details)
            raise _StatesError("States.Timeout", cause) from None
        except TaskFailure as exc:
            details = {"error": exc.error, "cause": exc.cause}
            run.emit(trace, "LambdaFunctionFailed", "lambdaFunctionFailedEventDetails", details)
            raise _StatesError(exc.error, exc.cause) from None
        details = {"output": _dumps(value), "outputDetails": {"truncated": False}}
        run.emit(trace, "LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails", details)
        return value

    def _call(self, function: str, payload: Any, timeout: int | None, run: _Run, stop: StopSignal):
        """Invoke in a helper thread so that a timeout or a stop need not wait for the function."""
        task_limit = timeout * self._time_scale if timeout else None
        run_limit = run.remaining()
        outcome: dict[str, Any] = {}
        done = threading.Event()
        # The function gets its own copy: a handler that edits its event must not edit ours.
        payload = copy.deepcopy(payload)

        def target() -> None:
            try:
                outcome["value"] = self._invoke(function, payload, timeout=task_limit)
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                done.set()

        threading.Thread(target=target, name=f"sfn-task-{function[-40:]}", daemon=True).start()
        limits = [x for x in (task_limit, run_limit) if x is not None]
        limit = min(limits) if limits else None
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            slice_ = 0.05 if limit is None else max(0.0, min(0.05, limit - elapsed))
            if done.wait(slice_):
                break
            if stop.is_set():
                raise _Stopped
            if limit is not None and time.monotonic() - started >= limit:
                if task_limit is not None and (run_limit is None or task_limit <= run_limit):
                    raise _TaskTimedOut
                raise _ExecutionTimedOut
        if "error" in outcome:
            error = outcome["error"]
            if isinstance(error, TaskFailure):
                raise error
            if not isinstance(error, Exception):
                raise error
            raise TaskFailure.from_exception(error)
        try:
            # Detach from the function's objects and insist on JSON, as Lambda would.
            return json.loads(json.dumps(outcome["value"]))
        except (TypeError, ValueError) as exc:
            raise TaskFailure(
                "Lambda.Unknown", f"the function returned non-JSON data: {exc}"
            ) from None

    def _parallel_body(self, state, raw, effective, run, trace, stop):
        run.emit(trace, "ParallelStateStarted")
        branch_stop = stop.child()
        results: list[Any] = [None] * len(state.branches)
        failures: list[BaseException] = []
        last_ids: list[int] = []
        lock = threading.Lock()

        def run_branch(index: int, machine: _Machine) -> None:
            branch_trace = _Trace(trace.last_id)
            try:
                value = copy.deepcopy(effective)
                results[index] = self._run_machine(machine, value, run, branch_trace, branch_stop)
            except _Stopped:
                pass
            except BaseException as exc:
                with lock:
                    failures.append(exc)
                # One failed branch fails the Parallel state: the others are stopped.
                branch_stop.set()
            finally:
                with lock:
                    last_ids.append(branch_trace.last_id)

        threads = [
            threading.Thread(target=run_branch, args=(i, m), name=f"sfn-branch-{i}", daemon=True)
            for i, m in enumerate(state.branches)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        trace.last_id = max([trace.last_id, *last_ids])
        if failures:
            run.emit(trace, "ParallelStateFailed")
            raise failures[0]
        if stop.is_set():
            raise _Stopped
        run.emit(trace, "ParallelStateSucceeded")
        return results

    # -- time ---------------------------------------------------------------------------------

    def _pause(self, seconds: float, run: _Run, stop: StopSignal) -> None:
        delay = max(0.0, seconds * self._time_scale)
        remaining = run.remaining()
        cut_short = remaining is not None and remaining < delay
        if cut_short:
            delay = max(0.0, remaining or 0.0)
        if self._sleep is not None:
            self._sleep(delay)
        else:
            stop.wait(delay)
        if stop.is_set():
            raise _Stopped
        if cut_short:
            raise _ExecutionTimedOut
        run.checkpoint(stop)


def _lambda_invoke_result(payload: Any) -> dict[str, Any]:
    """The result of the lambda:invoke integration, shaped like the one AWS returns."""
    request_id = str(uuid.uuid4())
    headers = {
        "Connection": "keep-alive",
        "Content-Length": str(len(_dumps(payload))),
        "Content-Type": "application/json",
        "X-Amz-Executed-Version": "$LATEST",
        "x-amzn-RequestId": request_id,
    }
    return {
        "ExecutedVersion": "$LATEST",
        "Payload": payload,
        "SdkHttpMetadata": {
            "AllHttpHeaders": {key: [value] for key, value in headers.items()},
            "HttpHeaders": headers,
            "HttpStatusCode": 200,
        },
        "SdkResponseMetadata": {"RequestId": request_id},
        "StatusCode": 200,
    }
