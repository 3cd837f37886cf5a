"""Task states' Lambda calls: the invoke integration and function ARNs, with their events."""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from typing import Any

from pipeline.local.stepfunctions.asl.control import (
    ExecutionTimedOut,
    StatesError,
    Stopped,
    TaskTimedOut,
    runtime_error,
)
from pipeline.local.stepfunctions.asl.execution import Run, Trace
from pipeline.local.stepfunctions.asl.model import State
from pipeline.local.stepfunctions.asl.types import Invoke, StopSignal, TaskFailure
from pipeline.local.stepfunctions.asl.values import dumps


class LambdaTasks:
    """Calls a Task state's function on a helper thread and records the task's events."""

    def __init__(self, invoke: Invoke, time_scale: float) -> None:
        """`invoke` runs the functions; `time_scale` scales the task's TimeoutSeconds."""
        self._invoke = invoke
        self._time_scale = time_scale

    def call(
        self,
        state: State,
        params: Any,
        timeout: int | None,
        run: Run,
        trace: Trace,
        stop: StopSignal,
    ) -> Any:
        """The task's result for its effective input `params`; raises StatesError on failure."""
        if state.integration == "invoke":
            return self._lambda_invoke(state, params, timeout, run, trace, stop)
        return self._lambda_function(state, params, timeout, run, trace, stop)

    def _lambda_invoke(self, state, params, timeout, run, trace, stop):
        function = params.get("FunctionName")
        if not isinstance(function, str) or not function:
            raise runtime_error(state.name, "Parameters.FunctionName must be a non-empty string.")
        # Without a Payload the function receives an empty event, as Lambda's Invoke does.
        payload = params.get("Payload", {})
        resource = {"resourceType": "lambda", "resource": "invoke"}
        scheduled = {**resource, "region": run.region, "parameters": dumps(params)}
        if timeout:
            scheduled["timeoutInSeconds"] = timeout
        run.emit(trace, "TaskScheduled", "taskScheduledEventDetails", scheduled)
        run.emit(trace, "TaskStarted", "taskStartedEventDetails", resource)
        try:
            value = self._call(function, payload, timeout, run, stop)
        except TaskTimedOut:
            cause = f"The task ran longer than its TimeoutSeconds ({timeout})."
            details = {**resource, "error": "States.Timeout", "cause": cause}
            run.emit(trace, "TaskTimedOut", "taskTimedOutEventDetails", details)
            raise StatesError("States.Timeout", cause) from None
        except TaskFailure as exc:
            details = {**resource, "error": exc.error, "cause": exc.cause}
            run.emit(trace, "TaskFailed", "taskFailedEventDetails", details)
            raise StatesError(exc.error, exc.cause) from None
        result = _lambda_invoke_result(value)
        details = {**resource, "output": dumps(result), "outputDetails": {"truncated": False}}
        run.emit(trace, "TaskSucceeded", "taskSucceededEventDetails", details)
        return result

    def _lambda_function(self, state, payload, timeout, run, trace, stop):
        scheduled = {
            "resource": state.resource,
            "input": dumps(payload),
            "inputDetails": {"truncated": False},
        }
        if timeout:
            scheduled["timeoutInSeconds"] = timeout
        run.emit(trace, "LambdaFunctionScheduled", "lambdaFunctionScheduledEventDetails", scheduled)
        run.emit(trace, "LambdaFunctionStarted")
        try:
            value = self._call(state.resource, payload, timeout, run, stop)
        except TaskTimedOut:
            cause = f"The task ran longer than its TimeoutSeconds ({timeout})."
            details = {"error": "States.Timeout", "cause": cause}
            run.emit(trace, "LambdaFunctionTimedOut", "lambdaFunctionTimedOutEventDetails", details)
            raise StatesError("States.Timeout", cause) from None
        except TaskFailure as exc:
            details = {"error": exc.error, "cause": exc.cause}
            run.emit(trace, "LambdaFunctionFailed", "lambdaFunctionFailedEventDetails", details)
            raise StatesError(exc.error, exc.cause) from None
        details = {"output": dumps(value), "outputDetails": {"truncated": False}}
        run.emit(trace, "LambdaFunctionSucceeded", "lambdaFunctionSucceededEventDetails", details)
        return value

    def _call(self, function: str, payload: Any, timeout: int | None, run: Run, stop: StopSignal):
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
                raise Stopped
            if limit is not None and time.monotonic() - started >= limit:
                if task_limit is not None and (run_limit is None or task_limit <= run_limit):
                    raise TaskTimedOut
                raise ExecutionTimedOut
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


def _lambda_invoke_result(payload: Any) -> dict[str, Any]:
    """The result of the lambda:invoke integration, shaped like the one AWS returns."""
    request_id = str(uuid.uuid4())
    headers = {
        "Connection": "keep-alive",
        "Content-Length": str(len(dumps(payload))),
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
