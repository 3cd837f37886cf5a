"""Unit tests of the Lambda handlers: real event shapes in, in-memory fakes behind wiring."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from botocore.exceptions import ClientError

from pipeline.adapters.dynamodb import deserialize
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.errors import ReservationContention
from pipeline.statuses import OrderStatus
from tests.fakes import FakeQueue, FakeStore, FakeWorkflow
from tests.lambda_harness import REQUEST_ID, FakeLambdaContext, use_fakes

EVENTS = Path(__file__).resolve().parents[1] / "events"
T0 = "2024-05-01T10:00:00.000Z"

# The orders of tests/events/dynamodb_stream_batch.json and sqs_batch.json.
ORDER_A = "6f1c1f3e-1a2b-4c3d-8e4f-0a1b2c3d4e5a"  # reservable, object-shaped Items
ORDER_B = "6f1c1f3e-1a2b-4c3d-8e4f-0a1b2c3d4e5b"  # no longer in the table
ORDER_C = "6f1c1f3e-1a2b-4c3d-8e4f-0a1b2c3d4e5c"  # too many laptops and an unknown item
ORDER_D = "6f1c1f3e-1a2b-4c3d-8e4f-0a1b2c3d4e5d"  # the seed's plain-name Items
ORDER_E = "6f1c1f3e-1a2b-4c3d-8e4f-0a1b2c3d4e5e"  # its workflow already runs
ORDER_P = "6f1c1f3e-1a2b-4c3d-8e4f-0a1b2c3d4e5f"  # the Step Functions payloads' order


def load_event(name: str) -> Any:
    """A copy of an event fixture from tests/events/."""
    return json.loads((EVENTS / name).read_text())


@dataclass
class Output:
    """What a handler printed: structured log lines and EMF metric documents."""

    logs: list[dict[str, Any]]
    emf: list[dict[str, Any]]

    def metric(self, name: str) -> float:
        """The sum of a metric's values over every EMF document (0 if never emitted)."""
        total = 0.0
        for doc in self.emf:
            declared = [m["Name"] for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]]
            if name in declared:
                value = doc[name]
                total += sum(value) if isinstance(value, list) else value
        return total

    def messages(self) -> list[tuple[str | None, str]]:
        """(order_id, message) of every log line."""
        return [(line.get("order_id"), line["message"]) for line in self.logs]


def read_output(capsys: pytest.CaptureFixture[str]) -> Output:
    """Parse stdout: every line a function prints must be JSON (structured logs or EMF)."""
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines() if text.strip()]
    emf = [line for line in lines if "_aws" in line]
    for doc in emf:
        assert all(d["Namespace"] == "Test" for d in doc["_aws"]["CloudWatchMetrics"])
        assert doc["service"] == "test"
    return Output([line for line in lines if "_aws" not in line], emf)


def assert_every_log_line_names_its_order(output: Output) -> None:
    """Each log line carries order_id and the Lambda context Powertools injected."""
    assert output.logs, "the handler logged nothing"
    for line in output.logs:
        assert line.get("order_id"), line
        assert line["function_request_id"] == REQUEST_ID
        assert line["service"] == "test"


def _orders_from_stream(event: dict[str, Any], skip: set[str]) -> list[Order]:
    """The orders the table held when it emitted the batch's records (as the images show)."""
    orders = []
    for record in event["Records"]:
        image = deserialize(record["dynamodb"]["NewImage"])
        if image["OrderId"] not in skip:
            orders.append(Order.from_item(image))
    return orders


def _inventory(rows: Mapping[str, tuple[int, str]]) -> list[InventoryItem]:
    """Inventory rows from {name: (stock, price)}."""
    return [InventoryItem(name, count, Decimal(price)) for name, (count, price) in rows.items()]


STOCK = _inventory(
    {
        "laptop": (10, "999.99"),
        "mouse": (50, "25.50"),
        "keyboard": (5, "49.99"),
    }
)


def _reserved(order_id: str, *, token: str | None = None, postcode: str = "12345") -> Order:
    order = Order.new(
        customer_name="Ada Lovelace",
        lines=[OrderLine("laptop", 1), OrderLine("mouse", 2)],
        order_id=order_id,
        payment_token=token,
        shipping_address={"Line1": "12 Analytical Row", "City": "London", "PostalCode": postcode},
        now=T0,
    )
    order = order.with_status(OrderStatus.RESERVED, "Reserved 3 unit(s) across 2 item(s)", T0)
    return replace(
        order,
        attempt=1,
        reservation={
            "Lines": [
                {"ItemName": "laptop", "Quantity": 1, "UnitPrice": Decimal("999.99")},
                {"ItemName": "mouse", "Quantity": 2, "UnitPrice": Decimal("25.50")},
            ],
            "Total": Decimal("1050.99"),
            "Currency": "USD",
            "ReservedAt": T0,
        },
    )


def _paid(order_id: str, *, postcode: str = "12345") -> Order:
    order = _reserved(order_id, postcode=postcode)
    order = order.with_status(OrderStatus.PAID, "Payment approved, transaction txn_1", T0)
    return replace(
        order,
        payment={
            "TransactionId": "txn_" + "0" * 24,
            "Amount": Decimal("1050.99"),
            "Currency": "USD",
            "ProcessedAt": T0,
        },
    )


# -- OrderProcessing (DynamoDB stream) --------------------------------------------------------


class _BatchOnlyQueue(FakeQueue):
    """A FakeQueue that refuses single sends: the handler must send its batch in one go."""

    def send_json(self, body: Mapping[str, Any], *, attributes: Any = None) -> str:
        raise AssertionError("OrderProcessing sends its batch's orders together")


def test_stream_batch_reserves_rejects_and_reports_the_failed_record(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a stream batch of four new orders, one of which is no longer in the table
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    store = FakeStore(_orders_from_stream(event, skip={ORDER_B}), STOCK)
    queue = _BatchOnlyQueue()
    use_fakes(monkeypatch, app, store=store, queue=queue)

    # When the handler processes it
    result = app.handler(event, FakeLambdaContext())

    # Then only the record that raised is reported, by its sequence number
    assert result == {"batchItemFailures": [{"itemIdentifier": "100000000000000000002"}]}
    # and the others were handled: A and D reserved (D from the seed's plain names), C rejected
    a, c, d = store.order(ORDER_A), store.order(ORDER_C), store.order(ORDER_D)
    assert (a.status, a.attempt, a.total) == (OrderStatus.RESERVED, 1, Decimal("1050.99"))
    assert (d.status, d.attempt, d.total) == (OrderStatus.RESERVED, 1, Decimal("75.49"))
    assert c.status is OrderStatus.REJECTED
    assert "insufficient stock for 'laptop' (requested 40, available 9)" in c.status_reason
    assert "unknown item 'monitor'" in c.status_reason
    assert {s["ItemName"] for s in c.rejection} == {"laptop", "monitor"}
    assert {n: r.stock for n, r in store.inventory.items()} == {
        "laptop": 9,
        "mouse": 47,
        "keyboard": 4,
    }
    # and the reserved orders, and only they, went to the Orders queue, in one batch
    assert [(m.json(), m.string_attributes) for m in queue.sent] == [
        ({"OrderId": ORDER_A, "Attempt": 1}, {"OrderId": ORDER_A}),
        ({"OrderId": ORDER_D, "Attempt": 1}, {"OrderId": ORDER_D}),
    ]


def test_stream_batch_logs_carry_the_order_id_and_metrics_are_emitted(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the same stream batch
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    store = FakeStore(_orders_from_stream(event, skip={ORDER_B}), STOCK)
    use_fakes(monkeypatch, app, store=store, queue=FakeQueue())

    # When the handler processes it
    app.handler(event, FakeLambdaContext())
    output = read_output(capsys)

    # Then every log line names the order it is about
    assert_every_log_line_names_its_order(output)
    assert (ORDER_A, "stock reserved") in output.messages()
    assert (ORDER_A, "sent to the Orders queue") in output.messages()
    assert (ORDER_C, "order rejected") in output.messages()
    assert (ORDER_D, "stock reserved") in output.messages()
    assert not [m for m in output.messages() if m[0] == ORDER_B]
    # and the EMF metrics count what happened
    assert output.metric("ReservationsSucceeded") == 2
    assert output.metric("ReservationsRejected") == 1
    assert output.metric("OrdersProcessed") == 3


def test_a_redelivered_record_of_a_reserved_order_does_not_reserve_twice(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an order already RESERVED by an earlier delivery of the same record
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    event["Records"] = event["Records"][:1]
    store = FakeStore([_reserved(ORDER_A)], STOCK)
    queue = FakeQueue()
    use_fakes(monkeypatch, app, store=store, queue=queue)

    # When the record is delivered again
    result = app.handler(event, FakeLambdaContext())
    output = read_output(capsys)

    # Then no stock moves, the order is re-sent (the execution name makes that harmless)
    assert result == {"batchItemFailures": []}
    assert store.inventory["laptop"].stock == 10
    assert store.order(ORDER_A).attempt == 1
    assert [(m.json(), m.string_attributes) for m in queue.sent] == [
        ({"OrderId": ORDER_A, "Attempt": 1}, {"OrderId": ORDER_A})
    ]
    assert (ORDER_A, "order already handled") in output.messages()
    assert output.metric("ReservationsSucceeded") == 0
    assert output.metric("OrdersProcessed") == 1


def test_a_redelivered_record_of_a_rejected_order_is_not_counted_again(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an order an earlier delivery already rejected
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    event["Records"] = event["Records"][2:3]
    (pending,) = _orders_from_stream(event, skip=set())
    rejected = pending.with_status(
        OrderStatus.REJECTED, "Rejected: unknown item 'monitor'", "2024-05-01T10:00:01.000Z"
    )
    store = FakeStore([rejected], STOCK)
    use_fakes(monkeypatch, app, store=store, queue=FakeQueue())

    # When the record is delivered again (a retried stream batch starts at a failed record)
    app.handler(event, FakeLambdaContext())
    output = read_output(capsys)

    # Then it is seen as already handled and not counted as a second rejection
    assert output.metric("ReservationsRejected") == 0
    assert output.messages() == [(ORDER_C, "order already handled")]
    assert output.metric("OrdersProcessed") == 1


def test_a_transient_store_error_is_reported_not_swallowed(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a batch where reserving order D keeps colliding with other transactions
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    store = FakeStore(_orders_from_stream(event, skip={ORDER_B}), STOCK)
    store.fail_reserve[ORDER_D] = ReservationContention("kept colliding")
    queue = FakeQueue()
    use_fakes(monkeypatch, app, store=store, queue=queue)

    # When the handler processes it
    result = app.handler(event, FakeLambdaContext())

    # Then both B (missing) and D (contention) are reported for retry, D stays PENDING
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": "100000000000000000002"},
            {"itemIdentifier": "100000000000000000004"},
        ]
    }
    assert store.order(ORDER_D).status is OrderStatus.PENDING
    assert [m.json()["OrderId"] for m in queue.sent] == [ORDER_A]


def test_a_message_the_queue_refuses_is_reported_and_sent_when_delivered_again(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the stream batch and a queue that refuses D's message (one entry of the batch)
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    store = FakeStore(_orders_from_stream(event, skip={ORDER_B}), STOCK)
    queue = FakeQueue()
    queue.refuse_bodies = {json.dumps({"OrderId": ORDER_D, "Attempt": 1})}
    use_fakes(monkeypatch, app, store=store, queue=queue)

    # When the handler processes it
    result = app.handler(event, FakeLambdaContext())
    output = read_output(capsys)

    # Then B (missing) and D (not sent) are reported, in stream order; D stays reserved, once
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": "100000000000000000002"},
            {"itemIdentifier": "100000000000000000004"},
        ]
    }
    assert store.order(ORDER_D).status is OrderStatus.RESERVED
    assert [m.json()["OrderId"] for m in queue.sent] == [ORDER_A]
    assert (ORDER_D, "the Orders queue refused the message") in output.messages()
    assert output.metric("OrdersProcessed") == 2  # A sent, C rejected; D not yet
    stock_after_first = {n: r.stock for n, r in store.inventory.items()}

    # When the stream delivers D's record again and the queue takes it now
    queue.refuse_bodies = set()
    event["Records"] = event["Records"][3:]
    assert app.handler(event, FakeLambdaContext()) == {"batchItemFailures": []}

    # Then D is sent without reserving its stock a second time
    assert [m.json()["OrderId"] for m in queue.sent] == [ORDER_A, ORDER_D]
    assert {n: r.stock for n, r in store.inventory.items()} == stock_after_first


def test_a_failed_batch_send_reports_every_order_it_carried(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the stream batch and a queue whose every send fails
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    store = FakeStore(_orders_from_stream(event, skip={ORDER_B}), STOCK)
    use_fakes(monkeypatch, app, store=store, queue=FakeQueue(fail_sends=True))

    # When the handler processes it
    result = app.handler(event, FakeLambdaContext())
    output = read_output(capsys)

    # Then A and D (reserved, not sent) and B (missing) are reported; C (rejected) is done
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": "100000000000000000001"},
            {"itemIdentifier": "100000000000000000002"},
            {"itemIdentifier": "100000000000000000004"},
        ]
    }
    assert (ORDER_A, "could not send to the Orders queue") in output.messages()
    assert (ORDER_D, "could not send to the Orders queue") in output.messages()
    assert_every_log_line_names_its_order(output)
    assert output.metric("OrdersProcessed") == 1


def test_a_record_without_a_new_image_is_reported(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a batch with a new order and a REMOVE record (no NewImage), were a filter missing
    app = load_app("order_processing")
    transitions = load_event("dynamodb_stream_transitions.json")
    event = {"Records": [transitions["insert_pending"], transitions["remove"]]}
    store = FakeStore(_orders_from_stream({"Records": event["Records"][:1]}, set()), STOCK)
    use_fakes(monkeypatch, app, store=store, queue=FakeQueue())

    # When the handler processes it
    result = app.handler(event, FakeLambdaContext())

    # Then the REMOVE record is the reported failure and the new order is reserved
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": transitions["remove"]["dynamodb"]["SequenceNumber"]}
        ]
    }
    assert store.order(ORDER_A).status is OrderStatus.RESERVED


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_batch_where_every_record_fails_raises_so_lambda_retries_it(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a batch none of whose orders is in the table
    app = load_app("order_processing")
    event = load_event("dynamodb_stream_batch.json")
    use_fakes(monkeypatch, app, store=FakeStore([], STOCK), queue=FakeQueue())

    # When the handler processes it
    # Then the invocation fails as a whole (Powertools' rule when all records fail)
    with pytest.raises(BatchProcessingError):
        app.handler(event, FakeLambdaContext())


# -- SQSProcessor (Orders queue) --------------------------------------------------------------


def test_queue_batch_starts_one_execution_per_order_attempt(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an SQS batch: two new orders (one on its second attempt), a truncated body, an
    # order whose workflow already runs, and a body without OrderId
    app = load_app("sqs_processor")
    event = load_event("sqs_batch.json")
    workflow = FakeWorkflow(existing=[ORDER_E])
    use_fakes(monkeypatch, app, workflow=workflow)

    # When the handler processes it
    result = app.handler(event, FakeLambdaContext())

    # Then the malformed messages, and only they, are reported by message id
    assert result == {
        "batchItemFailures": [
            {"itemIdentifier": "7b1c0e2a-5d43-4c1e-9a6f-3e2d1c0b9a87"},
            {"itemIdentifier": "c0ffee00-1234-4abc-9def-0123456789ab"},
        ]
    }
    # and the execution name is the OrderId, with -<n> for attempt n > 1
    assert workflow.calls == [
        (ORDER_A, {"OrderId": ORDER_A, "Attempt": 1}),
        (f"{ORDER_D}-2", {"OrderId": ORDER_D, "Attempt": 2}),
        (ORDER_E, {"OrderId": ORDER_E, "Attempt": 1}),
    ]
    assert set(workflow.executions) == {ORDER_A, f"{ORDER_D}-2", ORDER_E}


def test_queue_batch_logs_and_metrics(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the same batch
    app = load_app("sqs_processor")
    use_fakes(monkeypatch, app, workflow=FakeWorkflow(existing=[ORDER_E]))

    # When the handler processes it
    app.handler(load_event("sqs_batch.json"), FakeLambdaContext())
    output = read_output(capsys)

    # Then each log line names its order, new and duplicate starts are told apart
    assert_every_log_line_names_its_order(output)
    assert output.messages() == [
        (ORDER_A, "workflow started"),
        (ORDER_D, "workflow started"),
        (ORDER_E, "workflow already exists"),
    ]
    assert output.logs[1]["execution_arn"].endswith(
        f":execution:OrderWorkflow-Ab12Cd34:{ORDER_D}-2"
    )
    assert output.metric("WorkflowsStarted") == 2
    assert output.metric("DuplicateDeliveries") == 1


def test_a_message_delivered_twice_starts_one_workflow(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given the same message in two deliveries
    app = load_app("sqs_processor")
    event = load_event("sqs_batch.json")
    event["Records"] = event["Records"][:1]
    workflow = FakeWorkflow()
    use_fakes(monkeypatch, app, workflow=workflow)

    # When both deliveries are processed
    first = app.handler(event, FakeLambdaContext())
    second = app.handler(copy.deepcopy(event), FakeLambdaContext())

    # Then both succeed and one execution exists
    assert first == second == {"batchItemFailures": []}
    assert list(workflow.executions) == [ORDER_A]
    assert read_output(capsys).metric("DuplicateDeliveries") == 1


def test_a_failed_start_is_reported_for_redelivery(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given Step Functions throttling the start of order D's execution
    app = load_app("sqs_processor")
    workflow = FakeWorkflow()
    workflow.fail_on[f"{ORDER_D}-2"] = ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "StartExecution"
    )
    use_fakes(monkeypatch, app, workflow=workflow)
    event = load_event("sqs_batch.json")
    event["Records"] = event["Records"][:2]

    # When the handler processes the batch
    result = app.handler(event, FakeLambdaContext())

    # Then D's message is reported (SQS shows it again later), A's is not
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert list(workflow.executions) == [ORDER_A]


# -- Payment (Step Functions task) ------------------------------------------------------------


def test_payment_charges_a_reserved_order_and_returns_the_payment(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a reserved order and the state machine's payload for it
    app = load_app("payment")
    store = FakeStore([_reserved(ORDER_P, token="tok_approve")], STOCK)
    use_fakes(monkeypatch, app, store=store)

    # When the handler runs
    result = app.handler(load_event("sfn_payment_input.json"), FakeLambdaContext())

    # Then the order is PAID and the JSON-safe payment is returned for the next state
    payment = store.order(ORDER_P).payment
    assert store.order(ORDER_P).status is OrderStatus.PAID
    assert result == {
        "OrderId": ORDER_P,
        "Payment": {
            "TransactionId": payment["TransactionId"],
            "Amount": 1050.99,
            "Currency": "USD",
            "ProcessedAt": payment["ProcessedAt"],
        },
    }
    json.dumps(result)
    output = read_output(capsys)
    assert_every_log_line_names_its_order(output)
    assert output.messages() == [(ORDER_P, "payment recorded")]
    assert output.metric("PaymentsSucceeded") == 1


def test_payment_retry_after_a_recorded_payment_does_not_charge_again(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given an order whose payment was recorded but whose task result was lost
    app = load_app("payment")
    store = FakeStore([_paid(ORDER_P)], STOCK)
    use_fakes(monkeypatch, app, store=store)

    # When the task runs again
    result = app.handler({"OrderId": ORDER_P, "RetryCount": 1}, FakeLambdaContext())

    # Then the recorded payment is returned and nothing new is written
    assert result["Payment"]["TransactionId"] == "txn_" + "0" * 24
    assert len(store.order(ORDER_P).history) == 3


@pytest.mark.parametrize(
    ("token", "error", "metric", "message"),
    [
        ("tok_decline", "PaymentDeclined", "PaymentsDeclined", "payment declined"),
        (
            "tok_unavailable",
            "PaymentGatewayUnavailable",
            "PaymentGatewayErrors",
            "payment gateway unavailable",
        ),
    ],
)
def test_payment_failures_are_raised_under_their_error_names(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    token: str,
    error: str,
    metric: str,
    message: str,
) -> None:
    # Given a reserved order whose test token makes the gateway decline or time out
    app = load_app("payment")
    store = FakeStore([_reserved(ORDER_P, token=token)], STOCK)
    use_fakes(monkeypatch, app, store=store)

    # When the handler runs
    with pytest.raises(Exception) as info:
        app.handler(load_event("sfn_payment_input.json"), FakeLambdaContext())

    # Then the exception's class name is the state machine's ErrorEquals name
    assert type(info.value).__name__ == error
    # and the order is untouched, the failure logged with the order id and counted
    assert store.order(ORDER_P).status is OrderStatus.RESERVED
    output = read_output(capsys)
    assert_every_log_line_names_its_order(output)
    assert output.messages() == [(ORDER_P, message)]
    assert output.logs[0]["level"] == "WARNING"
    assert output.metric(metric) == 1
    assert output.metric("PaymentsSucceeded") == 0


@pytest.mark.parametrize(("retry_count", "paid"), [(0, False), (1, False), (2, True)])
def test_payment_passes_the_state_machines_retry_count_to_the_gateway(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    retry_count: int,
    paid: bool,
) -> None:
    # Given an order with the flaky token that fails its first two attempts
    app = load_app("payment")
    store = FakeStore([_reserved(ORDER_P, token="tok_flaky_2")], STOCK)
    use_fakes(monkeypatch, app, store=store)
    event = load_event("sfn_payment_input.json")
    event["RetryCount"] = retry_count

    # When the handler runs with $$.State.RetryCount
    try:
        app.handler(event, FakeLambdaContext())
        outcome = "paid"
    except Exception as exc:
        outcome = type(exc).__name__

    # Then the first two attempts are transient failures, the third is paid
    assert outcome == ("paid" if paid else "PaymentGatewayUnavailable")


def test_payment_success_rate_comes_from_the_environment(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given PAYMENT_SUCCESS_RATE=0 (the template parameter) and an order without a test token
    app = load_app("payment")
    monkeypatch.setenv("PAYMENT_SUCCESS_RATE", "0")
    store = FakeStore([_reserved(ORDER_P)], STOCK)
    use_fakes(monkeypatch, app, store=store)

    # When the handler runs
    with pytest.raises(Exception) as info:
        app.handler(load_event("sfn_payment_input.json"), FakeLambdaContext())

    # Then the charge is declined
    assert type(info.value).__name__ == "PaymentDeclined"


# -- Shipping (Step Functions task) -----------------------------------------------------------


def test_shipping_books_a_paid_order(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a paid order worth more than 500
    app = load_app("shipping")
    store = FakeStore([_paid(ORDER_P)], STOCK)
    use_fakes(monkeypatch, app, store=store)

    # When the handler runs
    result = app.handler(load_event("sfn_shipping_input.json"), FakeLambdaContext())

    # Then it ships insured express and returns the shipment
    order = store.order(ORDER_P)
    assert order.status is OrderStatus.SHIPPED
    assert result == {"OrderId": ORDER_P, "Shipment": dict(order.shipment)}
    assert result["Shipment"]["Carrier"] == "FedEx"
    json.dumps(result)
    output = read_output(capsys)
    assert_every_log_line_names_its_order(output)
    assert output.messages() == [(ORDER_P, "shipment recorded")]
    assert output.metric("OrdersShipped") == 1


@pytest.mark.parametrize(
    ("postcode", "error"), [("00000", "AddressRejected"), ("99999", "CarrierUnavailable")]
)
def test_shipping_failures_are_raised_under_their_error_names(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    postcode: str,
    error: str,
) -> None:
    # Given a paid order addressed to a carrier test postcode
    app = load_app("shipping")
    store = FakeStore([_paid(ORDER_P, postcode=postcode)], STOCK)
    use_fakes(monkeypatch, app, store=store)

    # When the handler runs
    with pytest.raises(Exception) as info:
        app.handler(load_event("sfn_shipping_input.json"), FakeLambdaContext())

    # Then the error carries its ErrorEquals name, the order stays PAID, the failure is counted
    assert type(info.value).__name__ == error
    assert store.order(ORDER_P).status is OrderStatus.PAID
    output = read_output(capsys)
    assert_every_log_line_names_its_order(output)
    assert output.messages() == [(ORDER_P, "shipment not booked")]
    assert output.metric("ShipmentFailures") == 1


# -- ReleaseStock (the payment step's Catch) --------------------------------------------------


def test_release_gives_the_stock_back_with_the_catch_reason(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a reserved order whose payment was declined, and the Catch output with a Lambda
    # JSON Cause
    app = load_app("release_stock")
    store = FakeStore(
        [_reserved(ORDER_P)], _inventory({"laptop": (9, "999.99"), "mouse": (48, "25.50")})
    )
    use_fakes(monkeypatch, app, store=store)

    # When the handler runs
    result = app.handler(load_event("sfn_release_stock_input.json"), FakeLambdaContext())

    # Then the order is PAYMENT_FAILED with the error message from the cause, stock is back
    order = store.order(ORDER_P)
    assert result == {"OrderId": ORDER_P, "Status": "PAYMENT_FAILED"}
    assert order.status is OrderStatus.PAYMENT_FAILED
    assert order.status_reason == "Payment failed: PaymentDeclined: card declined by issuer"
    assert (store.inventory["laptop"].stock, store.inventory["mouse"].stock) == (10, 50)
    output = read_output(capsys)
    assert_every_log_line_names_its_order(output)
    assert output.messages() == [(ORDER_P, "payment failure recorded")]
    assert output.metric("StockReleases") == 1


def test_release_run_twice_gives_the_stock_back_once(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a reserved order
    app = load_app("release_stock")
    store = FakeStore(
        [_reserved(ORDER_P)], _inventory({"laptop": (9, "999.99"), "mouse": (48, "25.50")})
    )
    use_fakes(monkeypatch, app, store=store)
    event = load_event("sfn_release_stock_input.json")

    # When the task runs twice (its Retry after a lost response)
    app.handler(event, FakeLambdaContext())
    second = app.handler(event, FakeLambdaContext())

    # Then the second run changes nothing
    assert second == {"OrderId": ORDER_P, "Status": "PAYMENT_FAILED"}
    assert (store.inventory["laptop"].stock, store.inventory["mouse"].stock) == (10, 50)
    assert len(store.order(ORDER_P).history) == 3


def test_release_run_twice_counts_one_release(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a reserved order
    app = load_app("release_stock")
    store = FakeStore(
        [_reserved(ORDER_P)], _inventory({"laptop": (9, "999.99"), "mouse": (48, "25.50")})
    )
    use_fakes(monkeypatch, app, store=store)
    event = load_event("sfn_release_stock_input.json")

    # When the task runs twice (its Retry after a lost response)
    app.handler(event, FakeLambdaContext())
    app.handler(event, FakeLambdaContext())

    # Then one release happened and one is counted
    assert read_output(capsys).metric("StockReleases") == 1


# -- ManualIntervention (the shipping step's Catch) -------------------------------------------


def test_manual_intervention_flags_the_order_with_the_catch_reason(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a paid order whose shipment was rejected, and the Catch output
    app = load_app("manual_intervention")
    store = FakeStore([_paid(ORDER_P, postcode="00000")], STOCK)
    use_fakes(monkeypatch, app, store=store)

    # When the handler runs
    result = app.handler(load_event("sfn_manual_intervention_input.json"), FakeLambdaContext())

    # Then the order waits for staff with the carrier's message as its reason
    order = store.order(ORDER_P)
    assert result == {"OrderId": ORDER_P, "Status": "MANUAL_INTERVENTION"}
    assert order.status_reason == (
        "Shipping failed: AddressRejected: carrier cannot deliver to postal code 00000"
    )
    output = read_output(capsys)
    assert_every_log_line_names_its_order(output)
    assert output.messages() == [(ORDER_P, "order needs manual intervention")]
    assert output.logs[0]["level"] == "WARNING"
    assert output.logs[0]["reason"] == order.status_reason
    assert output.metric("OrdersNeedingIntervention") == 1


def test_manual_intervention_with_a_states_error_and_plain_cause(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a Catch of a task timeout, whose Cause is plain text rather than Lambda's JSON
    app = load_app("manual_intervention")
    store = FakeStore([_paid(ORDER_P)], STOCK)
    use_fakes(monkeypatch, app, store=store)
    event = load_event("sfn_manual_intervention_input.json")
    event.update(Error="States.Timeout", Cause="Task timed out after 15.00 seconds")

    # When the handler runs
    app.handler(event, FakeLambdaContext())

    # Then the reason keeps the error name and the text
    assert store.order(ORDER_P).status_reason == (
        "Shipping failed: States.Timeout: Task timed out after 15.00 seconds"
    )


def test_manual_intervention_run_twice_flags_once(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a paid order
    app = load_app("manual_intervention")
    store = FakeStore([_paid(ORDER_P)], STOCK)
    use_fakes(monkeypatch, app, store=store)
    event = load_event("sfn_manual_intervention_input.json")

    # When the task runs twice
    app.handler(event, FakeLambdaContext())
    second = app.handler(event, FakeLambdaContext())

    # Then it is flagged once
    assert second["Status"] == "MANUAL_INTERVENTION"
    assert [c.status for c in store.order(ORDER_P).history].count("MANUAL_INTERVENTION") == 1


def test_manual_intervention_run_twice_counts_one_order(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a paid order
    app = load_app("manual_intervention")
    store = FakeStore([_paid(ORDER_P)], STOCK)
    use_fakes(monkeypatch, app, store=store)
    event = load_event("sfn_manual_intervention_input.json")

    # When the task runs twice
    app.handler(event, FakeLambdaContext())
    app.handler(event, FakeLambdaContext())

    # Then the order is counted once
    assert read_output(capsys).metric("OrdersNeedingIntervention") == 1


# -- OrderEvents (DynamoDB stream -> webhook deliveries) ----------------------------------------


class _Endpoints:
    """A webhook store with one endpoint per key wanting every status: counts its Queries."""

    def __init__(self) -> None:
        self.queries: list[str] = []
        self.saved: list[tuple[str, str]] = []

    def for_client(self, client_id: str) -> list[Any]:
        from pipeline.webhooks import ALL_EVENTS
        from pipeline.webhooks_store import Subscription

        self.queries.append(client_id)
        sub = Subscription(client_id, f"sub-{client_id}", "https://example.test/hook",
                           tuple(ALL_EVENTS), b"x", T0, "test")  # fmt: skip
        return [sub]

    def save_event(self, subscription_id: str, event: Mapping[str, Any]) -> None:
        self.saved.append((subscription_id, event["Type"]))


class _Deliveries:
    def __init__(self, url: str) -> None:
        self.sent: list[Mapping[str, Any]] = []

    def send(self, body: Mapping[str, Any], delay_s: float = 0) -> str:
        self.sent.append(body)
        return f"m{len(self.sent)}"


def test_a_stream_batch_reads_each_keys_endpoints_once(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a batch of six status changes: four of orders of key "acme", two of key "zeta"
    app = load_app("order_events")
    change = load_event("dynamodb_stream_transitions.json")["modify_pending_to_reserved"]
    records = []
    for index, client in enumerate(["acme", "zeta", "acme", "acme", "zeta", "acme"]):
        record = copy.deepcopy(change)
        record["dynamodb"]["SequenceNumber"] = f"{index + 1:021d}"
        for image in ("NewImage", "OldImage"):
            record["dynamodb"][image]["ClientId"] = {"S": client}
            record["dynamodb"][image]["OrderId"] = {"S": f"order-{index}"}
        records.append(record)
    endpoints = _Endpoints()
    deliveries: list[_Deliveries] = []
    monkeypatch.setenv("WEBHOOK_DELIVERIES_QUEUE_URL", "http://127.0.0.1/q")
    monkeypatch.setattr(app.WebhookStore, "from_env", classmethod(lambda cls: endpoints))
    monkeypatch.setattr(app, "DeliveryQueue", lambda url: deliveries.append(_Deliveries(url))
                        or deliveries[-1])  # fmt: skip

    # When the handler processes it, then the next batch
    assert app.handler({"Records": records}, FakeLambdaContext()) == {"batchItemFailures": []}
    app.handler({"Records": records[:1]}, FakeLambdaContext())

    # Then each key's endpoints were read once per batch, and every change was queued
    assert endpoints.queries == ["acme", "zeta", "acme"]
    assert len(endpoints.saved) == 7
    assert [len(d.sent) for d in deliveries] == [6, 1]


def test_changes_of_a_key_without_endpoints_are_not_even_parsed(
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given three status changes of orders of a key that has no webhook endpoint
    app = load_app("order_events")
    change = load_event("dynamodb_stream_transitions.json")["modify_pending_to_reserved"]
    records = []
    for index in range(3):
        record = copy.deepcopy(change)
        record["dynamodb"]["SequenceNumber"] = f"{index + 1:021d}"
        for image in ("NewImage", "OldImage"):
            record["dynamodb"][image]["ClientId"] = {"S": "quiet"}
        records.append(record)
    endpoints = _Endpoints()
    monkeypatch.setattr(endpoints, "for_client", lambda client_id: endpoints.queries.append(
        client_id) or [])  # fmt: skip
    monkeypatch.setenv("WEBHOOK_DELIVERIES_QUEUE_URL", "http://127.0.0.1/q")
    monkeypatch.setattr(app.WebhookStore, "from_env", classmethod(lambda cls: endpoints))
    deliveries = _Deliveries("http://127.0.0.1/q")
    monkeypatch.setattr(app, "DeliveryQueue", lambda url: deliveries)

    def no_parsing(item: Any) -> Order:
        raise AssertionError("an order of a key without endpoints was parsed")

    monkeypatch.setattr(app.Order, "from_item", staticmethod(no_parsing))

    # When the handler processes them
    result = app.handler({"Records": records}, FakeLambdaContext())

    # Then the key's endpoints were asked for once, and nothing was parsed, saved or queued
    assert result == {"batchItemFailures": []}
    assert endpoints.queries == ["quiet"]
    assert endpoints.saved == [] and deliveries.sent == []
