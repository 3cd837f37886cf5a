"""The fulfilment state machine: starting one execution per order attempt, reading executions."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from pipeline import aws
from pipeline.ports import StartResult


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
        """Start the execution `name` unless it exists; never start a second one."""
        try:
            response = self.client.start_execution(
                stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(payload)
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
