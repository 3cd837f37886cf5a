"""SQSProcessor: start one fulfilment workflow per reserved order from the Orders queue."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import metric_names, wiring
from pipeline.fulfilment import fulfilment_start, read_fulfilment_message

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    """Start (or find) the workflow of one message; a failure leaves it for redelivery."""
    message = read_fulfilment_message(record.body)
    logger.append_keys(order_id=message.order_id)
    try:
        result = fulfilment_start(workflow=wiring.fulfilment_workflow(), body=record.body)
        # Run 2 and later were asked for by a sweeper after an earlier run died.
        extra = {"execution_arn": result.execution_arn, "run": message.run}
        if result.started:
            metrics.add_metric(metric_names.WORKFLOWS_STARTED, MetricUnit.Count, 1)
            logger.info("workflow started", extra=extra)
        else:
            metrics.add_metric(metric_names.DUPLICATE_DELIVERIES, MetricUnit.Count, 1)
            logger.info("workflow already exists", extra=extra)
    finally:
        logger.remove_keys(["order_id"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Queue batch entry point; failed messages are reported, the rest deleted by Lambda."""
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
