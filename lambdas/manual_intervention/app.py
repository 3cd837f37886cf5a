"""ManualIntervention: a paid order that could not ship is flagged for staff."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from pipeline import metric_names, wiring
from pipeline.fulfilment import attempt_of, failure_reason, order_flag_for_review, step_status

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Input {OrderId, Attempt, Error, Cause} from the shipping step's Catch; output {OrderId,
    Status}, SUPERSEDED when the order moved on from the workflow's attempt."""
    order_id = event["OrderId"]
    logger.append_keys(order_id=order_id)
    reason = failure_reason("Shipping failed", event.get("Error"), event.get("Cause"))
    attempt = attempt_of(event)
    outcome = order_flag_for_review(
        store=wiring.dynamo_store(), order_id=order_id, reason=reason, attempt=attempt
    )
    if outcome.changed:
        metrics.add_metric(metric_names.ORDERS_NEEDING_INTERVENTION, MetricUnit.Count, 1)
        logger.warning("order needs manual intervention", extra={"reason": reason})
    return {"OrderId": order_id, "Status": step_status(outcome.order, attempt)}
