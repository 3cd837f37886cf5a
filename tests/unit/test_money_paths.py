"""Money paths: a charge is made once, refunded when its order fails, and a paid order ships,
whatever step fails or loses its answer; run on the fakes and the real workflow definition."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.mock_carriers import MockCarriers
from pipeline.adapters.mock_payments import MockPaymentGateway, transaction_id_for
from pipeline.adapters.payment_ledger import InMemoryLedger
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.errors import PaymentGatewayUnavailable, SupersededAttempt
from pipeline.fulfilment import (
    attempt_of,
    order_flag_for_review,
    payment_charge,
    payment_compensate,
    payment_key,
    shipment_create,
    step_status,
)
from pipeline.local.stepfunctions.asl import StateMachineInterpreter, TaskFailure
from pipeline.reservation import inventory_reserve
from pipeline.staff_actions import order_resubmit
from pipeline.statuses import OrderStatus
from tests.fakes import FakeStore, client_error

ROOT = Path(__file__).resolve().parents[2]
T0 = "2024-05-01T10:00:00.000Z"


def reserved_order(store: FakeStore, order_id: str = "o-1", token: str = "tok_approve") -> Order:
    """A RESERVED order of 2 pens at 5.00 (stock 10 before it)."""
    store.inventory["pen"] = InventoryItem("pen", 10, Decimal("5.00"))
    order = Order.new(customer_name="Ada", lines=[OrderLine("pen", 2)], order_id=order_id, now=T0)
    store.order_put_new(order)
    store.orders[order_id]["PaymentToken"] = token
    outcome = inventory_reserve(store=store, order_id=order_id, now=T0)
    assert outcome.reserved_now
    return outcome.order


def ledger_gateway() -> tuple[MockPaymentGateway, InMemoryLedger]:
    ledger = InMemoryLedger()
    return MockPaymentGateway(success_rate=1.0, seed="money", ledger=ledger), ledger


def fail_first_refund(gateway: MockPaymentGateway) -> None:
    """Make the gateway's first refund call fail (its endpoint down); later ones go through."""
    real_refund, calls = gateway.refund, []

    def refund_failing_once(transaction_id: str) -> str:
        calls.append(transaction_id)
        if len(calls) == 1:
            raise PaymentGatewayUnavailable("refund endpoint down")
        return real_refund(transaction_id)

    gateway.refund = refund_failing_once  # type: ignore[method-assign]


class FailOnce:
    """Wraps a store method: the first call fails (before or after doing its work)."""

    def __init__(self, method: Any, *, after: bool) -> None:
        self.method, self.after, self.calls = method, after, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1 and not self.after:
            raise client_error("InternalServerError", "injected", "UpdateItem")
        result = self.method(*args, **kwargs)
        if self.calls == 1:
            raise client_error("InternalServerError", "the answer was lost", "UpdateItem")
        return result


# -- payment ----------------------------------------------------------------------------------


def test_a_payment_the_gateway_did_not_answer_leaves_the_order_as_it_was() -> None:
    # Given a reserved order and a gateway that is down
    store = FakeStore()
    order = reserved_order(store, token="tok_unavailable")
    gateway, _ = ledger_gateway()
    store.writes.clear()

    # When the payment step runs
    with pytest.raises(PaymentGatewayUnavailable):
        payment_charge(store=store, gateway=gateway, order_id=order.order_id)

    # Then nothing was written: the order is RESERVED, and the charge it would have been is
    # named by its key alone, which the compensation asks the gateway about
    assert store.writes == []
    assert store.order(order.order_id).status is OrderStatus.RESERVED
    assert payment_key(order) == "o-1:1"


@pytest.mark.parametrize("answer_lost", [False, True], ids=["write-failed", "answer-lost"])
def test_a_retry_after_the_charge_charges_once(answer_lost: bool) -> None:
    # Given a reserved order whose PAID write fails once (before or after it is applied)
    store = FakeStore()
    order = reserved_order(store)
    gateway, ledger = ledger_gateway()
    store.order_transition = FailOnce(store.order_transition, after=answer_lost)  # type: ignore[method-assign]

    # When the payment step fails and is retried (as the workflow's Retry does)
    with pytest.raises(Exception, match="InternalServerError"):
        payment_charge(store=store, gateway=gateway, order_id=order.order_id)
    paid = payment_charge(store=store, gateway=gateway, order_id=order.order_id, retry_count=1)

    # Then the order is PAID with the one charge the gateway made
    assert paid.status is OrderStatus.PAID
    assert list(ledger.entries) == [transaction_id_for("o-1:1")]
    assert paid.payment is not None
    assert paid.payment["TransactionId"] == transaction_id_for("o-1:1")
    assert ledger.entries[transaction_id_for("o-1:1")]["Outcome"] == "APPROVED"


# -- compensation -----------------------------------------------------------------------------


def test_a_failed_payment_whose_charge_went_through_is_refunded_and_its_stock_returned() -> None:
    # Given a reserved order that was charged, but whose PAID write never happened
    store = FakeStore()
    order = reserved_order(store)
    gateway, ledger = ledger_gateway()
    store.order_transition = FailOnce(store.order_transition, after=False)  # type: ignore[method-assign]
    with pytest.raises(Exception, match="InternalServerError"):
        payment_charge(store=store, gateway=gateway, order_id=order.order_id)

    # When the compensation runs, twice (a retried task)
    first = payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="failed")
    again = payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="failed")

    # Then the order ends PAYMENT_FAILED, the stock is back once, the charge refunded once
    assert (first.changed, again.changed) == (True, False)
    final = store.order("o-1")
    assert final.status is OrderStatus.PAYMENT_FAILED
    assert store.inventory["pen"].stock == 10
    entry = ledger.entries[transaction_id_for("o-1:1")]
    assert entry["RefundId"].startswith("rfd_")
    assert final.refund is not None
    assert final.refund["RefundId"] == entry["RefundId"]
    assert final.refund_due is None


def test_a_failed_payment_that_never_reached_the_gateway_is_released_without_a_refund() -> None:
    # Given a reserved order whose gateway was down on every attempt
    store = FakeStore()
    order = reserved_order(store, token="tok_unavailable")
    gateway, ledger = ledger_gateway()
    with pytest.raises(PaymentGatewayUnavailable):
        payment_charge(store=store, gateway=gateway, order_id=order.order_id)

    # When the compensation runs
    outcome = payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="down")

    # Then the stock is back, nothing is owed and nothing was refunded
    assert outcome.order.status is OrderStatus.PAYMENT_FAILED
    assert store.inventory["pen"].stock == 10
    assert (outcome.order.refund, outcome.order.refund_due) == (None, None)
    assert ledger.entries == {}


def test_a_refund_that_fails_stays_owed_on_the_order_until_the_next_run() -> None:
    # Given a charged order whose compensation's refund call fails once
    store = FakeStore()
    order = reserved_order(store)
    gateway, ledger = ledger_gateway()
    store.order_transition = FailOnce(store.order_transition, after=False)  # type: ignore[method-assign]
    with pytest.raises(Exception, match="InternalServerError"):
        payment_charge(store=store, gateway=gateway, order_id=order.order_id)
    fail_first_refund(gateway)

    # When the compensation runs and fails at the refund
    with pytest.raises(PaymentGatewayUnavailable):
        payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="failed")

    # Then the order is PAYMENT_FAILED with the refund still owed (visible to staff)
    owed = store.order("o-1")
    assert owed.status is OrderStatus.PAYMENT_FAILED
    assert owed.refund_due is not None and owed.refund_due["IdempotencyKey"] == "o-1:1"
    assert store.inventory["pen"].stock == 10

    # And the next run refunds it, once
    payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="failed")
    final = store.order("o-1")
    assert final.refund_due is None
    assert final.refund is not None
    assert ledger.entries[transaction_id_for("o-1:1")]["RefundId"] == final.refund["RefundId"]


def test_a_paid_order_is_not_released_by_the_compensation() -> None:
    # Given an order that was paid (its payment task failed only after writing PAID)
    store = FakeStore()
    order = reserved_order(store)
    gateway, ledger = ledger_gateway()
    payment_charge(store=store, gateway=gateway, order_id=order.order_id)

    # When the compensation runs anyway
    outcome = payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="timeout")

    # Then nothing changes: the order stays PAID with its stock taken and its charge kept
    assert (outcome.changed, outcome.order.status) == (False, OrderStatus.PAID)
    assert store.inventory["pen"].stock == 8
    assert "RefundId" not in ledger.entries[transaction_id_for("o-1:1")]


def test_flagging_an_order_that_shipped_after_all_changes_nothing() -> None:
    # Given an order that shipped, whose shipping task then lost its answer
    store = FakeStore()
    order = reserved_order(store)
    gateway, _ = ledger_gateway()
    payment_charge(store=store, gateway=gateway, order_id=order.order_id)
    shipment_create(store=store, carriers=MockCarriers(), order_id="o-1")

    # When the shipping step's Catch flags it for review
    outcome = order_flag_for_review(store=store, order_id="o-1", reason="Shipping failed")

    # Then it stays SHIPPED (no InvalidTransition, no false workflow failure)
    assert (outcome.changed, outcome.order.status) == (False, OrderStatus.SHIPPED)


# -- the workflow definition, with the real use cases behind its tasks -----------------------


def fulfilment_definition() -> dict[str, Any]:
    text = (ROOT / "statemachine" / "order_fulfilment.asl.json").read_text()
    for name in ("Payment", "ReleaseStock", "Shipping", "ManualIntervention"):
        text = text.replace("${" + name + "FunctionArn}", f"fn:{name}")
    return json.loads(text)


class Tasks:
    """The workflow's Lambda tasks, each running its real use case on the fakes; a task can
    be made to time out after doing its work (its answer lost), on every attempt."""

    def __init__(self, store: FakeStore, gateway: MockPaymentGateway, lose: set[str]):
        self.store, self.gateway, self.lose = store, gateway, lose
        self.calls: list[str] = []

    def __call__(self, function_arn: str, payload: Any, *, timeout: float | None = None) -> Any:
        name = function_arn.rsplit(":", 1)[-1]
        self.calls.append(name)
        order_id = payload["OrderId"]
        try:
            result = self._run(name, order_id, attempt_of(payload))
        except Exception as exc:
            raise TaskFailure(type(exc).__name__, json.dumps({"errorMessage": str(exc)})) from exc
        if name in self.lose:
            raise TaskFailure("States.Timeout", "Task timed out after its work was done")
        return result

    def _run(self, name: str, order_id: str, attempt: int | None) -> dict[str, Any]:
        # As the handlers in lambdas/ call them: with the run's Attempt from the payload.
        store, gateway = self.store, self.gateway
        if name == "Payment":
            order = payment_charge(store=store, gateway=gateway, order_id=order_id, attempt=attempt)
            return {"OrderId": order_id, "Payment": order.payment}
        if name == "ReleaseStock":
            outcome = payment_compensate(
                store=store,
                gateway=gateway,
                order_id=order_id,
                reason="Payment failed",
                attempt=attempt,
            )
            return {"OrderId": order_id, "Status": step_status(outcome.order, attempt)}
        if name == "Shipping":
            shipment_create(
                store=store, carriers=MockCarriers(), order_id=order_id, attempt=attempt
            )
            return {"OrderId": order_id, "Shipment": {"TrackingNumber": "T"}}
        flagged = order_flag_for_review(
            store=store, order_id=order_id, reason="Shipping failed", attempt=attempt
        )
        return {"OrderId": order_id, "Status": step_status(flagged.order, attempt)}


def run_workflow(store: FakeStore, gateway: MockPaymentGateway, lose: set[str]):
    tasks = Tasks(store, gateway, lose)
    events: list[dict[str, Any]] = []
    interpreter = StateMachineInterpreter(
        fulfilment_definition(), invoke=tasks, sleep=lambda seconds: None
    )
    result = interpreter.run(
        {"OrderId": "o-1", "Attempt": 1},
        execution_arn="arn:aws:states:us-east-1:123456789012:execution:Orders:o-1",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:Orders",
        on_event=events.append,
    )
    entered = [
        e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("Entered")
    ]
    return result, entered, tasks


def test_a_payment_that_times_out_after_writing_paid_still_ships() -> None:
    # Given a reserved order whose payment task writes PAID and then times out, every time
    store = FakeStore()
    reserved_order(store)
    gateway, ledger = ledger_gateway()

    # When the real workflow definition runs it
    result, entered, tasks = run_workflow(store, gateway, lose={"Payment"})

    # Then the compensation finds it PAID and the workflow routes it on to shipping
    assert result.status == "SUCCEEDED"
    assert entered[-3:] == ["RouteAfterPaymentFailure", "ShipOrder", "OrderShipped"]
    final = store.order("o-1")
    assert final.status is OrderStatus.SHIPPED
    # And it was charged once, never refunded, and its stock stays taken
    assert [e["Outcome"] for e in ledger.entries.values()] == ["APPROVED"]
    assert "RefundId" not in next(iter(ledger.entries.values()))
    assert store.inventory["pen"].stock == 8
    assert tasks.calls.count("Payment") == 1 + 2  # the first try and the catch-all's retries


def test_a_shipment_that_times_out_after_writing_shipped_ends_shipped() -> None:
    # Given a paid order whose shipping task writes SHIPPED and then times out, every time
    store = FakeStore()
    reserved_order(store)
    gateway, _ = ledger_gateway()

    # When the real workflow definition runs it
    result, entered, _ = run_workflow(store, gateway, lose={"Shipping"})

    # Then flagging finds it SHIPPED and the workflow ends as shipped, not failed
    assert result.status == "SUCCEEDED"
    assert entered[-2:] == ["RouteAfterShippingFailure", "OrderShipped"]
    assert store.order("o-1").status is OrderStatus.SHIPPED


# -- a superseded attempt ---------------------------------------------------------------------


def resubmitted_and_reserved_again(store: FakeStore) -> Order:
    """o-1's first attempt failed its payment and was released; staff resubmitted it and the
    stream reserved it again: attempt 2 holds 2 pens (stock 8)."""
    reserved_order(store, token="tok_unavailable")
    gateway, _ = ledger_gateway()
    with pytest.raises(PaymentGatewayUnavailable):
        payment_charge(store=store, gateway=gateway, order_id="o-1", attempt=1)
    payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="down", attempt=1)
    order_resubmit(store=store, order_id="o-1", actor="staff", reason="card fixed", now=T0)
    again = inventory_reserve(store=store, order_id="o-1", now=T0)
    assert (again.order.status, again.order.attempt) == (OrderStatus.RESERVED, 2)
    assert store.inventory["pen"].stock == 8
    return again.order


def test_a_late_compensation_of_a_superseded_attempt_leaves_the_new_attempt_alone() -> None:
    # Given an order on its second attempt, holding stock again
    store = FakeStore()
    resubmitted_and_reserved_again(store)
    gateway, ledger = ledger_gateway()

    # When a late retry of the first attempt's compensation arrives
    outcome = payment_compensate(
        store=store, gateway=gateway, order_id="o-1", reason="late retry", attempt=1
    )

    # Then it changes nothing: the second attempt keeps its stock and its status
    assert outcome.changed is False
    assert step_status(outcome.order, 1) == "SUPERSEDED"
    assert store.order("o-1").status is OrderStatus.RESERVED
    assert store.inventory["pen"].stock == 8
    assert ledger.entries == {}


def test_every_step_of_a_superseded_attempt_refuses_or_changes_nothing() -> None:
    # Given an order on its second attempt
    store = FakeStore()
    order = resubmitted_and_reserved_again(store)
    gateway, ledger = ledger_gateway()
    before = store.orders["o-1"].copy()

    # When the first attempt's payment, shipping and flagging steps run late
    with pytest.raises(SupersededAttempt):
        payment_charge(store=store, gateway=gateway, order_id="o-1", attempt=1)
    with pytest.raises(SupersededAttempt):
        shipment_create(store=store, carriers=MockCarriers(), order_id="o-1", attempt=1)
    flagged = order_flag_for_review(store=store, order_id="o-1", reason="late", attempt=1)

    # Then nothing was charged and the order is as it was
    assert flagged.changed is False
    assert ledger.entries == {}
    assert store.orders["o-1"] == before
    # And the second attempt's own payment goes through under its own key
    store.orders["o-1"]["PaymentToken"] = "tok_approve"
    paid = payment_charge(store=store, gateway=gateway, order_id="o-1", attempt=order.attempt)
    assert paid.status is OrderStatus.PAID
    assert list(ledger.entries) == [transaction_id_for("o-1:2")]


def test_the_workflow_of_a_superseded_attempt_ends_superseded_and_touches_nothing() -> None:
    # Given an order on its second attempt, and a run of the first attempt still going
    store = FakeStore()
    resubmitted_and_reserved_again(store)
    gateway, ledger = ledger_gateway()

    # When the real definition runs the first attempt (input Attempt 1)
    result, entered, tasks = run_workflow(store, gateway, lose=set())

    # Then the payment step refuses at once, and the run ends in Superseded
    assert result.status == "SUCCEEDED"
    assert entered == ["ProcessPayment", "Superseded"]
    assert tasks.calls == ["Payment"]
    assert store.order("o-1").status is OrderStatus.RESERVED
    assert store.inventory["pen"].stock == 8
    assert ledger.entries == {}


def test_a_payment_reads_the_order_once_and_writes_it_once() -> None:
    # Given a reserved order (attempt 1)
    store = FakeStore()
    reserved_order(store)
    gateway, ledger = ledger_gateway()
    store.order_reads.clear()
    store.writes.clear()

    # When the payment step runs with the workflow's Attempt
    paid = payment_charge(store=store, gateway=gateway, order_id="o-1", attempt=1)

    # Then it is PAID under the attempt's key, after one read and with one write
    assert paid.status is OrderStatus.PAID
    assert list(ledger.entries) == [transaction_id_for("o-1:1")]
    assert store.order_reads == ["o-1"]
    assert store.writes == ["order_transition o-1"]


def test_a_superseded_compensation_still_settles_its_own_attempts_refund() -> None:
    # Given attempt 1 charged, its PAID write lost, and its refund failing once: it stays owed
    store = FakeStore()
    reserved_order(store)
    gateway, ledger = ledger_gateway()
    store.order_transition = FailOnce(store.order_transition, after=False)  # type: ignore[method-assign]
    with pytest.raises(Exception, match="InternalServerError"):
        payment_charge(store=store, gateway=gateway, order_id="o-1", attempt=1)
    fail_first_refund(gateway)
    with pytest.raises(PaymentGatewayUnavailable):
        payment_compensate(store=store, gateway=gateway, order_id="o-1", reason="x", attempt=1)
    # And staff resubmitted the order, which was reserved again (attempt 2)
    order_resubmit(store=store, order_id="o-1", actor="staff", reason="retry", now=T0)
    assert inventory_reserve(store=store, order_id="o-1", now=T0).order.attempt == 2

    # When attempt 1's compensation runs again, late
    outcome = payment_compensate(
        store=store, gateway=gateway, order_id="o-1", reason="late retry", attempt=1
    )

    # Then attempt 1's charge is refunded, and attempt 2 keeps its status and its stock
    assert outcome.changed is False
    final = store.order("o-1")
    assert (final.status, final.refund_due) == (OrderStatus.RESERVED, None)
    assert final.refund is not None
    assert ledger.entries[transaction_id_for("o-1:1")]["RefundId"] == final.refund["RefundId"]
    assert store.inventory["pen"].stock == 8
