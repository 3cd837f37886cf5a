"""WebhookDelivery: one signed POST per message of the WebhookDeliveries queue, each attempt
recorded; failures come back later through the queue, then go to its dead-letter queue."""

from __future__ import annotations

import json
import os
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

from pipeline import metric_names
from pipeline.webhooks import RetryPolicy
from pipeline.webhooks_flow import DeliveryQueue, deliver
from pipeline.webhooks_store import (
    ENV_ALLOW_LOCAL,
    ENV_DELIVERIES_DLQ_URL,
    ENV_DELIVERIES_QUEUE_URL,
    WebhookStore,
)

logger = Logger()
tracer = Tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


@tracer.capture_method
def handle_record(record: SQSRecord) -> None:
    """Deliver one event to one endpoint; an exception leaves the message for redelivery."""
    message = json.loads(record.body)
    logger.append_keys(event_id=message.get("EventId"))
    try:
        outcome = deliver(
            message,
            store=WebhookStore.from_env(),
            queue=DeliveryQueue(os.environ[ENV_DELIVERIES_QUEUE_URL]),
            dead_letters=DeliveryQueue(os.environ[ENV_DELIVERIES_DLQ_URL]),
            policy=RetryPolicy.from_env(os.environ),
            allow_local=os.environ.get(ENV_ALLOW_LOCAL, "false").lower() == "true",
        )
        if outcome.outcome == "delivered":
            metrics.add_metric(metric_names.WEBHOOKS_DELIVERED, MetricUnit.Count, 1)
        elif outcome.outcome in ("retry", "failed"):
            metrics.add_metric(metric_names.WEBHOOK_ATTEMPTS_FAILED, MetricUnit.Count, 1)
        elif outcome.outcome == "dead-lettered":
            metrics.add_metric(metric_names.WEBHOOKS_DEAD_LETTERED, MetricUnit.Count, 1)
        if outcome.disabled_now:
            metrics.add_metric(metric_names.WEBHOOK_ENDPOINTS_DISABLED, MetricUnit.Count, 1)
        result = outcome.result
        logger.info(
            "webhook " + outcome.outcome,
            extra={
                "attempt": outcome.attempt,
                "status_code": result.status_code if result else None,
                "latency_ms": result.latency_ms if result else None,
                "error": result.error if result else None,
            },
        )
    finally:
        logger.remove_keys(["event_id"])


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Queue batch entry point; failed messages are reported, the rest deleted by Lambda."""
    return process_partial_response(
        event=event, record_handler=handle_record, processor=processor, context=context
    )
