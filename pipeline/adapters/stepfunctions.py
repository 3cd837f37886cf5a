"""The fulfilment state machine: starting one execution per order attempt, reading executions."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from pipeline import aws
from pipeline.ports import StartResult

# The input field that makes each start call's input its own (see FulfilmentWorkflow.start).
START_REQUEST_FIELD = "StartRequestId"


class FulfilmentWorkflow:
    """The Step Functions state machine of payment then shipping."""

    def __init__(self, state_machine_arn: str, client: Any | None = None):
        self.state_machine_arn = state_machine_arn
        self._client = client

    @property
    def client(self) -> Any:
        """The Step Functions client given, or the shared one."""
        return self._client or aws.client("stepfunctions")

    def execution_arn(self, name: str) -> str:
        """The ARN an execution with this name has (standard workflows)."""
        prefix, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"

    def start(self, name: str, payload: Mapping[str, Any]) -> StartResult:
        """Start the execution `name` unless it exists; never start a second one.

        StartExecution answers a call with the name *and input* of a RUNNING execution as if
        it had started it. So that `started` is true only for the call that created the
        execution, each call's input carries its own StartRequestId next to `payload`: a later
        call for the same name then gets ExecutionAlreadyExists, while the SDK's retries of
        one call resend the same id and still count as that call.
        """
        body = {**payload, START_REQUEST_FIELD: uuid.uuid4().hex}
        try:
            response = self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(body)
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                return StartResult(self.execution_arn(name), started=False)
            raise
        return StartResult(response["executionArn"], started=True)

    def describe(self, name: str) -> dict[str, Any] | None:
        """The execution's status, input and output, or None if it was never started."""
        try:
            return self.client.describe_execution(executionArn=self.execution_arn(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionDoesNotExist":
                return None
            raise
