"""The interpreter: runs a compiled state machine's states, Retry, Catch, Parallel and waits."""

from __future__ import annotations

import copy
import functools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline.local.stepfunctions.asl.choice import iso, parse_timestamp
from pipeline.local.stepfunctions.asl.compile import compile_definition
from pipeline.local.stepfunctions.asl.control import (
    BranchFailure,
    ExecutionTimedOut,
    StatesError,
    Stopped,
    runtime_error,
)
from pipeline.local.stepfunctions.asl.execution import Run, Trace
from pipeline.local.stepfunctions.asl.model import Machine, State
from pipeline.local.stepfunctions.asl.paths import JsonPath, Missing, put
from pipeline.local.stepfunctions.asl.tasks import LambdaTasks
from pipeline.local.stepfunctions.asl.templates import Node
from pipeline.local.stepfunctions.asl.types import (
    ABORTED,
    FAILED,
    SUCCEEDED,
    TIMED_OUT,
    ExecutionResult,
    Invoke,
    StopSignal,
)
from pipeline.local.stepfunctions.asl.values import dumps, is_int

log = logging.getLogger(__name__)


def _matches(names: tuple[str, ...], error: str | None) -> bool:
    """Whether an ErrorEquals list names `error` (States.TaskFailed: all but States.Timeout)."""
    if "States.ALL" in names:
        return True
    if "States.TaskFailed" in names and error != "States.Timeout":
        return True
    return error in names


def _arn_part(arn: str, index: int, default: str) -> str:
    """Field `index` of a colon-separated ARN, or `default` when it is missing or empty."""
    parts = arn.split(":")
    return parts[index] if len(parts) > index and parts[index] else default


@functools.lru_cache(maxsize=64)
def _compiled(definition_text: str) -> Machine:
    """A definition compiled once and shared: the server starts an interpreter per execution,
    and compiling the project's workflow costs ~2.7 ms of CPU each time. A compiled Machine is
    only read while running, so executions on many threads can share it. A definition that
    does not compile raises each time (lru_cache keeps only results)."""
    return compile_definition(json.loads(definition_text))


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
        self._machine = _compiled(json.dumps(definition, sort_keys=True))
        self._tasks = LambdaTasks(invoke, time_scale)
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
                "StartTime": iso(started),
                "RedriveCount": 0,
            },
            "StateMachine": {"Id": state_machine_arn, "Name": machine_name},
        }
        if role_arn:
            context["Execution"]["RoleArn"] = role_arn
        timeout = self._machine.timeout
        deadline = self.monotonic() + timeout * self._time_scale if timeout else None
        run = Run(self, context, deadline, on_event, region)
        trace = Trace()
        started_details: dict[str, Any] = {
            "input": dumps(execution_input),
            "inputDetails": {"truncated": False},
        }
        if role_arn:
            started_details["roleArn"] = role_arn
        run.emit(trace, "ExecutionStarted", "executionStartedEventDetails", started_details)
        try:
            output = self._run_machine(self._machine, execution_input, run, trace, stop)
            run.checkpoint(stop)
        except Stopped:
            details = {k: v for k, v in (("error", stop.error), ("cause", stop.cause)) if v}
            run.emit(trace, "ExecutionAborted", "executionAbortedEventDetails", details)
            return ExecutionResult(ABORTED, error=stop.error, cause=stop.cause)
        except ExecutionTimedOut:
            cause = f"The execution ran longer than its TimeoutSeconds ({timeout})."
            details = {"error": "States.Timeout", "cause": cause}
            run.emit(trace, "ExecutionTimedOut", "executionTimedOutEventDetails", details)
            return ExecutionResult(TIMED_OUT, error="States.Timeout", cause=cause)
        except StatesError as exc:
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
        details = {"output": dumps(output), "outputDetails": {"truncated": False}}
        run.emit(trace, "ExecutionSucceeded", "executionSucceededEventDetails", details)
        return ExecutionResult(SUCCEEDED, output=output)

    # -- states -------------------------------------------------------------------------------

    def _run_machine(
        self, machine: Machine, value: Any, run: Run, trace: Trace, stop: StopSignal
    ) -> Any:
        name: str | None = machine.start_at
        while name is not None:
            run.checkpoint(stop)
            name, value = self._run_state(machine.states[name], value, run, trace, stop)
        return value

    def _run_state(
        self, state: State, raw: Any, run: Run, trace: Trace, stop: StopSignal
    ) -> tuple[str | None, Any]:
        entered = self.now()
        details = {"name": state.name, "input": dumps(raw), "inputDetails": {"truncated": False}}
        run.emit(trace, f"{state.kind}StateEntered", "stateEnteredEventDetails", details)
        handler = getattr(self, f"_state_{state.kind.lower()}")
        try:
            next_name, output = handler(state, raw, run, trace, stop, entered)
        except Stopped:
            if state.kind in ("Task", "Wait", "Parallel"):
                run.emit(trace, f"{state.kind}StateAborted")
            raise
        details = {
            "name": state.name,
            "output": dumps(output),
            "outputDetails": {"truncated": False},
        }
        run.emit(trace, f"{state.kind}StateExited", "stateExitedEventDetails", details)
        return next_name, output

    def _path(self, path: JsonPath | None, value: Any, state: State, field_name: str) -> Any:
        if path is None:
            return {}
        try:
            return path.get(value, {})
        except Missing:
            raise runtime_error(
                state.name,
                f"Invalid path '{path.text}' : The {field_name} could not be applied to the "
                f"input {dumps(value)[:200]}.",
            ) from None

    def _result_path(self, path: JsonPath | None, raw: Any, result: Any, state: State) -> Any:
        if path is None:
            return raw
        try:
            return put(raw, path.steps, result)
        except Missing:
            raise runtime_error(
                state.name,
                f"Unable to apply ResultPath '{path.text}' to the input {dumps(raw)[:200]}.",
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
        raise StatesError(error, cause)

    def _string_of(self, node: Node, raw: Any, ctx: dict[str, Any], state: State, key: str):
        value = node.eval(raw, ctx, state.name)
        if not isinstance(value, str):
            raise runtime_error(state.name, f"{key} must select a string, got {dumps(value)}.")
        return value

    def _state_choice(self, state, raw, run, trace, stop, entered):
        effective = self._path(state.input_path, raw, state, "InputPath")
        ctx = run.state_context(state.name, entered, 0)
        target = next((t for rule, t in state.choices if rule(effective, ctx, state.name)), None)
        target = target or state.default
        if target is None:
            raise StatesError(
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
            if not is_int(seconds) or seconds < 0:
                raise runtime_error(
                    state.name, f"SecondsPath must select a non-negative integer, got {seconds!r}."
                )
            delay = seconds
        else:
            moment = state.timestamp
            if state.timestamp_path is not None:
                value = self._path(state.timestamp_path, effective, state, "TimestampPath")
                moment = parse_timestamp(value)
                if moment is None:
                    raise runtime_error(
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
            except StatesError as exc:
                index = next(
                    (i for i, r in enumerate(state.retriers) if _matches(r.errors, exc.error)),
                    None,
                )
                # Only the first matching retrier counts, even when it is exhausted.
                if (
                    exc.catchable
                    and index is not None
                    and attempts[index] < state.retriers[index].max_attempts
                ):
                    attempts[index] += 1
                    retries += 1
                    self._pause(state.retriers[index].delay(attempts[index], self._rng), run, stop)
                    continue
                if isinstance(exc, BranchFailure):
                    # Recorded once the Parallel state has failed for good: AWS records no
                    # ParallelStateFailed for an attempt that a retrier runs again.
                    run.emit(trace, "ParallelStateFailed")
                if not exc.catchable:
                    raise
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
            if not is_int(timeout) or timeout < 1:
                raise runtime_error(
                    state.name, f"TimeoutSecondsPath must select a positive integer: {timeout!r}."
                )
        return self._tasks.call(state, effective, timeout, run, trace, stop)

    def _parallel_body(self, state, raw, effective, run, trace, stop):
        run.emit(trace, "ParallelStateStarted")
        branch_stop = stop.child()
        results: list[Any] = [None] * len(state.branches)
        failures: list[BaseException] = []
        last_ids: list[int] = []
        lock = threading.Lock()

        def run_branch(index: int, machine: Machine) -> None:
            branch_trace = Trace(trace.last_id)
            try:
                value = copy.deepcopy(effective)
                results[index] = self._run_machine(machine, value, run, branch_trace, branch_stop)
            except Stopped:
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
            failure = failures[0]
            if isinstance(failure, StatesError):
                # _with_retry records ParallelStateFailed, unless a retrier runs the branches again.
                raise BranchFailure(failure.error, failure.cause, catchable=failure.catchable)
            run.emit(trace, "ParallelStateFailed")
            raise failure
        if stop.is_set():
            raise Stopped
        run.emit(trace, "ParallelStateSucceeded")
        return results

    # -- time ---------------------------------------------------------------------------------

    def _pause(self, seconds: float, run: Run, stop: StopSignal) -> None:
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
            raise Stopped
        if cut_short:
            raise ExecutionTimedOut
        run.checkpoint(stop)
