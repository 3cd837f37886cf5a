"""A put whose answer was lost and that the SDK sent again finds its own order: success, not a
conflict; another order under the same id, even an identical one from a racing request, stays a
conflict (DynamoDB Local)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from pipeline import aws
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import Order, OrderLine
from pipeline.errors import OrderAlreadyExists
from pipeline.statuses import OrderStatus

pytestmark = pytest.mark.integration


def _order() -> Order:
    return Order.new(
        customer_name="Retry Ada",
        lines=[OrderLine("widget", 2)],
        order_id=str(uuid.uuid4()),
        client_id="client-1",
    )


class _LoseFirstAnswer:
    """A before-send hook: the first PutItem reaches DynamoDB Local, its answer is lost (a read
    timeout), and botocore's own retry sends the very same request again."""

    def __init__(self, client: Any):
        self.client = client
        self.sent = 0

    def __call__(self, request: Any, **_kwargs: Any) -> None:
        self.sent += 1
        if self.sent == 1:
            self.client._endpoint.http_session.send(request)
            raise ReadTimeoutError(endpoint_url=request.url)


@pytest.fixture
def losing_store(store: DynamoStore) -> Iterator[tuple[DynamoStore, _LoseFirstAnswer]]:
    """A store on its own client whose first put loses its answer."""
    client = aws.new_client("dynamodb")
    hook = _LoseFirstAnswer(client)
    client.meta.events.register("before-send.dynamodb.PutItem", hook)
    yield DynamoStore(store.orders_table, store.inventory_table, client), hook


def test_the_same_write_sent_again_by_the_sdk_is_success(losing_store) -> None:
    # Given a put whose first try lands and whose answer is lost
    store, hook = losing_store
    order = _order()

    # When the SDK sends it again, finding the order its first try wrote
    store.order_put_new(order)

    # Then it succeeded (twice sent, once written) and the order reads back as written
    assert hook.sent == 2
    assert store.order_get(order.order_id) == order


def test_an_identical_order_from_another_request_is_a_conflict(store: DynamoStore) -> None:
    # Given an order in the table, moved on by the pipeline
    order = _order()
    store.order_put_new(order)
    store.order_transition(
        order.order_id, OrderStatus.REJECTED, "short", order.order_date, expected=[order.status]
    )

    # When another request writes the very same order (a racer in the same millisecond)
    # Then only the first counts as written; the second is refused and changes nothing
    with pytest.raises(OrderAlreadyExists):
        store.order_put_new(order)
    assert store.order_get(order.order_id).status == OrderStatus.REJECTED


@pytest.mark.parametrize(
    "other",
    [
        lambda o: replace(o, order_date="2020-01-01T00:00:00.000Z"),
        lambda o: replace(o, client_id="client-2"),
        lambda o: replace(o, lines=(OrderLine("widget", 3),)),
        lambda o: replace(o, customer_name="Someone Else"),
    ],
)
def test_another_order_under_the_id_is_a_conflict(store: DynamoStore, other) -> None:
    # Given an order in the table
    order = _order()
    store.order_put_new(order)

    # When a different order is written under its id
    # Then it is refused, and the first order is untouched
    with pytest.raises(OrderAlreadyExists):
        store.order_put_new(other(order))
    assert store.order_get(order.order_id) == order
