"""The stranded-order sweepers on the fakes: what each finds and does, run twice, run at once."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pipeline.adapters.mock_carriers import MockCarriers
from pipeline.adapters.mock_payments import MockPaymentGateway
from pipeline.adapters.payment_ledger import InMemoryLedger
from pipeline.domain import InventoryItem, Order, OrderLine, execution_name
from pipeline.errors import InvalidOrder
from pipeline.fulfilment import (
    FulfilmentMessage,
    fulfilment_request,
    fulfilment_requeue_stranded,
    fulfilment_start,
    parse_fulfilment_message,
    payment_charge,
    payment_key,
    read_fulfilment_message,
    shipment_create,
)
from pipeline.reservation import inventory_reserve
from pipeline.statuses import OrderStatus
from pipeline.sweeps import (
    SweepAction,
    SweepReport,
    sweep_stranded_paid,
    sweep_stranded_pending,
    sweep_stranded_reserved,
)
from tests.fakes import FakeQueue, FakeStore, FakeWorkflow

NOW = "2026-03-01T12:00:00.000Z"
LAMP = "lamp"
ADDRESS = {"Name": "A", "Line1": "1 Way", "City": "Leeds", "PostalCode": "LS1 1AA", "Country": "GB"}


def ago(seconds: float) -> str:
    """NOW less `seconds`, written as the pipeline writes times."""
    moment = datetime.fromisoformat(NOW.replace("Z", "+00:00")) - timedelta(seconds=seconds)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_store(stock: int = 10) -> FakeStore:
    return FakeStore(inventory=[InventoryItem(LAMP, stock, Decimal("20.00"))])


def gateway() -> MockPaymentGateway:
    """The mock gateway with a ledger: idempotent by key, as the deployed one."""
    return MockPaymentGateway(success_rate=1.0, ledger=InMemoryLedger())


def pending(store: FakeStore, *, age: float, quantity: int = 1) -> Order:
    """A PENDING order placed `age` seconds before NOW, as the API writes it."""
    order = Order.new(
        customer_name="Ada",
        lines=[OrderLine(LAMP, quantity)],
        payment_token="tok_approve",
        shipping_address=ADDRESS,
        now=ago(age),
    )
    store.order_put_new(order)
    return order


def reserved(store: FakeStore, *, age: float) -> Order:
    """An order reserved `age` seconds before NOW by the reservation use case itself."""
    order = pending(store, age=age)
    return inventory_reserve(store=store, order_id=order.order_id, now=ago(age)).order


def paid(store: FakeStore, gw: MockPaymentGateway, *, age: float) -> Order:
    """An order reserved and charged `age` seconds before NOW by the use cases themselves."""
    order = reserved(store, age=age)
    return payment_charge(store=store, gateway=gw, order_id=order.order_id, now=ago(age))


def run_of(workflow: FakeWorkflow, order: Order, status: str | None, run: int = 1) -> None:
    """Give the order's workflow run `run` an execution in `status` (None: never started)."""
    if status is None:
        return
    name = execution_name(order.order_id, order.attempt, run)
    workflow.start(name, FulfilmentMessage(order.order_id, order.attempt, run).as_body())
    if status in ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"):
        workflow.finish(name, status=status)
    else:
        workflow.executions[name]["status"] = status  # RUNNING stays; PENDING_REDRIVE set


def bodies(queue: FakeQueue) -> list[Any]:
    return [message.json() for message in queue.sent]


def sweep_reserved(
    store: FakeStore,
    workflow: FakeWorkflow,
    queue: FakeQueue,
    gw: MockPaymentGateway | None = None,
    **options: Any,
) -> SweepReport:
    return sweep_stranded_reserved(
        store=store, workflow=workflow, queue=queue, gateway=gw or gateway(), now=NOW, **options
    )


def sweep_paid(
    store: FakeStore, workflow: FakeWorkflow, queue: FakeQueue, **options: Any
) -> SweepReport:
    return sweep_stranded_paid(store=store, workflow=workflow, queue=queue, now=NOW, **options)


def racing(obj: Any, method: str, rival: Callable[[], object]) -> list[object]:
    """Make `obj.method` run `rival` to its end once, right after its first call returns: the
    rival acts between this sweeper's read and its write. Returns the rival's result(s)."""
    original = getattr(obj, method)
    results: list[object] = []

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        answer = original(*args, **kwargs)
        if not results:
            results.append(None)  # mark first, so the rival's own calls go straight through
            results[0] = rival()
        return answer

    setattr(obj, method, wrapped)
    return results


# -- Messages and execution names ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempt", "run", "expected"),
    [(1, 1, "o-1"), (0, 1, "o-1"), (2, 1, "o-1-2"), (1, 2, "o-1-r2"), (3, 4, "o-1-3-r4")],
)
def test_execution_names_keep_run_one_as_before_and_add_later_runs(
    attempt: int, run: int, expected: str
) -> None:
    # Given an order's attempt and workflow run
    # When the execution name is derived
    # Then run 1 is named as executions always were, later runs get "-r<run>"
    assert execution_name("o-1", attempt, run) == expected


def test_a_message_without_run_asks_for_run_one_and_run_one_is_written_without_it() -> None:
    # Given a message as every sender wrote it before runs existed, and one for run 2
    old = json.dumps({"OrderId": "o-1", "Attempt": 2})
    later = json.dumps({"OrderId": "o-1", "Attempt": 2, "Run": 3})

    # When they are read
    first, third = read_fulfilment_message(old), read_fulfilment_message(later)

    # Then the old one is run 1, and each names its own execution
    assert (first.run, first.execution_name) == (1, "o-1-2")
    assert (third.run, third.execution_name) == (3, "o-1-2-r3")
    assert parse_fulfilment_message(later) == ("o-1", 2)
    # And run 1 is written as messages always were (no Run), later runs carry it
    assert FulfilmentMessage("o-1", 2).as_body() == {"OrderId": "o-1", "Attempt": 2}
    assert FulfilmentMessage("o-1", 2, 3).as_body() == {"OrderId": "o-1", "Attempt": 2, "Run": 3}


@pytest.mark.parametrize("run", [0, -1, "2", True, 1.5])
def test_a_message_with_a_bad_run_is_malformed(run: object) -> None:
    # Given a message whose Run is not a positive whole number
    body = json.dumps({"OrderId": "o-1", "Attempt": 1, "Run": run})

    # When it is read
    with pytest.raises(InvalidOrder) as raised:
        read_fulfilment_message(body)

    # Then it is refused, naming Run
    assert "Run" in raised.value.errors


def test_a_run_message_starts_its_own_execution_once() -> None:
    # Given run 1 of an order, over, and the message for run 2
    workflow = FakeWorkflow()
    workflow.start("o-1", {"OrderId": "o-1", "Attempt": 1})
    workflow.finish("o-1", status="ABORTED")
    body = json.dumps({"OrderId": "o-1", "Attempt": 1, "Run": 2})

    # When the message is handled twice
    first = fulfilment_start(workflow=workflow, body=body)
    second = fulfilment_start(workflow=workflow, body=body)

    # Then run 2's execution was started once, with the run in its input
    assert (first.started, second.started) == (True, False)
    assert workflow.calls[-1] == ("o-1-r2", {"OrderId": "o-1", "Attempt": 1, "Run": 2})


def test_an_order_knows_its_run_only_for_its_current_attempt() -> None:
    # Given an order whose sweeper record is for attempt 1, then the order reserved again
    order = Order.new(customer_name="x", lines=[OrderLine(LAMP, 1)])
    record = {"Attempt": 1, "Run": 3, "At": NOW, "Resends": 2, "Reason": "run 2 FAILED"}
    on_attempt_1 = Order.from_item({**order.as_item(), "Attempt": 1, "WorkflowRun": record})
    on_attempt_2 = Order.from_item({**order.as_item(), "Attempt": 2, "WorkflowRun": record})

    # Then the record counts for attempt 1 only; attempt 2 starts at run 1
    assert (on_attempt_1.workflow_run, on_attempt_1.workflow_run_resends) == (3, 2)
    assert on_attempt_1.workflow_run_at == NOW
    assert (on_attempt_2.workflow_run, on_attempt_2.workflow_run_resends) == (1, 0)
    assert on_attempt_2.workflow_run_at is None


def test_the_old_safety_net_resends_the_current_run() -> None:
    # Given a RESERVED order on run 2 (its run 1 died) whose run-2 message was lost
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue()
    order = reserved(store, age=600)
    run_of(workflow, order, "FAILED")
    sweep_reserved(store, workflow, queue)
    queue.sent.clear()

    # When the start-up safety net runs
    requeued = fulfilment_requeue_stranded(store=store, workflow=workflow, queue=queue)

    # Then it re-sends run 2, not run 1 (whose execution exists)
    assert requeued == [order.order_id]
    assert bodies(queue) == [{"OrderId": order.order_id, "Attempt": 1, "Run": 2}]


# -- PENDING ------------------------------------------------------------------------------------


def test_old_pending_orders_are_reserved_or_rejected_and_recent_ones_left() -> None:
    # Given a PENDING order with stock, one too large for it (both 10 minutes old), one placed
    # a minute ago, and an old one staff sent back to PENDING a minute ago
    store, queue = new_store(stock=3), FakeQueue()
    stocked = pending(store, age=600)
    short = pending(store, age=590, quantity=5)
    fresh = pending(store, age=60)
    resubmitted = pending(store, age=900)
    store.orders[resubmitted.order_id]["LastUpdated"] = ago(60)

    # When the PENDING sweeper runs with a two-minute threshold
    report = sweep_stranded_pending(store=store, queue=queue, min_age_seconds=120, now=NOW)

    # Then the two old ones were found and moved on as the stream's handler would have
    assert report.found == [short.order_id, stocked.order_id]  # newest first
    assert report.ids(SweepAction.REDRIVEN) == [short.order_id, stocked.order_id]
    assert store.order(stocked.order_id).status == OrderStatus.RESERVED
    assert store.inventory[LAMP].stock == 2
    assert store.order(short.order_id).status == OrderStatus.REJECTED
    # And only the reserved one went to the Orders queue, as OrderProcessing sends it
    assert bodies(queue) == [{"OrderId": stocked.order_id, "Attempt": 1}]
    # And the recent ones were left alone (the fresh one is not even read: OrderDate bounds
    # the query; the resubmitted one is read and passed over)
    assert store.order(fresh.order_id).status == OrderStatus.PENDING
    assert store.order(resubmitted.order_id).status == OrderStatus.PENDING
    assert (report.examined, report.failed, report.more) == (3, {}, False)


def test_a_second_pending_sweep_and_the_late_stream_record_do_nothing() -> None:
    # Given a stranded PENDING order the sweeper has reserved
    store, queue = new_store(), FakeQueue()
    order = pending(store, age=600)
    sweep_stranded_pending(store=store, queue=queue, now=NOW)
    writes, sent = list(store.writes), len(queue.sent)

    # When the sweeper runs again, and the stream record arrives late after all
    again = sweep_stranded_pending(store=store, queue=queue, now=NOW)
    late = inventory_reserve(store=store, order_id=order.order_id, order=order)

    # Then neither reserves again: no write, no second message, stock taken once
    assert (again.found, again.done) == ([], [])
    assert late.reserved_now is False and late.order.status == OrderStatus.RESERVED
    assert store.writes[: len(writes)] == writes and len(queue.sent) == sent == 1
    assert store.inventory[LAMP].stock == 9
    assert store.order(order.order_id).attempt == 1


def test_two_pending_sweeps_at_once_reserve_once() -> None:
    # Given a stranded PENDING order, and a second sweeper that reserves it while the first
    # is between reading the stock and writing the reservation
    store, queue = new_store(), FakeQueue()
    order = pending(store, age=600)
    rival = racing(
        store,
        "inventory_get_many",
        lambda: sweep_stranded_pending(store=store, queue=queue, now=NOW),
    )

    # When the first sweeper runs
    first = sweep_stranded_pending(store=store, queue=queue, now=NOW)

    # Then both found it, exactly one reserved it and sent it on, and stock was taken once
    second = rival[0]
    assert isinstance(second, SweepReport)
    assert first.found == second.found == [order.order_id]
    assert len(first.done) + len(second.done) == 1
    assert second.ids(SweepAction.REDRIVEN) == [order.order_id]
    assert len(queue.sent) == 1
    assert store.inventory[LAMP].stock == 9


def test_a_pending_sweep_reads_the_index_a_bounded_page_at_a_time() -> None:
    # Given 130 stranded PENDING orders (twice: two stores) and a spy on the index queries
    store, other, queue = new_store(stock=1000), new_store(stock=1000), FakeQueue()
    for i in range(130):
        pending(store, age=600 + i)
        pending(other, age=600 + i)
    queries: list[dict[str, Any]] = []
    query = store.orders_by_status

    def spy(status: OrderStatus, **kwargs: Any) -> Any:
        queries.append(kwargs)
        return query(status, **kwargs)

    store.orders_by_status = spy  # type: ignore[method-assign]

    # When a sweep may read 200 orders, and (on the other store) sweeps may read 50 each
    whole = sweep_stranded_pending(store=store, queue=queue, max_orders=200, now=NOW)
    capped = [sweep_stranded_pending(store=other, queue=queue, max_orders=50, now=NOW)]
    while capped[-1].more and len(capped) < 10:
        capped.append(sweep_stranded_pending(store=other, queue=queue, max_orders=50, now=NOW))

    # Then the first sweep went through both pages with the index's cursor, bounded by the
    # cutoff, and moved all 130 on
    assert [(q["limit"], q["cursor"] is None) for q in queries[:2]] == [(100, True), (100, False)]
    assert {q["placed_before"] for q in queries} == {ago(120)}
    assert len(whole.done) == 130 and not whole.more
    # And capped sweeps each read at most 50 and said so, until none was left
    assert [len(r.found) for r in capped] == [50, 50, 30]
    assert [r.more for r in capped] == [True, True, False]


# -- RESERVED -----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED"])
def test_a_reserved_order_whose_run_is_over_gets_a_new_run(state: str) -> None:
    # Given a RESERVED order, ten minutes old, whose workflow execution is over
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue()
    order = reserved(store, age=600)
    run_of(workflow, order, state)

    # When the RESERVED sweeper runs
    report = sweep_reserved(store, workflow, queue)

    # Then run 2 was asked for: recorded on the order, sent to the queue with its run
    assert report.found == [order.order_id]
    assert report.ids(SweepAction.RESTARTED) == [order.order_id]
    swept = store.order(order.order_id)
    assert swept.extra["WorkflowRun"] == {
        "Attempt": 1,
        "Run": 2,
        "At": NOW,
        "Resends": 0,
        "Reason": f"run 1 {state}",
    }
    assert bodies(queue) == [{"OrderId": order.order_id, "Attempt": 1, "Run": 2}]
    # And the attempt (so the payment key) and the stock held are what they were
    assert (swept.status, swept.attempt, payment_key(swept)) == (
        OrderStatus.RESERVED,
        1,
        f"{order.order_id}:1",
    )
    assert store.inventory[LAMP].stock == 9


@pytest.mark.parametrize("state", ["RUNNING", "PENDING_REDRIVE"])
def test_a_reserved_order_with_a_live_run_is_left_alone(state: str) -> None:
    # Given an old RESERVED order whose execution is still live
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue()
    order = reserved(store, age=600)
    run_of(workflow, order, state)

    # When the sweeper runs
    report = sweep_reserved(store, workflow, queue)

    # Then nothing was found or written
    assert (report.examined, report.found, report.done) == (1, [], [])
    assert queue.sent == [] and "order_set_fields_if_unchanged" not in " ".join(store.writes)


def test_a_reserved_order_whose_run_never_started_is_sent_again_then_released() -> None:
    # Given an old RESERVED order with no execution at all (its queue message was lost)
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue()
    order = reserved(store, age=600)

    # When the sweeper runs four times, six minutes apart, the message lost each time
    reports = [
        sweep_stranded_reserved(
            store=store,
            workflow=workflow,
            queue=queue,
            gateway=gateway(),
            max_resends=3,
            now=ago(-360 * n),
        )
        for n in range(4)
    ]

    # Then run 1's message was sent again three times, counted on the order, never run 2
    assert [r.done[0].action for r in reports] == [SweepAction.REQUEUED] * 3 + [
        SweepAction.RELEASED
    ]
    assert bodies(queue) == [{"OrderId": order.order_id, "Attempt": 1}] * 3
    # And the fourth time it was released: stock back, PAYMENT_FAILED, saying why
    released = store.order(order.order_id)
    assert released.status == OrderStatus.PAYMENT_FAILED
    assert "never started after 3 re-send(s)" in released.status_reason
    assert store.inventory[LAMP].stock == 10


def test_a_new_run_never_charges_twice() -> None:
    # Given a RESERVED order whose run 1 charged the gateway and was aborted before it could
    # record the payment (the charge is only in the gateway's ledger)
    store, workflow, queue, gw = new_store(), FakeWorkflow(), FakeQueue(), gateway()
    order = reserved(store, age=600)
    key = payment_key(order)
    charge = gw.charge(amount=Decimal("20.00"), currency="USD", token=None, idempotency_key=key)
    run_of(workflow, order, "ABORTED")

    # When the sweeper starts run 2, its message is handled, and its payment step runs
    sweep_reserved(store, workflow, queue, gw)
    started = fulfilment_start(workflow=workflow, body=queue.sent[0].body)
    after = payment_charge(store=store, gateway=gw, order_id=order.order_id)

    # Then run 2 is its own execution, and the order is PAID by the one charge already made
    assert started.started and started.execution_arn.endswith(f":{order.order_id}-r2")
    assert after.status == OrderStatus.PAID
    assert after.payment is not None and after.payment["TransactionId"] == charge.transaction_id
    assert len(gw.ledger.entries) == 1  # type: ignore[union-attr]


def test_a_reserved_order_out_of_runs_is_released_and_its_charge_refunded() -> None:
    # Given a RESERVED order on its third run, which died after the gateway charged it
    store, workflow, queue, gw = new_store(), FakeWorkflow(), FakeQueue(), gateway()
    order = reserved(store, age=900)
    key = payment_key(order)
    gw.charge(amount=Decimal("20.00"), currency="USD", token=None, idempotency_key=key)
    store.order_set_fields(
        order.order_id,
        {
            "WorkflowRun": {"Attempt": 1, "Run": 3, "At": ago(600), "Resends": 0, "Reason": "x"},
        },
        expected=[OrderStatus.RESERVED],
    )
    run_of(workflow, order, "FAILED", run=3)

    # When the sweeper runs with a cap of three runs
    report = sweep_reserved(store, workflow, queue, gw, max_runs=3)

    # Then it was released: stock back, PAYMENT_FAILED, the charge refunded; nothing sent
    assert report.ids(SweepAction.RELEASED) == [order.order_id]
    released = store.order(order.order_id)
    assert released.status == OrderStatus.PAYMENT_FAILED
    assert "workflow run 3 of 3 FAILED" in released.status_reason
    assert store.inventory[LAMP].stock == 10
    assert released.refund is not None and released.refund_due is None
    assert queue.sent == []


def test_a_second_reserved_sweep_does_nothing() -> None:
    # Given an old RESERVED order whose run was aborted, swept once (run 2 asked for)
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue()
    order = reserved(store, age=600)
    run_of(workflow, order, "ABORTED")
    sweep_reserved(store, workflow, queue)
    writes = len(store.writes)

    # When it runs again, before and after run 2 has started
    before = sweep_reserved(store, workflow, queue)
    fulfilment_start(workflow=workflow, body=queue.sent[0].body)
    later = sweep_stranded_reserved(
        store=store, workflow=workflow, queue=queue, gateway=gateway(), now=ago(-3600)
    )

    # Then it found nothing to do: no write, no second message
    assert (before.found, before.done, later.found, later.done) == ([], [], [], [])
    assert len(store.writes) == writes and len(queue.sent) == 1


def test_two_reserved_sweeps_at_once_start_one_new_run() -> None:
    # Given an old RESERVED order whose run failed, and a second sweeper that acts on it while
    # the first is between reading the order and writing its claim
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue()
    order = reserved(store, age=600)
    run_of(workflow, order, "FAILED")
    rival = racing(store, "order_get", lambda: sweep_reserved(store, workflow, queue))

    # When the first sweeper runs
    first = sweep_reserved(store, workflow, queue)

    # Then one of them started run 2, and only one message was sent
    second = rival[0]
    assert isinstance(second, SweepReport)
    assert first.done == [] and second.ids(SweepAction.RESTARTED) == [order.order_id]
    assert bodies(queue) == [{"OrderId": order.order_id, "Attempt": 1, "Run": 2}]
    assert store.order(order.order_id).workflow_run == 2


def test_a_recently_reserved_order_is_not_stranded_yet() -> None:
    # Given a RESERVED order reserved a minute ago whose run already died
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue()
    order = reserved(store, age=60)
    run_of(workflow, order, "FAILED")

    # When the sweeper runs with its five-minute threshold
    report = sweep_reserved(store, workflow, queue, min_age_seconds=300)

    # Then it waits: nothing found
    assert (report.examined, report.found) == (0, [])
    assert store.order(order.order_id).workflow_run == 1


def test_a_failure_on_one_order_is_reported_and_the_others_still_swept() -> None:
    # Given two stranded RESERVED orders, and a queue that refuses messages
    store, workflow, queue = new_store(), FakeWorkflow(), FakeQueue(fail_sends=True)
    first, second = reserved(store, age=600), reserved(store, age=700)
    run_of(workflow, first, "FAILED")
    run_of(workflow, second, "FAILED")

    # When the sweeper runs
    report = sweep_reserved(store, workflow, queue)

    # Then both were tried and both failures reported, naming the error
    assert set(report.failed) == {first.order_id, second.order_id}
    assert all("NonExistentQueue" in error for error in report.failed.values())
    assert report.done == []


# -- PAID ---------------------------------------------------------------------------------------


def test_a_paid_order_whose_run_died_is_shipped_by_a_new_run_without_a_second_charge() -> None:
    # Given an order paid ten minutes ago whose run then failed
    store, workflow, queue, gw = new_store(), FakeWorkflow(), FakeQueue(), gateway()
    order = paid(store, gw, age=600)
    run_of(workflow, order, "FAILED")
    ledger = dict(gw.ledger.entries)  # type: ignore[union-attr]

    # When the PAID sweeper runs, and run 2 does what the workflow does: pay, then ship
    report = sweep_paid(store, workflow, queue)
    fulfilment_start(workflow=workflow, body=queue.sent[0].body)
    again = payment_charge(store=store, gateway=gw, order_id=order.order_id)
    shipped = shipment_create(store=store, carriers=MockCarriers(), order_id=order.order_id)

    # Then shipping was resumed under run 2, the payment step charged nothing, and it shipped
    assert report.ids(SweepAction.RESUMED) == [order.order_id]
    assert bodies(queue) == [{"OrderId": order.order_id, "Attempt": 1, "Run": 2}]
    assert again.payment == order.payment
    assert gw.ledger.entries == ledger  # type: ignore[union-attr]
    assert shipped.status == OrderStatus.SHIPPED


def test_a_paid_order_out_of_runs_is_flagged_for_staff() -> None:
    # Given a PAID order on its last allowed run, which was aborted
    store, workflow, queue, gw = new_store(), FakeWorkflow(), FakeQueue(), gateway()
    order = paid(store, gw, age=900)
    store.order_set_fields(
        order.order_id,
        {"WorkflowRun": {"Attempt": 1, "Run": 2, "At": ago(600), "Resends": 0, "Reason": "x"}},
        expected=[OrderStatus.PAID],
    )
    run_of(workflow, order, "ABORTED", run=2)

    # When the PAID sweeper runs with a cap of two runs
    report = sweep_paid(store, workflow, queue, max_runs=2)

    # Then the order waits for staff in MANUAL_INTERVENTION, saying why; nothing was sent
    assert report.ids(SweepAction.FLAGGED) == [order.order_id]
    flagged = store.order(order.order_id)
    assert flagged.status == OrderStatus.MANUAL_INTERVENTION
    assert "workflow run 2 of 2 ABORTED" in flagged.status_reason
    assert queue.sent == []


def test_a_second_paid_sweep_and_a_concurrent_one_do_nothing_more() -> None:
    # Given a PAID order whose run timed out, and a rival sweeper racing the first one
    store, workflow, queue, gw = new_store(), FakeWorkflow(), FakeQueue(), gateway()
    order = paid(store, gw, age=600)
    run_of(workflow, order, "TIMED_OUT")
    rival = racing(store, "order_get", lambda: sweep_paid(store, workflow, queue))

    # When the first sweeper runs, then a third one after it
    first = sweep_paid(store, workflow, queue)
    third = sweep_paid(store, workflow, queue)

    # Then exactly one resumed it, one message was sent, and the third found nothing
    second = rival[0]
    assert isinstance(second, SweepReport)
    assert len(first.done) + len(second.done) == 1
    assert len(queue.sent) == 1
    assert (third.found, third.done) == ([], [])


def test_a_paid_order_whose_new_run_never_started_is_sent_again() -> None:
    # Given a PAID order whose run 1 failed and whose run 2 message was lost long ago
    store, workflow, queue, gw = new_store(), FakeWorkflow(), FakeQueue(), gateway()
    order = paid(store, gw, age=1200)
    run_of(workflow, order, "FAILED")
    store.order_set_fields(
        order.order_id,
        {"WorkflowRun": {"Attempt": 1, "Run": 2, "At": ago(900), "Resends": 0, "Reason": "x"}},
        expected=[OrderStatus.PAID],
    )

    # When the PAID sweeper runs
    report = sweep_paid(store, workflow, queue)

    # Then run 2's message was sent again (run 2 never existed, so it is not over)
    assert report.ids(SweepAction.REQUEUED) == [order.order_id]
    assert bodies(queue) == [{"OrderId": order.order_id, "Attempt": 1, "Run": 2}]
    assert store.order(order.order_id).workflow_run_resends == 1


def test_fulfilment_request_sends_the_orders_current_run() -> None:
    # Given an order on run 3 of attempt 1
    queue = FakeQueue()
    order = Order.new(customer_name="x", lines=[OrderLine(LAMP, 1)])
    record = {"Attempt": 1, "Run": 3, "At": NOW, "Resends": 0, "Reason": "x"}
    order = Order.from_item({**order.as_item(), "Attempt": 1, "WorkflowRun": record})

    # When it is sent to the Orders queue
    fulfilment_request(queue=queue, order=order)

    # Then the message asks for run 3
    assert bodies(queue) == [{"OrderId": order.order_id, "Attempt": 1, "Run": 3}]
