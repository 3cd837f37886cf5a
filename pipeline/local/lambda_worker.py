"""A warm local Lambda sandbox: imports one handler, then runs invocations sent over a pipe.

Started by pipeline.local.lambdas with the function's environment; the handler module is found
the way Lambda finds it (LAMBDA_TASK_ROOT on sys.path, _HANDLER = "module.function").
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any

from pipeline.local import faults


class LocalContext:
    """The parts of Lambda's context object that handlers and Powertools read."""

    def __init__(self, request_id: str, deadline: float):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = "$LATEST"
        self.invoked_function_arn = os.environ.get("LOCAL_LAMBDA_FUNCTION_ARN", "")
        self.memory_limit_in_mb = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self._deadline - time.time()) * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    # The shape Lambda gives an unhandled error: what Step Functions puts in Cause.
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


NICE_ENV = "PIPELINE_LOCAL_FUNCTION_NICE"  # the functions' CPU priority, as `nice` counts
DEFAULT_NICE = 10


def main() -> None:
    """Serve invocations until the request pipe closes."""
    # In AWS the functions run on Lambda's capacity, not on the API's; here they share a
    # machine with the portal, so they yield the CPU to it (a backlog of orders drains a little
    # later instead of every API request waiting behind it).
    os.nice(int(os.environ.get(NICE_ENV, DEFAULT_NICE)))
    requests = os.fdopen(int(sys.argv[1]), "r", encoding="utf-8")
    responses = os.fdopen(int(sys.argv[2]), "w", encoding="utf-8")
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    # Only the local runtime's --fault-rate sets this up, and before the handler is imported,
    # so every client the handler makes is covered; without it the worker is unchanged.
    injector = faults.install_from_env()
    module_name, _, function_name = os.environ["_HANDLER"].rpartition(".")
    handler = None
    init_error: dict[str, Any] | None = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except Exception as exc:  # reported on every invocation, as Lambda does for init errors
        init_error = _error(exc)
        init_error["errorType"] = "Runtime.ImportModuleError"
        traceback.print_exc()
    for line in requests:
        request = json.loads(line)
        if init_error is not None or handler is None:
            reply: dict[str, Any] = {"ok": False, "error": init_error}
        else:
            context = LocalContext(request["request_id"], request["deadline"])
            try:
                result = handler(request["payload"], context)
                reply = {"ok": True, "result": result}
            except Exception as exc:
                traceback.print_exc()
                error = _error(exc)
                error["requestId"] = request["request_id"]
                reply = {"ok": False, "error": error}
        try:
            text = json.dumps(reply)
        except (TypeError, ValueError) as exc:
            # Lambda cannot serialise such a result either.
            text = json.dumps(
                {"ok": False, "error": {**_error(exc), "errorType": "Runtime.MarshalError"}}
            )
        if injector is not None:
            injector.flush()  # before the reply: a test that saw it also sees the counts
        responses.write(text + "\n")
        responses.flush()


if __name__ == "__main__":
    main()
