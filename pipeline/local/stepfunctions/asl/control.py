"""Exceptions that carry control through a running execution; never seen by callers."""

from __future__ import annotations


class StatesError(Exception):
    """An error raised while running a state; Retry/Catch apply unless it is States.Runtime."""

    def __init__(self, error: str | None, cause: str | None, *, catchable: bool = True):
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause
        self.catchable = catchable


class BranchFailure(StatesError):
    """A Parallel branch's error, which the Parallel state reports as its own."""


def runtime_error(state: str, message: str) -> StatesError:
    """A States.Runtime error in `state`: it ends the execution, past any Retry or Catch."""
    return StatesError(
        "States.Runtime",
        f"An error occurred while executing the state '{state}'. {message}",
        catchable=False,
    )


class Stopped(Exception):
    """The execution (or the enclosing Parallel branch) was asked to stop."""


class ExecutionTimedOut(Exception):
    """The state machine's TimeoutSeconds elapsed."""


class TaskTimedOut(Exception):
    """A task ran past its TimeoutSeconds."""
