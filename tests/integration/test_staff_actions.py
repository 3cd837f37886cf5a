"""The staff's order actions against DynamoDB Local: guarded, concurrent, named in the history."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.mock_carriers import MockCarriers
from pipeline.adapters.mock_payments import TOKEN_APPROVE, MockPaymentGateway, refund_charge
from pipeline.adapters.payment_ledger import InMemoryLedger
from pipeline.domain import InventoryItem, Order
from pipeline.errors import InvalidOrder, InvalidTransition, OrderNotFound
from pipeline.fulfilment import (
    fulfilment_start,
    order_flag_for_review,
    payment_charge,
    shipment_create,
)
from pipeline.orders import order_submit
from pipeline.reservation import inventory_reserve, order_reject
from pipeline.staff_actions import (
    order_cancel,
    order_mark_shipped,
    order_refund_release,
    order_resubmit,
    order_retry_shipping,
)
from pipeline.statuses import OrderStatus
from tests.fakes import FakeQueue, FakeWorkflow

pytestmark = pytest.mark.integration


def _item(store: DynamoStore, stock: int = 10) -> str:
    name = f"item-{uuid.uuid4().hex[:10]}"
    store.inventory_put(InventoryItem(name, stock, Decimal("12.50"), "test item"))
    return name


def _stock(store: DynamoStore, name: str) -> int:
    row = store.inventory_get(name)
    assert row is not None
    return row.stock


def _reserved(store: DynamoStore, name: str, quantity: int = 3) -> Order:
    order = order_submit(
        store=store,
        customer_name="Quinn",
        items=[{"ItemName": name, "Quantity": quantity}],
        payment_token=TOKEN_APPROVE,
    )
    reserved = inventory_reserve(store=store, order_id=order.order_id).order
    assert reserved.status == OrderStatus.RESERVED
    return reserved


def _manual(store: DynamoStore, gateway: MockPaymentGateway, name: str) -> Order:
    """An order charged through the gateway, then flagged because it could not ship."""
    order = _reserved(store, name)
    payment_charge(store=store, gateway=gateway, order_id=order.order_id)
    return order_flag_for_review(
        store=store, order_id=order.order_id, reason="Shipping failed: carrier refused"
    ).order


@pytest.fixture
def gateway() -> MockPaymentGateway:
    return MockPaymentGateway(success_rate=1.0, ledger=InMemoryLedger())


def test_cancel_gives_stock_back_and_names_the_staff_member(store: DynamoStore) -> None:
    # Given a reserved order of 3 units (stock 10 -> 7)
    name = _item(store)
    order = _reserved(store, name)
    assert _stock(store, name) == 7
    # When a staff member cancels it with a reason
    cancelled = order_cancel(
        store=store, order_id=order.order_id, actor="olga", reason="customer phoned"
    )
    # Then it is CANCELLED, the stock is back, and the history says who and why
    assert cancelled.status == OrderStatus.CANCELLED
    assert _stock(store, name) == 10
    last = store.order_get(order.order_id).history[-1]
    assert (last.status, last.actor) == (OrderStatus.CANCELLED, "olga")
    assert "customer phoned" in last.reason
    # And the pipeline's own entries name nobody
    assert all(entry.actor is None for entry in cancelled.history[:-1])


def test_two_concurrent_cancels_exactly_one_wins(store: DynamoStore) -> None:
    # Given a reserved order, and two staff members who both press Cancel at once
    name = _item(store)
    order = _reserved(store, name)
    barrier = threading.Barrier(2)

    def cancel(actor: str) -> str:
        barrier.wait()
        try:
            order_cancel(store=store, order_id=order.order_id, actor=actor, reason="duplicate")
        except InvalidTransition as exc:
            return f"refused: {exc.current}"
        return "won"

    # When both run against DynamoDB Local
    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(cancel, ["ann", "bob"]))
    # Then exactly one won, the other saw it CANCELLED, and the stock came back once
    assert results == ["refused: CANCELLED", "won"]
    assert _stock(store, name) == 10
    history = store.order_get(order.order_id).history
    assert [h.status for h in history].count(OrderStatus.CANCELLED) == 1


def test_cancel_of_a_pending_order_and_refusals(store: DynamoStore) -> None:
    # Given a PENDING order
    name = _item(store)
    order = order_submit(store=store, customer_name="Pia", items=[name])
    # When it is cancelled without a reason, then with one
    with pytest.raises(InvalidOrder) as bad:
        order_cancel(store=store, order_id=order.order_id, actor="olga", reason="  ")
    assert "reason" in bad.value.errors
    assert store.order_get(order.order_id).status == OrderStatus.PENDING  # nothing written
    cancelled = order_cancel(store=store, order_id=order.order_id, actor="olga", reason="test")
    # Then it is CANCELLED with no stock moved; a paid order cannot be cancelled
    assert cancelled.status == OrderStatus.CANCELLED
    assert _stock(store, name) == 10
    with pytest.raises(OrderNotFound):
        order_cancel(store=store, order_id="no-such-order", actor="olga", reason="x")


def test_cancel_refuses_a_paid_order(store: DynamoStore, gateway: MockPaymentGateway) -> None:
    name = _item(store)
    order = _reserved(store, name)
    payment_charge(store=store, gateway=gateway, order_id=order.order_id)
    with pytest.raises(InvalidTransition) as refused:
        order_cancel(store=store, order_id=order.order_id, actor="olga", reason="too late")
    assert refused.value.current == OrderStatus.PAID
    assert _stock(store, name) == 7


def test_resubmit_a_rejected_order_names_the_actor(store: DynamoStore) -> None:
    # Given an order rejected for lack of stock
    name = _item(store, stock=1)
    order = order_submit(
        store=store, customer_name="Rex", items=[{"ItemName": name, "Quantity": 2}]
    )
    assert inventory_reserve(store=store, order_id=order.order_id).order.status == "REJECTED"
    # When staff resubmit it after a restock
    store.inventory_adjust(name, 5)
    resubmitted = order_resubmit(
        store=store, order_id=order.order_id, actor="olga", reason="restocked"
    )
    # Then it is PENDING again, and the history entry names the staff member
    assert resubmitted.status == OrderStatus.PENDING
    assert resubmitted.history[-1].actor == "olga"
    # And a second resubmit of the now PENDING order is refused
    with pytest.raises(InvalidTransition):
        order_resubmit(store=store, order_id=order.order_id, actor="olga", reason="again")


def test_retry_shipping_starts_a_new_run_that_ships_without_charging_again(
    store: DynamoStore, gateway: MockPaymentGateway
) -> None:
    # Given a paid order flagged for staff because it could not ship
    name = _item(store)
    flagged = _manual(store, gateway, name)
    charged = flagged.payment
    queue, workflow = FakeQueue(), FakeWorkflow()
    # When staff retry its shipping
    moved = order_retry_shipping(
        store=store, queue=queue, order_id=flagged.order_id, actor="olga", reason="address fixed"
    )
    # Then it is PAID again under workflow run 2, and run 2's message is on the Orders queue
    assert moved.status == OrderStatus.PAID
    assert moved.workflow_run == 2
    assert moved.history[-1].actor == "olga"
    [sent] = queue.sent
    assert sent.json() == {"OrderId": flagged.order_id, "Attempt": 1, "Run": 2}
    # And the pipeline takes it from there: the new execution starts under its own name,
    # the payment step finds the charge made, and the shipment is booked
    started = fulfilment_start(workflow=workflow, body=sent.body)
    assert started.started
    again = payment_charge(store=store, gateway=gateway, order_id=flagged.order_id)
    assert again.payment == charged
    shipped = shipment_create(store=store, carriers=MockCarriers(), order_id=flagged.order_id)
    assert shipped.status == OrderStatus.SHIPPED
    assert _stock(store, name) == 7  # the goods left
    # And retrying a shipped order is refused
    with pytest.raises(InvalidTransition):
        order_retry_shipping(
            store=store, queue=queue, order_id=flagged.order_id, actor="olga", reason="x"
        )


def test_refund_and_release_refunds_once_and_gives_stock_back(
    store: DynamoStore, gateway: MockPaymentGateway
) -> None:
    # Given a charged order flagged for staff (stock 10 -> 7)
    name = _item(store)
    flagged = _manual(store, gateway, name)
    transaction = flagged.payment["TransactionId"]  # type: ignore[index]
    # When staff refund it and release its stock
    refunded = order_refund_release(
        store=store,
        gateway=gateway,
        order_id=flagged.order_id,
        actor="olga",
        reason="cannot ship there",
    )
    # Then it is REFUNDED, the refund is recorded (no debt left), the stock is back
    assert refunded.status == OrderStatus.REFUNDED
    assert refunded.refund_due is None
    assert refunded.refund is not None and refunded.refund["TransactionId"] == transaction
    assert refunded.history[-1].actor == "olga"
    assert _stock(store, name) == 10
    # And the gateway's ledger shows the charge refunded
    entry = gateway.ledger.get(transaction)  # type: ignore[union-attr]
    assert entry is not None and entry["RefundId"] == refunded.refund["RefundId"]
    # And a second refund is refused, the stock untouched
    with pytest.raises(InvalidTransition):
        order_refund_release(
            store=store, gateway=gateway, order_id=flagged.order_id, actor="bob", reason="x"
        )
    assert _stock(store, name) == 10


def test_a_refund_interrupted_after_the_release_is_settled_by_running_it_again(
    store: DynamoStore, gateway: MockPaymentGateway
) -> None:
    # Given a refund whose gateway call failed after the stock was released
    name = _item(store)
    flagged = _manual(store, gateway, name)

    class Down(MockPaymentGateway):
        def refund(self, transaction_id: str) -> str:
            raise ConnectionError("gateway unreachable")

    with pytest.raises(ConnectionError):
        order_refund_release(
            store=store,
            gateway=Down(ledger=gateway.ledger),
            order_id=flagged.order_id,
            actor="olga",
            reason="cannot ship",
        )
    owing = store.order_get(flagged.order_id)
    assert owing.status == OrderStatus.REFUNDED and owing.refund_due is not None
    assert _stock(store, name) == 10
    # When the action is run again
    settled = order_refund_release(
        store=store, gateway=gateway, order_id=flagged.order_id, actor="olga", reason="retry"
    )
    # Then the refund is made and recorded, and the stock is not given back twice
    assert settled.refund_due is None and settled.refund is not None
    assert _stock(store, name) == 10


def test_a_second_refund_pressed_while_the_first_settles_settles_the_same_refund(
    store: DynamoStore, gateway: MockPaymentGateway
) -> None:
    # Given a refund by ann whose gateway call lets bob press Refund in the middle: after
    # ann's transaction released the stock, before her refund is recorded
    name = _item(store)
    flagged = _manual(store, gateway, name)
    seen: list[Order] = []

    class Interleaved(MockPaymentGateway):
        def refund(self, transaction_id: str) -> str:
            if not seen:
                seen.append(
                    order_refund_release(
                        store=store, gateway=gateway, order_id=flagged.order_id,
                        actor="bob", reason="same order",
                    )
                )  # fmt: skip
            return super().refund(transaction_id)

    # When ann's refund finishes
    done = order_refund_release(
        store=store,
        gateway=Interleaved(ledger=gateway.ledger),
        order_id=flagged.order_id,
        actor="ann",
        reason="cannot ship",
    )
    # Then both saw the order refunded with the same refund, ann's move is the only one, the
    # stock came back once, and nothing is owed
    assert seen[0].refund is not None and done.refund is not None
    assert seen[0].refund["RefundId"] == done.refund["RefundId"]
    moves = store.order_get(flagged.order_id).history[len(flagged.history) :]
    assert [(m.status, m.actor) for m in moves] == [(OrderStatus.REFUNDED, "ann")]
    assert _stock(store, name) == 10
    assert store.order_get(flagged.order_id).refund_due is None


def test_mark_shipped_records_carrier_and_tracking(
    store: DynamoStore, gateway: MockPaymentGateway
) -> None:
    name = _item(store)
    flagged = _manual(store, gateway, name)
    # Bad input is refused with every field named, and nothing is written
    with pytest.raises(InvalidOrder) as bad:
        order_mark_shipped(
            store=store,
            order_id=flagged.order_id,
            actor="olga",
            reason="",
            carrier="",
            tracking_number="no\nway",
        )
    assert set(bad.value.errors) == {"reason", "carrier", "tracking_number"}
    assert store.order_get(flagged.order_id).status == OrderStatus.MANUAL_INTERVENTION
    shipped = order_mark_shipped(
        store=store,
        order_id=flagged.order_id,
        actor="olga",
        reason="sent by courier",
        carrier="CityCourier",
        tracking_number="CC-12345",
    )
    assert shipped.status == OrderStatus.SHIPPED
    assert shipped.shipment is not None
    assert (shipped.shipment["Carrier"], shipped.shipment["TrackingNumber"]) == (
        "CityCourier",
        "CC-12345",
    )
    assert shipped.history[-1].actor == "olga"


@pytest.mark.parametrize(
    "action",
    ["retry", "refund", "ship"],
)
def test_two_staff_members_racing_on_a_flagged_order_one_wins(
    store: DynamoStore, gateway: MockPaymentGateway, action: str
) -> None:
    # Given a flagged order and two concurrent calls of the same action
    name = _item(store)
    flagged = _manual(store, gateway, name)
    queue = FakeQueue()
    calls: dict[str, Callable[[str], Any]] = {
        "retry": lambda actor: order_retry_shipping(
            store=store, queue=queue, order_id=flagged.order_id, actor=actor, reason="r"
        ),
        "refund": lambda actor: order_refund_release(
            store=store, gateway=gateway, order_id=flagged.order_id, actor=actor, reason="r"
        ),
        "ship": lambda actor: order_mark_shipped(
            store=store,
            order_id=flagged.order_id,
            actor=actor,
            reason="r",
            carrier="c",
            tracking_number="t",
        ),
    }
    barrier = threading.Barrier(2)

    def run(actor: str) -> str:
        barrier.wait()
        try:
            calls[action](actor)
        except InvalidTransition:
            return "refused"
        return "won"

    with ThreadPoolExecutor(2) as pool:
        results = sorted(pool.map(run, ["ann", "bob"]))
    # Then exactly one of them changed the order: one history entry, stock given back once
    final = store.order_get(flagged.order_id)
    moves = final.history[len(flagged.history) :]
    assert len(moves) == 1
    assert moves[0].actor in ("ann", "bob")
    assert len(queue.sent) == (1 if action == "retry" else 0)
    assert _stock(store, name) == (10 if action == "refund" else 7)
    if action != "refund":
        assert results == ["refused", "won"]
        return
    # And for a refund, the other one was refused, or (when it read the order between the
    # winner's transaction and its settling) settled the same refund, as a second press after
    # a crash does: either way one refund, recorded once, and nothing left owing
    assert results in (["refused", "won"], ["won", "won"])
    assert final.refund_due is None
    assert final.refund is not None
    assert final.refund["RefundId"] == refund_charge(final.refund["TransactionId"])


def test_a_rejected_order_cannot_be_refunded_or_retried(store: DynamoStore) -> None:
    order = order_submit(store=store, customer_name="Sam", items=[_item(store)])
    order_reject(store=store, order_id=order.order_id, shortages=[])
    for call in (
        lambda: order_retry_shipping(
            store=store, queue=FakeQueue(), order_id=order.order_id, actor="o", reason="r"
        ),
        lambda: order_refund_release(
            store=store,
            gateway=MockPaymentGateway(),
            order_id=order.order_id,
            actor="o",
            reason="r",
        ),
    ):
        with pytest.raises(InvalidTransition):
            call()
