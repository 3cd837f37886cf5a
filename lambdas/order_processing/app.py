"""OrderProcessing: on new PENDING orders from the Orders stream, reserve stock or reject."""

from __future__ import annotations

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

from pipeline import metric_names, wiring
from pipeline.domain import Order
from pipeline.fulfilment import fulfilment_request
from pipeline.reservation import inventory_reserve

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@tracer.capture_method
def handle_record(record: DynamoDBRecord) -> None:
    """Reserve or reject one order; a reserved order goes to the Orders queue."""
    image = record.dynamodb.new_image if record.dynamodb else {}
    order_id = image.get("OrderId")
    if not order_id:
        raise ValueError(f"stream record {record.event_id} has no OrderId in its new image")
    logger.append_keys(order_id=order_id)
    try:
        # The record's image is the order as written: it saves a read (a stale image is
        # caught by the reservation's condition and read again).
        outcome = inventory_reserve(
            store=wiring.dynamo_store(), order_id=order_id, order=Order.from_item(image)
        )
        order = outcome.order
        if outcome.reserved_now:
            metrics.add_metric(metric_names.RESERVATIONS_SUCCEEDED, MetricUnit.Count, 1)
            logger.info("stock reserved", extra={"total": str(order.total)})
        elif outcome.rejected_now:
            metrics.add_metric(metric_names.RESERVATIONS_REJECTED, MetricUnit.Count, 1)
            logger.info("order rejected", extra={"reason": order.status_reason})
        else:
            logger.info("order already handled", extra={"status": str(order.status)})
        if outcome.needs_fulfilment:
            message_id = fulfilment_request(queue=wiring.orders_queue(), order=order)
            logger.info("sent to the Orders queue", extra={"message_id": message_id})
        metrics.add_metric(metric_names.ORDERS_PROCESSED, MetricUnit.Count, 1)
    finally:
        logger.remove_keys(["order_id"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Stream batch entry point; reports the first failed record so the rest are retried."""
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
