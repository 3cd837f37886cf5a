"""The interpreter's public vocabulary: errors, the invoke protocol, stop signals and results."""

from __future__ import annotations

import json
import threading
import traceback
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"

# Execution statuses, as DescribeExecution spells them.
RUNNING = "RUNNING"
SUCCEEDED = "SUCCEEDED"
FAILED = "FAILED"
ABORTED = "ABORTED"
TIMED_OUT = "TIMED_OUT"


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
