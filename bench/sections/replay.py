"""DLQ replay: 10,000 dead letters replayed by the project's use case beside raw SQS batches.

Both run against the same moto SQS in the same run: the replay (each order looked up, the
still-RESERVED ones sent back, each message deleted; at the use case's highest rate, no limit
set) and the floor, a plain loop receiving 10, sending 10 to the target and deleting 10.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from bench.context import Context
from bench.sections.portal import _batch_write, seeding_client
from pipeline import aws, wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.dlq import MAX_RATE, dlq_replay
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus


def _fill(queue: SqsQueue, bodies: list[str]) -> None:
    for start in range(0, len(bodies), 10):
        queue.send_raw_batch(bodies[start : start + 10])


def _raw(sqs: Any, source: str, target: str, expected: int) -> int:
    moved = 0
    empty = 0
    while moved < expected and empty < 3:
        got = sqs.receive_message(QueueUrl=source, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        messages = got.get("Messages", [])
        if not messages:
            empty += 1
            continue
        empty = 0
        sqs.send_message_batch(
            QueueUrl=target,
            Entries=[{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(messages)],
        )
        sqs.delete_message_batch(
            QueueUrl=source,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
        moved += len(messages)
    return moved


def run(context: Context) -> dict[str, Any]:
    """Replay and raw rates in messages/s, and their ratio."""
    count = 1_000 if context.quick else 10_000
    env = {**context.tables(), "AWS_ENDPOINT_URL": context.moto()}
    context.use(env)
    sqs = aws.client("sqs")
    run_id = uuid.uuid4().hex[:6]
    urls = {
        name: sqs.create_queue(QueueName=f"replay-{run_id}-{name}")["QueueUrl"]
        for name in ("dlq", "target", "raw", "raw-target")
    }
    store = wiring.dynamo_store()
    orders = []
    for i in range(count):
        order = Order.new(customer_name=f"replay {i}", lines=[OrderLine("item-1", 1)])
        reserved = order.with_status(OrderStatus.RESERVED, "seeded", order.last_updated)
        orders.append(dataclasses.replace(reserved, attempt=1))  # reservation's first attempt
    _batch_write(seeding_client(env), store.orders_table, [o.as_item() for o in orders])
    bodies = [json.dumps({"OrderId": o.order_id, "Attempt": o.attempt}) for o in orders]

    _fill(SqsQueue(urls["raw"]), bodies)
    started = time.monotonic()
    moved = _raw(sqs, urls["raw"], urls["raw-target"], count)
    raw_s = time.monotonic() - started

    _fill(SqsQueue(urls["dlq"]), bodies)
    started = time.monotonic()
    result = dlq_replay(
        dlq=SqsQueue(urls["dlq"]),
        target=SqsQueue(urls["target"]),
        store=store,
        rate=MAX_RATE,
        wait_seconds=1,
    )
    replay_s = time.monotonic() - started
    replay_rate, raw_rate = result.sent / replay_s, moved / raw_s
    return {
        "messages": count,
        "replayed": result.sent,
        "outcome": {k: v for k, v in vars(result).items() if v},
        "replay_per_s": replay_rate,
        "raw_per_s": raw_rate,
        "ratio_to_raw": replay_rate / raw_rate,
        "rate_cap_per_s": MAX_RATE,
    }
