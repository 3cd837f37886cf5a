"""Re-queueing stranded RESERVED orders: which are sent again, and which are left alone."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import Order, OrderLine, execution_name
from pipeline.fulfilment import fulfilment_requeue_stranded
from pipeline.statuses import OrderStatus

pytestmark = pytest.mark.integration


class RecordingQueue:
    """Stands in for the Orders queue: keeps what was sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_json(self, body: dict[str, Any], *, attributes: dict[str, str] | None = None) -> str:
        self.sent.append(json.loads(json.dumps(body)))
        return str(uuid.uuid4())


class KnownExecutions:
    """Stands in for the workflow: these execution names exist."""

    def __init__(self, names: set[str]):
        self.names = names

    def describe(self, name: str) -> dict[str, Any] | None:
        return {"status": "RUNNING"} if name in self.names else None


def _reserved(store: DynamoStore, *, age: timedelta, requeues: int = 0) -> Order:
    at = (datetime.now(UTC) - age).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    order = replace(
        Order.new(customer_name=f"s-{uuid.uuid4().hex[:6]}", lines=[OrderLine("x", 1)], now=at),
        status=OrderStatus.RESERVED,
        attempt=1,
        reservation={"Lines": [{"ItemName": "x", "Quantity": 1, "UnitPrice": Decimal("1")}],
                     "Total": Decimal("1"), "Currency": "USD", "ReservedAt": at},
        extra={"RequeueCount": requeues} if requeues else {},
    )  # fmt: skip
    store.order_put_new(order)
    return order


def _sent_ids(queue: RecordingQueue) -> set[str]:
    return {body["OrderId"] for body in queue.sent}


def test_only_old_enough_orders_without_a_workflow_are_sent_again(store: DynamoStore) -> None:
    # Given a stranded order, one with its workflow running, and one reserved seconds ago
    stranded = _reserved(store, age=timedelta(minutes=10))
    running = _reserved(store, age=timedelta(minutes=10))
    fresh = _reserved(store, age=timedelta(seconds=5))
    queue = RecordingQueue()
    # When the safety net runs with a two-minute grace period
    requeued = fulfilment_requeue_stranded(
        store=store,
        workflow=KnownExecutions({execution_name(running.order_id, 1)}),  # type: ignore[arg-type]
        queue=queue,  # type: ignore[arg-type]
        min_age_seconds=120,
    )
    # Then only the stranded one was sent, and the send was counted on the order
    assert stranded.order_id in requeued
    assert running.order_id not in requeued and fresh.order_id not in requeued
    assert stranded.order_id in _sent_ids(queue)
    assert store.order_get(stranded.order_id).requeue_count == 1
    assert store.order_get(stranded.order_id).status == OrderStatus.RESERVED


def test_an_order_sent_again_too_often_is_left_for_a_person(store: DynamoStore) -> None:
    # Given a stranded order already re-sent three times (its message keeps failing)
    stuck = _reserved(store, age=timedelta(hours=1), requeues=3)
    queue = RecordingQueue()
    # When the safety net runs with a cap of three
    requeued = fulfilment_requeue_stranded(
        store=store,
        workflow=KnownExecutions(set()),  # type: ignore[arg-type]
        queue=queue,  # type: ignore[arg-type]
        max_requeues=3,
    )
    # Then it is not sent a fourth time
    assert stuck.order_id not in requeued
    assert stuck.order_id not in _sent_ids(queue)
    # And without a cap (an operator's own request) it is
    requeued = fulfilment_requeue_stranded(
        store=store,
        workflow=KnownExecutions(set()),  # type: ignore[arg-type]
        queue=queue,  # type: ignore[arg-type]
    )
    assert stuck.order_id in requeued
    assert store.order_get(stuck.order_id).requeue_count == 4
