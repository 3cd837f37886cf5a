"""Payment: charge a reserved order through the mock gateway (a Step Functions task)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import metric_names, wiring
from pipeline.domain import to_json
from pipeline.errors import PaymentDeclined, PaymentGatewayUnavailable
from pipeline.fulfilment import attempt_of, payment_charge

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input {OrderId, Attempt, RetryCount}; output {OrderId, Payment}. Declines and gateway
    errors are raised as PaymentDeclined / PaymentGatewayUnavailable for the state machine, and
    a step of an attempt the order moved on from as SupersededAttempt."""
    order_id = event["OrderId"]
    logger.append_keys(order_id=order_id)
    try:
        order = payment_charge(
            store=wiring.dynamo_store(),
            gateway=wiring.payment_gateway(),
            order_id=order_id,
            retry_count=int(event.get("RetryCount", 0)),
            attempt=attempt_of(event),
        )
    except PaymentDeclined as exc:
        metrics.add_metric(metric_names.PAYMENTS_DECLINED, MetricUnit.Count, 1)
        logger.warning("payment declined", extra={"reason": str(exc)})
        raise
    except PaymentGatewayUnavailable as exc:
        metrics.add_metric(metric_names.PAYMENT_GATEWAY_ERRORS, MetricUnit.Count, 1)
        logger.warning("payment gateway unavailable", extra={"reason": str(exc)})
        raise
    metrics.add_metric(metric_names.PAYMENTS_SUCCEEDED, MetricUnit.Count, 1)
    logger.info("payment recorded", extra={"payment": to_json(order.payment)})
    return {"OrderId": order_id, "Payment": to_json(order.payment)}
