"""Shipping: book the carrier for a paid order and record the shipment (a Step Functions task)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import metric_names, wiring
from pipeline.domain import to_json
from pipeline.errors import AddressRejected, CarrierUnavailable
from pipeline.fulfilment import attempt_of, shipment_create

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input {OrderId, Attempt}; output {OrderId, Shipment}; carrier failures are raised as
    CarrierUnavailable (retried) or AddressRejected (not), a step of an attempt the order moved
    on from as SupersededAttempt."""
    order_id = event["OrderId"]
    logger.append_keys(order_id=order_id)
    try:
        order = shipment_create(
            store=wiring.dynamo_store(),
            carriers=wiring.carriers(),
            order_id=order_id,
            attempt=attempt_of(event),
        )
    except (CarrierUnavailable, AddressRejected) as exc:
        metrics.add_metric(metric_names.SHIPMENT_FAILURES, MetricUnit.Count, 1)
        logger.warning("shipment not booked", extra={"reason": str(exc)})
        raise
    metrics.add_metric(metric_names.ORDERS_SHIPPED, MetricUnit.Count, 1)
    logger.info("shipment recorded", extra={"shipment": to_json(order.shipment)})
    return {"OrderId": order_id, "Shipment": to_json(order.shipment)}
