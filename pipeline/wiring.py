"""Builds the adapters from the environment's settings, for handlers, the portal and scripts."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.mock_carriers import MockCarriers
from pipeline.adapters.mock_payments import MockPaymentGateway
from pipeline.adapters.sqs import SqsQueue
from pipeline.adapters.stepfunctions import FulfilmentWorkflow
from pipeline.config import MissingSetting, PipelineSettings

if TYPE_CHECKING:
    from pipeline.webhooks_flow import DeliveryQueue


def dynamo_store(settings: PipelineSettings | None = None) -> DynamoStore:
    """The Orders and Inventory tables named by the settings."""
    settings = settings or PipelineSettings.from_env()
    return DynamoStore(settings.require("orders_table"), settings.require("inventory_table"))


def orders_queue(settings: PipelineSettings | None = None) -> SqsQueue:
    """The Orders queue."""
    settings = settings or PipelineSettings.from_env()
    return SqsQueue(settings.require("orders_queue_url"))


def dead_letter_queue(settings: PipelineSettings | None = None) -> SqsQueue:
    """The Orders queue's dead-letter queue."""
    settings = settings or PipelineSettings.from_env()
    return SqsQueue(settings.require("dlq_url"))


def stream_failure_queue(settings: PipelineSettings | None = None) -> SqsQueue:
    """Where the stream mapping describes the batches it gave up on."""
    settings = settings or PipelineSettings.from_env()
    return SqsQueue(settings.require("stream_failure_queue_url"))


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise MissingSetting(f"{name} is not set")
    return value


def webhook_deliveries_queue() -> DeliveryQueue:
    """The queue webhook deliveries wait in for their (next) attempt."""
    # Imported here: the fulfilment handlers build their adapters from this module and never
    # need the webhooks' code at a cold start.
    from pipeline.webhooks_flow import DeliveryQueue
    from pipeline.webhooks_store import ENV_DELIVERIES_QUEUE_URL

    return DeliveryQueue(_env(ENV_DELIVERIES_QUEUE_URL))


def webhook_dead_letter_queue() -> SqsQueue:
    """Where a webhook delivery goes once its retries are spent."""
    from pipeline.webhooks_store import ENV_DELIVERIES_DLQ_URL

    return SqsQueue(_env(ENV_DELIVERIES_DLQ_URL))


def fulfilment_workflow(settings: PipelineSettings | None = None) -> FulfilmentWorkflow:
    """The fulfilment state machine."""
    settings = settings or PipelineSettings.from_env()
    return FulfilmentWorkflow(settings.require("state_machine_arn"))


def payment_gateway() -> MockPaymentGateway:
    """The payment gateway, configured by PAYMENT_* variables."""
    return MockPaymentGateway.from_env()


def carriers() -> MockCarriers:
    """The shipping carriers, configured by SHIPPING_* variables."""
    return MockCarriers.from_env()
