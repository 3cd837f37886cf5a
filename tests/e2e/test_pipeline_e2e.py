"""The whole backbone, end to end, through `python -m pipeline.local` over HTTP."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

from pipeline import aws, wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem, Order, execution_name
from pipeline.orders import order_submit
from pipeline.statuses import FINAL_STATUSES, OrderStatus

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TERMINAL_TIMEOUT_S = 90


@pytest.fixture
def store(runtime_env: dict[str, str]) -> DynamoStore:
    """The running runtime's tables."""
    return wiring.dynamo_store()


def _item(store: DynamoStore, stock: int, price: str = "25.00") -> str:
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    store.inventory_put(InventoryItem(name, stock, Decimal(price), "e2e item"))
    return name


def _stock(store: DynamoStore, name: str) -> int:
    row = store.inventory_get(name)
    assert row is not None
    return row.stock


def _wait_for(
    store: DynamoStore,
    order_id: str,
    done: Callable[[Order], bool] = lambda o: o.status in FINAL_STATUSES,
    timeout: float = TERMINAL_TIMEOUT_S,
) -> Order:
    deadline = time.monotonic() + timeout
    while True:
        order = store.order_get(order_id)
        if done(order):
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} stuck in {order.status}: {order.status_reason}")
        time.sleep(0.2)


def _executions(order_id: str) -> list[dict[str, Any]]:
    workflow = wiring.fulfilment_workflow()
    found = []
    paginator = aws.client("stepfunctions").get_paginator("list_executions")
    for page in paginator.paginate(stateMachineArn=workflow.state_machine_arn):
        found += [e for e in page["executions"] if e["name"].startswith(order_id)]
    return found


def _history(order_id: str) -> list[dict[str, Any]]:
    workflow = wiring.fulfilment_workflow()
    client = aws.client("stepfunctions")
    arn = workflow.execution_arn(execution_name(order_id, 1))
    deadline = time.monotonic() + TERMINAL_TIMEOUT_S
    while client.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution still running"
        time.sleep(0.2)
    events: list[dict[str, Any]] = []
    for page in client.get_paginator("get_execution_history").paginate(executionArn=arn):
        events += page["events"]
    return events


def _scheduled(events: list[dict[str, Any]], state: str) -> int:
    """How many times the workflow scheduled the task of `state`."""
    entered_state = None
    count = 0
    for event in events:
        if event["type"].endswith("StateEntered"):
            entered_state = event["stateEnteredEventDetails"]["name"]
        if event["type"] == "TaskScheduled" and entered_state == state:
            count += 1
    return count


def test_an_order_in_stock_ships_with_payment_and_tracking(store: DynamoStore) -> None:
    # Given stock for two items
    laptop, mouse = _item(store, 5, "999.00"), _item(store, 50, "20.00")
    # When an order for 2 laptops and 3 mice is written to the Orders table
    order = order_submit(
        store=store,
        customer_name="Ada Lovelace",
        items=[{"ItemName": laptop, "Quantity": 2}, {"ItemName": mouse, "Quantity": 3}],
    )
    final = _wait_for(store, order.order_id)
    # Then it is SHIPPED with a transaction id, carrier, tracking number and delivery estimate
    assert final.status == OrderStatus.SHIPPED, final.status_reason
    assert final.payment and final.payment["TransactionId"].startswith("txn_")
    assert Decimal(str(final.payment["Amount"])) == Decimal("2058.00")
    assert final.shipment and final.shipment["Carrier"] == "FedEx"  # high value: insured express
    assert len(final.shipment["TrackingNumber"]) == 12
    assert final.shipment["EstimatedDelivery"] >= final.order_date[:10]
    assert [h.status for h in final.history] == ["PENDING", "RESERVED", "PAID", "SHIPPED"]
    # And stock went down by exactly the quantities
    assert (_stock(store, laptop), _stock(store, mouse)) == (3, 47)


def test_short_and_unknown_items_are_rejected_naming_the_lines(store: DynamoStore) -> None:
    # Given one item with stock 1
    short = _item(store, 1)
    # When an order wants 2 of it and an unknown item
    order = order_submit(
        store=store,
        customer_name="Bob",
        items=[{"ItemName": short, "Quantity": 2}, "no-such-item"],
    )
    final = _wait_for(store, order.order_id)
    # Then it is REJECTED naming both lines, stock unchanged, and no workflow ran
    assert final.status == OrderStatus.REJECTED
    assert short in final.status_reason and "no-such-item" in final.status_reason
    assert _stock(store, short) == 1
    assert _executions(order.order_id) == []


def test_a_declined_payment_ends_payment_failed_with_stock_restored(store: DynamoStore) -> None:
    # Given stock 10 and an order paid with a card the gateway declines
    name = _item(store, 10)
    order = order_submit(
        store=store,
        customer_name="Carol",
        items=[{"ItemName": name, "Quantity": 4}],
        payment_token="tok_decline",
    )
    final = _wait_for(store, order.order_id)
    # Then it is PAYMENT_FAILED, the reason says declined, and the stock is exactly 10 again
    assert final.status == OrderStatus.PAYMENT_FAILED
    assert "PaymentDeclined" in final.status_reason
    assert _stock(store, name) == 10
    assert [h.status for h in final.history] == ["PENDING", "RESERVED", "PAYMENT_FAILED"]
    # And the decline was not retried
    assert _scheduled(_history(order.order_id), "ProcessPayment") == 1


def test_a_transient_payment_error_is_retried_as_the_definition_says(
    store: DynamoStore,
) -> None:
    # Given a gateway that times out twice for this order, then approves
    name = _item(store, 10)
    order = order_submit(
        store=store, customer_name="Dan", items=[name], payment_token="tok_flaky_2"
    )
    final = _wait_for(store, order.order_id)
    # Then the order ships after three payment attempts
    assert final.status == OrderStatus.SHIPPED
    assert _scheduled(_history(order.order_id), "ProcessPayment") == 3


def test_a_gateway_that_stays_down_fails_the_payment_after_three_retries(
    store: DynamoStore,
) -> None:
    # Given a gateway that never answers for this order
    name = _item(store, 3)
    order = order_submit(
        store=store, customer_name="Eve", items=[name], payment_token="tok_unavailable"
    )
    final = _wait_for(store, order.order_id)
    # Then 1 + 3 attempts were made, the order is PAYMENT_FAILED and the stock is back
    assert final.status == OrderStatus.PAYMENT_FAILED
    assert "PaymentGatewayUnavailable" in final.status_reason
    assert _scheduled(_history(order.order_id), "ProcessPayment") == 4
    assert _stock(store, name) == 3


@pytest.mark.parametrize(
    ("postcode", "error", "attempts"),
    [("99999", "CarrierUnavailable", 3), ("00000", "AddressRejected", 1)],
)
def test_a_shipping_failure_ends_in_manual_intervention(
    store: DynamoStore, postcode: str, error: str, attempts: int
) -> None:
    # Given an order to an address the carrier cannot serve (down, or undeliverable)
    name = _item(store, 5)
    order = order_submit(
        store=store,
        customer_name="Fred",
        items=[name],
        shipping_address={"Name": "Fred", "Line1": "1 Road", "City": "X", "PostalCode": postcode,
                          "Country": "US"},
    )  # fmt: skip
    final = _wait_for(store, order.order_id)
    # Then the paid order waits for staff, saying why, after the retries the definition allows
    assert final.status == OrderStatus.MANUAL_INTERVENTION
    assert error in final.status_reason
    assert final.payment is not None
    assert _scheduled(_history(order.order_id), "ShipOrder") == attempts
    # And the stock stays reserved for the order staff will ship
    assert _stock(store, name) == 4


def test_a_stream_record_delivered_twice_reserves_once(store: DynamoStore) -> None:
    # Given an order that went through the pipeline
    name = _item(store, 10)
    order = order_submit(
        store=store, customer_name="Gil", items=[{"ItemName": name, "Quantity": 2}]
    )
    assert _wait_for(store, order.order_id).status == OrderStatus.SHIPPED
    # When its stream record is delivered to OrderProcessing again, twice in one batch
    record = _insert_record(order.order_id)
    response = aws.client("lambda").invoke(
        FunctionName="orders-local-OrderProcessingFunction",
        Payload=json.dumps({"Records": [record, record]}),
    )
    assert "FunctionError" not in response
    assert json.loads(response["Payload"].read()) == {"batchItemFailures": []}
    # Then nothing was reserved again and no second workflow exists
    assert _stock(store, name) == 8
    assert store.order_get(order.order_id).status == OrderStatus.SHIPPED
    assert len(_executions(order.order_id)) == 1


def _insert_record(order_id: str) -> dict[str, Any]:
    """The stream's INSERT record of an order, in the shape Lambda delivers."""
    streams = aws.client("dynamodbstreams")
    arn = aws.client("dynamodb").describe_table(TableName=wiring.dynamo_store().orders_table)[
        "Table"
    ]["LatestStreamArn"]
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                keys = record["dynamodb"]["Keys"]
                if record["eventName"] == "INSERT" and keys["OrderId"]["S"] == order_id:
                    record["dynamodb"]["ApproximateCreationDateTime"] = int(
                        record["dynamodb"]["ApproximateCreationDateTime"].timestamp()
                    )
                    record["eventSourceARN"] = arn
                    return record
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    raise AssertionError(f"no INSERT record for {order_id}")


def test_a_queue_message_delivered_twice_starts_one_workflow(store: DynamoStore) -> None:
    # Given a shipped order
    name = _item(store, 10)
    order = order_submit(store=store, customer_name="Hana", items=[name])
    assert _wait_for(store, order.order_id).status == OrderStatus.SHIPPED
    # When its fulfilment message is delivered twice more
    queue = wiring.orders_queue()
    body = {"OrderId": order.order_id, "Attempt": 1}
    queue.send_json(body)
    queue.send_json(body)
    # Then the messages are consumed and there is still exactly one workflow for the order
    deadline = time.monotonic() + 30
    while sum(queue.depth().values()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sum(queue.depth().values()) == 0
    assert len(_executions(order.order_id)) == 1
    assert _stock(store, name) == 9


def test_a_poison_message_lands_in_the_dlq_after_three_receives_and_nothing_is_lost(
    store: DynamoStore,
) -> None:
    # Given a message SQSProcessor can never handle, sent among real orders
    marker = f"poison-{uuid.uuid4().hex}"
    queue, dlq = wiring.orders_queue(), wiring.dead_letter_queue()
    queue.send_json({"NotAnOrder": marker})
    name = _item(store, 5)
    orders = [order_submit(store=store, customer_name=f"p{i}", items=[name]) for i in range(3)]
    # When the pipeline runs
    finals = [_wait_for(store, o.order_id) for o in orders]
    deadline = time.monotonic() + 60
    found = None
    while found is None and time.monotonic() < deadline:
        for message in dlq.receive(max_messages=10, visibility=1):
            if marker in message.body:
                found = message
        time.sleep(0.3)
    # Then the poison message is in the DLQ, received 3 times, and every order still shipped
    assert found is not None, "poison message never reached the DLQ"
    assert found.receive_count >= 3
    dlq.delete(found)
    assert [f.status for f in finals] == [OrderStatus.SHIPPED] * 3


def test_one_hundred_concurrent_orders_for_stock_ten_reserve_exactly_ten(
    store: DynamoStore,
) -> None:
    # Given an item with stock 10
    name = _item(store, 10)
    observed: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            observed.append(_stock(store, name))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    # When 100 clients each order one unit at the same time
    try:
        with ThreadPoolExecutor(20) as pool:
            orders = list(
                pool.map(
                    lambda i: order_submit(store=store, customer_name=f"rush{i}", items=[name]),
                    range(100),
                )
            )
        finals = [_wait_for(store, o.order_id) for o in orders]
    finally:
        stop.set()
        watcher.join()
    # Then exactly 10 shipped, 90 were rejected, and stock ended at 0, never below
    statuses = [f.status for f in finals]
    assert statuses.count(OrderStatus.SHIPPED) == 10
    assert statuses.count(OrderStatus.REJECTED) == 90
    assert _stock(store, name) == 0
    assert min(observed) >= 0
