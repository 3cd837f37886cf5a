"""ReleaseStock: the compensation after a failed payment; stock back, charge refunded."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import metric_names, wiring
from pipeline.domain import to_json
from pipeline.fulfilment import attempt_of, failure_reason, payment_compensate, step_status

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input {OrderId, Attempt, Error, Cause} from the payment step's Catch; output
    {OrderId, Status}.

    The workflow routes on Status: an order found PAID (its payment landed after all) goes on
    to shipping; SUPERSEDED (the order was resubmitted since) ends the run without touching it;
    otherwise the stock is back and any charge refunded (PAYMENT_FAILED)."""
    order_id = event["OrderId"]
    logger.append_keys(order_id=order_id)
    reason = failure_reason("Payment failed", event.get("Error"), event.get("Cause"))
    outcome = payment_compensate(
        store=wiring.dynamo_store(),
        gateway=wiring.payment_gateway(),
        order_id=order_id,
        reason=reason,
        attempt=attempt_of(event),
    )
    order = outcome.order
    if outcome.changed:
        metrics.add_metric(metric_names.STOCK_RELEASES, MetricUnit.Count, 1)
    logger.info(
        "payment failure recorded",
        extra={"status": str(order.status), "reason": reason, "refund": to_json(order.refund)},
    )
    return {"OrderId": order_id, "Status": step_status(order, attempt_of(event))}
