"""A put whose answer was lost and that the SDK sent again finds its own order: success, not a
conflict; another order under the same id stays a conflict (DynamoDB Local)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

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


def test_the_same_write_sent_again_is_success(store: DynamoStore) -> None:
    # Given an order whose first put landed (its answer lost), and the pipeline already moved it
    order = _order()
    store.order_put_new(order)
    store.order_transition(
        order.order_id, OrderStatus.REJECTED, "short", order.order_date, expected=[order.status]
    )

    # When the same put is sent again (the SDK's retry)
    store.order_put_new(order)

    # Then it succeeds and changes nothing
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
