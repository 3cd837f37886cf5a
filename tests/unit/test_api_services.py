"""The order API's submit service: the Idempotency-Key decisions, on an in-memory Orders table."""

from __future__ import annotations

import pytest

from orders_api import idempotency
from orders_api.exceptions import IdempotencyKeyReused, InvalidRequest, OrderIdConflict
from orders_api.selectors import order_for_client
from orders_api.services import client_order_submit
from pipeline.domain import Order, OrderLine
from pipeline.errors import OrderAlreadyExists

BODY = {"CustomerName": "Ann", "Items": ["laptop"]}


class Orders:
    """Just enough of the OrderStore port: a conditional put and a read."""

    def __init__(self) -> None:
        self.rows: dict[str, Order] = {}

    def order_put_new(self, order: Order) -> None:
        """Write unless the id is taken."""
        if order.order_id in self.rows:
            raise OrderAlreadyExists(order.order_id)
        self.rows[order.order_id] = order

    def order_find(self, order_id: str, *, consistent: bool = True) -> Order | None:
        """The order, or None."""
        return self.rows.get(order_id)


def submit(store: Orders, body: dict[str, object], key: str | None, client: str = "acme"):
    """Submit `body` as the envelope's fields and the raw body alike."""
    return client_order_submit(
        client_id=client, fields=body, body=body, idempotency_key=key, store=store
    )


def test_without_a_key_every_submission_writes_a_new_order():
    # Given an empty table, When the same body is submitted twice without a key
    store = Orders()
    first, second = submit(store, BODY, None), submit(store, BODY, None)

    # Then two orders were written, neither a replay
    assert first.order_id != second.order_id
    assert not first.replayed and not second.replayed
    assert len(store.rows) == 2


def test_the_same_key_and_body_replay_the_first_order():
    # Given an order submitted with a key
    store = Orders()
    first = submit(store, BODY, "k-1")

    # When the same body comes again with the key, its keys in another order
    again = submit(store, {"Items": ["laptop"], "CustomerName": "Ann"}, "k-1")

    # Then it is the first order, replayed, and nothing more was written
    assert again.order_id == first.order_id and again.replayed
    assert not first.replayed
    assert list(store.rows) == [first.order_id]


def test_the_same_key_with_another_body_is_refused():
    # Given an order submitted with a key
    store = Orders()
    submit(store, BODY, "k-1")

    # When another body comes with the key, Then it is refused and nothing is written
    with pytest.raises(IdempotencyKeyReused):
        submit(store, {**BODY, "CustomerName": "Bob"}, "k-1")
    assert len(store.rows) == 1


def test_an_id_held_by_another_clients_order_is_a_conflict():
    # Given another client's order under the id this client's key stands for
    store = Orders()
    order_id = idempotency.order_id_for("acme", "k-1")
    store.rows[order_id] = Order.new(
        customer_name="Eve", lines=[OrderLine("laptop", 1)], order_id=order_id, client_id="eve"
    )

    # When the client submits with that key, Then it is a conflict, and the order is not shown
    with pytest.raises(OrderIdConflict):
        submit(store, BODY, "k-1")
    assert order_for_client(order_id=order_id, client_id="acme", store=store) is None
    assert store.rows[order_id].customer_name == "Eve"


def test_a_malformed_key_and_an_invalid_order_write_nothing():
    store = Orders()
    # When the key has a space, Then the header is named
    with pytest.raises(InvalidRequest) as bad_key:
        submit(store, BODY, "has space")
    assert set(bad_key.value.errors) == {idempotency.HEADER}
    # When the order breaks a domain rule, Then its field is named
    with pytest.raises(InvalidRequest) as bad_order:
        submit(store, {"CustomerName": "", "Items": ["laptop"]}, "k-2")
    assert "CustomerName" in bad_order.value.errors
    assert store.rows == {}
