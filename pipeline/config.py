"""Names of the pipeline's AWS resources, read from the environment when asked, never at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


def rate_from_env(env: Mapping[str, str], name: str, default: float) -> float:
    """A share between 0 and 1 from the environment; ValueError naming the variable if not."""
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {raw}")
    return value


class MissingSetting(RuntimeError):
    """A resource name the code needs is not in the environment."""


# Environment variable -> what it names. template.yaml sets these on every function; the local
# runtime writes them to its env file; the portal reads them from its environment.
ENV_ORDERS_TABLE = "ORDERS_TABLE_NAME"
ENV_INVENTORY_TABLE = "INVENTORY_TABLE_NAME"
ENV_ORDERS_QUEUE_URL = "ORDERS_QUEUE_URL"
ENV_DLQ_URL = "ORDERS_DLQ_URL"
ENV_STATE_MACHINE_ARN = "STATE_MACHINE_ARN"
ENV_STREAM_FAILURE_QUEUE_URL = "STREAM_FAILURE_QUEUE_URL"
ENV_ALARM_TOPIC_ARN = "ALARM_TOPIC_ARN"
ENV_DASHBOARD = "CLOUDWATCH_DASHBOARD"
ENV_PAYMENT_LEDGER_TABLE = "PAYMENT_LEDGER_TABLE"
# The portal's Celery broker in AWS (portal/settings/production.py); the pipeline never reads it.
ENV_PORTAL_TASKS_QUEUE_URL = "PORTAL_TASKS_QUEUE_URL"

# template.yaml's Outputs -> the environment variables the portal, scripts and handlers read.
# The local runtime writes them to its env file; `deploy.sh deploy` hands them to Zappa.
STACK_OUTPUT_ENV: dict[str, str] = {
    "OrdersTableName": ENV_ORDERS_TABLE,
    "InventoryTableName": ENV_INVENTORY_TABLE,
    "OrdersQueueUrl": ENV_ORDERS_QUEUE_URL,
    "OrdersDeadLetterQueueUrl": ENV_DLQ_URL,
    "OrderWorkflowArn": ENV_STATE_MACHINE_ARN,
    "StreamFailureQueueUrl": ENV_STREAM_FAILURE_QUEUE_URL,
    "AlarmTopicArn": ENV_ALARM_TOPIC_ARN,
    "DashboardName": ENV_DASHBOARD,
    "PaymentLedgerTableName": ENV_PAYMENT_LEDGER_TABLE,
    "PortalTasksQueueUrl": ENV_PORTAL_TASKS_QUEUE_URL,
    # Webhooks (pipeline/webhooks_store.py reads them).
    "WebhooksTableName": "WEBHOOKS_TABLE_NAME",
    "WebhookSecretsKeyId": "WEBHOOK_SECRETS_KEY_ID",
    "WebhookDeliveriesQueueUrl": "WEBHOOK_DELIVERIES_QUEUE_URL",
    "WebhookDeadLetterQueueUrl": "WEBHOOK_DLQ_URL",
}


@dataclass(frozen=True)
class PipelineSettings:
    """Where the pipeline's data and queues live."""

    orders_table: str | None
    inventory_table: str | None
    orders_queue_url: str | None
    dlq_url: str | None
    state_machine_arn: str | None
    stream_failure_queue_url: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PipelineSettings:
        """Read the settings from `environ` (default: os.environ)."""
        env = os.environ if environ is None else environ
        return cls(
            orders_table=env.get(ENV_ORDERS_TABLE) or None,
            inventory_table=env.get(ENV_INVENTORY_TABLE) or None,
            orders_queue_url=env.get(ENV_ORDERS_QUEUE_URL) or None,
            dlq_url=env.get(ENV_DLQ_URL) or None,
            state_machine_arn=env.get(ENV_STATE_MACHINE_ARN) or None,
            stream_failure_queue_url=env.get(ENV_STREAM_FAILURE_QUEUE_URL) or None,
        )

    def require(self, name: str) -> str:
        """The named setting, or a MissingSetting error naming its environment variable."""
        value = getattr(self, name)
        if not value:
            env_name = {
                "orders_table": ENV_ORDERS_TABLE,
                "inventory_table": ENV_INVENTORY_TABLE,
                "orders_queue_url": ENV_ORDERS_QUEUE_URL,
                "dlq_url": ENV_DLQ_URL,
                "state_machine_arn": ENV_STATE_MACHINE_ARN,
                "stream_failure_queue_url": ENV_STREAM_FAILURE_QUEUE_URL,
            }[name]
            raise MissingSetting(f"{env_name} is not set")
        return value
