"""OrderEvents: for each status change on the Orders stream, queue one webhook delivery per
endpoint of the order's API key that wants it."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import metric_names
from pipeline.domain import Order
from pipeline.webhooks_flow import DeliveryQueue, SubscriptionsByClient, events_queue
from pipeline.webhooks_store import ENV_DELIVERIES_QUEUE_URL, WebhookStore

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
# The batch being handled: its store, queue and each key's endpoints, read once per batch.
_batch: dict[str, Any] = {}


@tracer.capture_method
def handle_record(record: DynamoDBRecord) -> None:
    """Queue the deliveries of one order write (none if its status did not change)."""
    # Most keys have no endpoint: ask first, from the raw image, before parsing two orders.
    raw_new = (record.raw_event.get("dynamodb") or {}).get("NewImage") or {}
    client_id = (raw_new.get("ClientId") or {}).get("S")
    if client_id and not _batch["subscriptions"](client_id):
        return
    new_image = record.dynamodb.new_image if record.dynamodb else {}
    old_image = record.dynamodb.old_image if record.dynamodb else None
    if not new_image or not new_image.get("OrderId"):
        return  # a removed order: no status to tell anyone about
    new = Order.from_item(new_image)
    old = Order.from_item(old_image) if old_image else None
    logger.append_keys(order_id=new.order_id)
    try:
        queued = events_queue(
            old=old,
            new=new,
            store=_batch["store"],
            queue=_batch["queue"],
            subscriptions=_batch["subscriptions"],
        )
        if queued:
            metrics.add_metric(metric_names.WEBHOOK_EVENTS_QUEUED, MetricUnit.Count, queued)
            logger.info("webhook deliveries queued", extra={"deliveries": queued})
    finally:
        logger.remove_keys(["order_id"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Stream batch entry point; reports the first failed record so the rest are retried."""
    store = WebhookStore.from_env()
    _batch.update(
        store=store,
        queue=DeliveryQueue(os.environ[ENV_DELIVERIES_QUEUE_URL]),
        subscriptions=SubscriptionsByClient(store),
    )
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
