"""ManualIntervention: a paid order that could not ship is flagged for staff."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import metric_names, wiring
from pipeline.fulfilment import failure_reason, order_flag_for_review

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input {OrderId, Error, Cause} from the shipping step's Catch; output {OrderId, Status}."""
    order_id = event["OrderId"]
    logger.append_keys(order_id=order_id)
    reason = failure_reason("Shipping failed", event.get("Error"), event.get("Cause"))
    outcome = order_flag_for_review(store=wiring.dynamo_store(), order_id=order_id, reason=reason)
    if outcome.changed:
        metrics.add_metric(metric_names.ORDERS_NEEDING_INTERVENTION, MetricUnit.Count, 1)
        logger.warning("order needs manual intervention", extra={"reason": reason})
    return {"OrderId": order_id, "Status": str(outcome.order.status)}
