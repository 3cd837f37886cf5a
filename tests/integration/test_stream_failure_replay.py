"""Stream-failure replay on real endpoints: failed batches read back from DynamoDB Local's
stream (StreamRecords), their PENDING orders re-driven, the records on a moto SQS queue."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.sqs import SqsQueue
from pipeline.adapters.streams import StreamRangeGone, StreamRecords
from pipeline.dlq import SWEEP_FALLBACK, MemoryLedger, stream_failures_replay
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.local.emulators import LOCAL_CREDENTIALS, LOCAL_REGION, free_port, moto_server
from pipeline.statuses import OrderStatus

pytestmark = pytest.mark.integration


def _client(service: str, endpoint_url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def sqs() -> Iterator[Any]:
    """An SQS client of a moto server of this module's own, on 127.0.0.1."""
    emulator = moto_server(free_port())
    emulator.start()
    try:
        yield _client("sqs", emulator.url)
    finally:
        emulator.stop()


def new_queue(sqs: Any) -> SqsQueue:
    return SqsQueue(sqs.create_queue(QueueName=f"q-{uuid.uuid4().hex[:10]}")["QueueUrl"], sqs)


@pytest.fixture
def streams(dynamodb_endpoint: dict[str, str]) -> StreamRecords:
    """StreamRecords on DynamoDB Local's streams."""
    return StreamRecords(_client("dynamodbstreams", dynamodb_endpoint["AWS_ENDPOINT_URL_DYNAMODB"]))


def stream_arn(store: DynamoStore) -> str:
    return store.client.describe_table(TableName=store.orders_table)["Table"]["LatestStreamArn"]


def records_of(
    streams: StreamRecords, arn: str, order_ids: set[str]
) -> tuple[str, list[dict[str, Any]]]:
    """The shard and the stream records of these orders' writes, in stream order."""
    client = streams.client
    for shard in client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = client.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        found: list[dict[str, Any]] = []
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            found += [
                r for r in page["Records"] if r["dynamodb"]["Keys"]["OrderId"]["S"] in order_ids
            ]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        if found:
            return shard["ShardId"], found
    raise AssertionError(f"no stream records for {order_ids}")


def failure_record(arn: str, shard: str, start: str, end: str, size: int) -> str:
    """The on-failure record Lambda (and the local runtime) writes for a stream batch."""
    return json.dumps(
        {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:OrderProcessing",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 6,
            },
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": "2026-01-01T00:00:00.000Z",
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": start,
                "endSequenceNumber": end,
                "approximateArrivalOfFirstRecord": "2026-01-01T00:00:00.000Z",
                "approximateArrivalOfLastRecord": "2026-01-01T00:00:00.000Z",
                "batchSize": size,
                "streamArn": arn,
            },
        }
    )


def replay(queue: SqsQueue, streams: StreamRecords, store: DynamoStore, orders: SqsQueue, **kw):
    return stream_failures_replay(
        queue=queue, streams=streams, store=store, orders_queue=orders, wait_seconds=1, **kw
    )


def test_a_failed_batch_is_read_back_and_its_pending_orders_reserved(
    store: DynamoStore, streams: StreamRecords, sqs: Any
):
    # Given a failed batch of four new orders: two PENDING with stock, one PENDING for an item
    # that does not exist, and one that was cancelled since
    item = f"lamp-{uuid.uuid4().hex[:8]}"
    store.inventory_put(InventoryItem(item, 5, Decimal("4.00")))
    orders = [
        Order.new(customer_name="Ada", lines=[OrderLine(item, 1)]),
        Order.new(customer_name="Bo", lines=[OrderLine(item, 2)]),
        Order.new(customer_name="Cy", lines=[OrderLine(f"ghost-{uuid.uuid4().hex}", 1)]),
        Order.new(customer_name="Di", lines=[OrderLine(item, 1)]),
    ]
    for order in orders:
        store.order_put_new(order)
    store.order_transition(
        orders[3].order_id, OrderStatus.CANCELLED, "changed their mind", "2026-01-01T00:00:00Z"
    )
    arn = stream_arn(store)
    shard, records = records_of(streams, arn, {o.order_id for o in orders})
    inserts = [r for r in records if r["eventName"] == "INSERT"]
    start, end = inserts[0]["dynamodb"]["SequenceNumber"], inserts[-1]["dynamodb"]["SequenceNumber"]
    queue, target, ledger = new_queue(sqs), new_queue(sqs), MemoryLedger()
    queue.send_raw(failure_record(arn, shard, start, end, 4))

    # When the stream-failure queue is replayed
    result = replay(queue, streams, store, target, ledger=ledger)

    # Then the batch was re-driven: the two in stock reserved and sent to the Orders queue, the
    # unknown item's order rejected, the cancelled one left as it is
    assert (result.sent, result.skipped, result.left, result.failed) == (1, 0, 0, 0)
    assert store.order_get(orders[0].order_id).status == OrderStatus.RESERVED
    assert store.order_get(orders[1].order_id).status == OrderStatus.RESERVED
    assert store.order_get(orders[2].order_id).status == OrderStatus.REJECTED
    assert store.order_get(orders[3].order_id).status == OrderStatus.CANCELLED
    assert store.inventory_get(item).stock == 2
    sent = sorted(json.loads(m.body)["OrderId"] for m in target.drain())
    assert sent == sorted([orders[0].order_id, orders[1].order_id])
    (entry,) = ledger.entries.values()
    assert entry.detail["source"] == "stream"
    assert entry.detail["orders"][orders[3].order_id] == "moved on: CANCELLED"
    # And the failure record is gone from its queue
    assert queue.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_a_second_replay_of_the_same_batch_reserves_nothing_twice(
    store: DynamoStore, streams: StreamRecords, sqs: Any
):
    # Given a failed batch of one PENDING order, re-driven once
    item = f"pen-{uuid.uuid4().hex[:8]}"
    store.inventory_put(InventoryItem(item, 3, Decimal("1.00")))
    order = Order.new(customer_name="Ed", lines=[OrderLine(item, 1)])
    store.order_put_new(order)
    arn = stream_arn(store)
    shard, (insert, *_) = records_of(streams, arn, {order.order_id})
    seq = insert["dynamodb"]["SequenceNumber"]
    queue, target = new_queue(sqs), new_queue(sqs)
    queue.send_raw(failure_record(arn, shard, seq, seq, 1))
    first = replay(queue, streams, store, target)

    # When the same record arrives again (a second failure record for the range) and is replayed
    queue.send_raw(failure_record(arn, shard, seq, seq, 1))
    second = replay(queue, streams, store, target)

    # Then the order was reserved once: the second replay finds it moved on and skips the batch
    assert (first.sent, second.sent, second.skipped) == (1, 0, 1)
    assert store.inventory_get(item).stock == 2


def test_a_range_the_stream_no_longer_holds_is_left_for_the_pending_sweep(
    store: DynamoStore, streams: StreamRecords, sqs: Any
):
    # Given two records: one for a shard the stream does not have (deleted a day after it
    # closed), one for a sequence number the shard does not hold
    arn = stream_arn(store)
    shard = streams.client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]
    queue, ledger = new_queue(sqs), MemoryLedger()
    queue.send_raw(
        failure_record(arn, "shardId-00000001700000000000-deadbeef", "1" * 21, "1" * 21, 1)
    )
    queue.send_raw(failure_record(arn, shard["ShardId"], "0" * 21, "0" * 21, 1))

    # When the queue is replayed
    result = replay(queue, streams, store, new_queue(sqs), ledger=ledger)

    # Then both are left in the queue, each saying the PENDING sweep will take its orders
    assert (result.sent, result.left) == (0, 2)
    assert {e.reason for e in ledger.entries.values()} == {SWEEP_FALLBACK}
    whys = sorted(e.detail["why"] for e in ledger.entries.values())
    assert whys[0].startswith("ResourceNotFoundException") and whys[1].startswith("Validation")
    assert queue.depth()["visible"] == 2


def test_reading_a_range_stops_at_its_end(store: DynamoStore, streams: StreamRecords):
    # Given three orders written one after the other
    orders = [Order.new(customer_name=f"F{n}", lines=[OrderLine("x", 1)]) for n in range(3)]
    for order in orders:
        store.order_put_new(order)
    arn = stream_arn(store)
    shard, records = records_of(streams, arn, {o.order_id for o in orders})

    # When the range of the first two is read, and a shard that is not there
    got = streams.read_range(
        stream_arn=arn,
        shard_id=shard,
        start=records[0]["dynamodb"]["SequenceNumber"],
        end=records[1]["dynamodb"]["SequenceNumber"],
    )

    # Then exactly those two come back; the missing shard is "gone"
    assert [r["dynamodb"]["Keys"]["OrderId"]["S"] for r in got] == [
        orders[0].order_id,
        orders[1].order_id,
    ]
    with pytest.raises(StreamRangeGone):
        streams.read_range(
            stream_arn=arn,
            shard_id="shardId-00000001700000000000-deadbeef",
            start="1" * 21,
            end="1" * 21,
        )
