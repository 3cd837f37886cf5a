"""ReleaseStock: the compensation after a failed payment; gives the stock back, PAYMENT_FAILED."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import wiring
from pipeline.fulfilment import failure_reason
from pipeline.reservation import inventory_release
from pipeline.statuses import OrderStatus

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input {OrderId, Error, Cause} from the payment step's Catch; output {OrderId, Status}."""
    order_id = event["OrderId"]
    logger.append_keys(order_id=order_id)
    reason = failure_reason("Payment failed", event.get("Error"), event.get("Cause"))
    outcome = inventory_release(
        store=wiring.dynamo_store(),
        order_id=order_id,
        target=OrderStatus.PAYMENT_FAILED,
        reason=reason,
    )
    order = outcome.order
    if outcome.changed:
        metrics.add_metric("StockReleases", MetricUnit.Count, 1)
    logger.info("payment failure recorded", extra={"status": str(order.status), "reason": reason})
    return {"OrderId": order_id, "Status": str(order.status)}
