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
from pipeline.fulfilment import fulfilment_requests
from pipeline.reservation import StockSnapshot, inventory_reserve, stock_snapshot

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
# The batch's reserved orders, sent to the Orders queue together once every record is handled:
# one SendMessageBatch per ten orders instead of a SendMessage each.
_outbox: list[tuple[DynamoDBRecord, Order]] = []
# The batch's orders as their records carry them (by sequence number), and one read of every
# inventory row they need: a stream batch costs one BatchGetItem, not one per order.
_images: dict[str, Order] = {}
_stock: list[StockSnapshot] = []


@tracer.capture_method
def handle_record(record: DynamoDBRecord) -> None:
    """Reserve or reject one order; a reserved order waits in the outbox for the queue."""
    image = record.dynamodb.new_image if record.dynamodb else {}
    order_id = image.get("OrderId")
    if not order_id:
        raise ValueError(f"stream record {record.event_id} has no OrderId in its new image")
    logger.append_keys(order_id=order_id)
    sequence = record.dynamodb.sequence_number if record.dynamodb else None
    try:
        # The record's image is the order as written: it saves a read (a stale image is
        # caught by the reservation's condition and read again).
        outcome = inventory_reserve(
            store=wiring.dynamo_store(),
            order_id=order_id,
            order=_images.get(sequence or "") or Order.from_item(image),
            stock=_stock[0] if _stock else None,
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
            _outbox.append((record, order))  # counted as processed once it is sent
        else:
            metrics.add_metric(metric_names.ORDERS_PROCESSED, MetricUnit.Count, 1)
    finally:
        logger.remove_keys(["order_id"])


def _read_batch(records: list[dict[str, Any]]) -> None:
    """Parse the batch's order images once and read the inventory rows they need in one call.
    A batch whose images or read fail leaves the records to be handled (and fail) one by one."""
    try:
        for raw in records:
            record = DynamoDBRecord(raw)
            image = record.dynamodb.new_image if record.dynamodb else {}
            if image.get("OrderId") and record.dynamodb and record.dynamodb.sequence_number:
                _images[record.dynamodb.sequence_number] = Order.from_item(image)
        _stock.append(stock_snapshot(wiring.dynamo_store(), _images.values()))
    except Exception as exc:  # each record then reads for itself, and reports its own failure
        logger.warning("could not read the batch's stock", extra={"error": f"{exc!r}"})


def _send_outbox() -> list[DynamoDBRecord]:
    """Send the outbox's orders to the Orders queue; the records whose message did not go.

    A record whose message did not go is reported as failed, so the stream delivers it again:
    its order is found already reserved and is sent then (a duplicate message is harmless,
    the workflow's execution name is the order's attempt and run)."""
    if not _outbox:
        return []
    try:
        ids = fulfilment_requests(queue=wiring.orders_queue(), orders=[o for _, o in _outbox])
    except Exception as exc:  # the whole call failed: every record of the outbox is retried
        for _, order in _outbox:
            logger.error(
                "could not send to the Orders queue",
                extra={"order_id": order.order_id, "error": f"{type(exc).__name__}: {exc}"},
            )
        return [record for record, _ in _outbox]
    unsent = []
    for (record, order), message_id in zip(_outbox, ids, strict=True):
        if message_id is None:
            logger.error("the Orders queue refused the message", extra={"order_id": order.order_id})
            unsent.append(record)
            continue
        logger.info(
            "sent to the Orders queue", extra={"order_id": order.order_id, "message_id": message_id}
        )
        metrics.add_metric(metric_names.ORDERS_PROCESSED, MetricUnit.Count, 1)
    return unsent


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Stream batch entry point; reports the failed records (Lambda retries from the first)."""
    _outbox.clear()
    try:
        _read_batch(event.get("Records") or [])
        response = process_partial_response(
            event=event, record_handler=handle_record, processor=processor, context=context
        )
        unsent = _send_outbox()
    finally:
        _outbox.clear()
        _images.clear()
        _stock.clear()
    if unsent:
        failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
        failed |= {r.dynamodb.sequence_number for r in unsent if r.dynamodb}
        # In stream order, as the processor reports them.
        ordered = [(r.get("dynamodb") or {}).get("SequenceNumber") for r in event["Records"]]
        response["batchItemFailures"] = [{"itemIdentifier": s} for s in ordered if s in failed]
    return response
