"""What the Lambda handler tests share: the context Lambda passes, and wiring to fakes."""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import pytest

from tests.fakes import FakeQueue, FakeStore, FakeWorkflow

REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


@dataclass
class FakeLambdaContext:
    """What Powertools' inject_lambda_context and the batch processor read from the context."""

    function_name: str = "order-pipeline-TestFunction-1A2B3C4D"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:order-pipeline-TestFunction-1A2B3C4D"
    )
    aws_request_id: str = REQUEST_ID

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def use_fakes(
    monkeypatch: pytest.MonkeyPatch,
    app: ModuleType,
    *,
    store: FakeStore | None = None,
    queue: FakeQueue | None = None,
    workflow: FakeWorkflow | None = None,
) -> None:
    """Make the handler's pipeline.wiring return the fakes."""
    if store is not None:
        monkeypatch.setattr(app.wiring, "dynamo_store", lambda settings=None: store)
    if queue is not None:
        monkeypatch.setattr(app.wiring, "orders_queue", lambda settings=None: queue)
    if workflow is not None:
        monkeypatch.setattr(app.wiring, "fulfilment_workflow", lambda settings=None: workflow)
