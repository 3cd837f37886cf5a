"""The custom metrics' CloudWatch namespace and names, each with the service that emits it."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

# What template.yaml gives every function as POWERTOOLS_METRICS_NAMESPACE, and the portal's
# default (zappa_settings.json); Powertools reads it from there, so the handlers never pass it.
NAMESPACE: Final = "OrderProcessing"

# Powertools adds a `service` dimension to each function's metrics: its POWERTOOLS_SERVICE_NAME
# in template.yaml. Alarms and the dashboard must name the same value or they see no data.
SERVICE_ORDER_PROCESSING: Final = "order-processing"
SERVICE_SQS_PROCESSOR: Final = "sqs-processor"
SERVICE_PAYMENT: Final = "payment"
SERVICE_SHIPPING: Final = "shipping"
SERVICE_RELEASE_STOCK: Final = "release-stock"
SERVICE_MANUAL_INTERVENTION: Final = "manual-intervention"
SERVICE_ORDER_EVENTS: Final = "order-events"
SERVICE_WEBHOOK_DELIVERY: Final = "webhook-delivery"

# lambdas/order_processing
ORDERS_PROCESSED: Final = "OrdersProcessed"
RESERVATIONS_SUCCEEDED: Final = "ReservationsSucceeded"
RESERVATIONS_REJECTED: Final = "ReservationsRejected"
# lambdas/sqs_processor
WORKFLOWS_STARTED: Final = "WorkflowsStarted"
DUPLICATE_DELIVERIES: Final = "DuplicateDeliveries"
# lambdas/payment
PAYMENTS_SUCCEEDED: Final = "PaymentsSucceeded"
PAYMENTS_DECLINED: Final = "PaymentsDeclined"
PAYMENT_GATEWAY_ERRORS: Final = "PaymentGatewayErrors"
# lambdas/shipping
ORDERS_SHIPPED: Final = "OrdersShipped"
SHIPMENT_FAILURES: Final = "ShipmentFailures"
# lambdas/release_stock
STOCK_RELEASES: Final = "StockReleases"
# lambdas/manual_intervention
ORDERS_NEEDING_INTERVENTION: Final = "OrdersNeedingIntervention"
# lambdas/order_events
WEBHOOK_EVENTS_QUEUED: Final = "WebhookEventsQueued"
# lambdas/webhook_delivery
WEBHOOKS_DELIVERED: Final = "WebhooksDelivered"
WEBHOOK_ATTEMPTS_FAILED: Final = "WebhookAttemptsFailed"
WEBHOOKS_DEAD_LETTERED: Final = "WebhooksDeadLettered"
WEBHOOK_ENDPOINTS_DISABLED: Final = "WebhookEndpointsDisabled"
# The portal (orders_api/metrics.py)
API_AUTHENTICATION_FAILURES: Final = "ApiAuthenticationFailures"
API_REQUESTS_THROTTLED: Final = "ApiRequestsThrottled"
RATE_LIMITER_UNAVAILABLE: Final = "RateLimiterUnavailable"
# The portal's failed-authentication throttles (orders_api/auth.py, portal/login.py)
API_KEY_FAILURES_THROTTLED: Final = "ApiKeyFailuresThrottled"
LOGIN_FAILURES_THROTTLED: Final = "LoginFailuresThrottled"
# The stranded-order sweepers (pipeline/sweeps.py), counted by the portal's Celery tasks
# (operations/tasks.py): what each found (alarmed on) and what it did.
STRANDED_PENDING_FOUND: Final = "StrandedPendingFound"
STRANDED_PENDING_REDRIVEN: Final = "StrandedPendingRedriven"
STRANDED_RESERVED_FOUND: Final = "StrandedReservedFound"
STRANDED_RESERVED_REQUEUED: Final = "StrandedReservedRequeued"
STRANDED_RESERVED_RESTARTED: Final = "StrandedReservedRestarted"
STRANDED_RESERVED_RELEASED: Final = "StrandedReservedReleased"
STRANDED_PAID_FOUND: Final = "StrandedPaidFound"
STRANDED_PAID_REQUEUED: Final = "StrandedPaidRequeued"
STRANDED_PAID_RESUMED: Final = "StrandedPaidResumed"
STRANDED_PAID_FLAGGED: Final = "StrandedPaidFlagged"
# The inventory catalogue's beat task (operations/tasks.py): items at or below their threshold.
LOW_STOCK_ITEMS: Final = "LowStockItems"

# Every metric above and the `service` dimension it carries: None for the portal's, which it
# emits without dimensions so that one alarm or graph covers every portal instance.
SERVICE_OF: Final[Mapping[str, str | None]] = MappingProxyType(
    {
        ORDERS_PROCESSED: SERVICE_ORDER_PROCESSING,
        RESERVATIONS_SUCCEEDED: SERVICE_ORDER_PROCESSING,
        RESERVATIONS_REJECTED: SERVICE_ORDER_PROCESSING,
        WORKFLOWS_STARTED: SERVICE_SQS_PROCESSOR,
        DUPLICATE_DELIVERIES: SERVICE_SQS_PROCESSOR,
        PAYMENTS_SUCCEEDED: SERVICE_PAYMENT,
        PAYMENTS_DECLINED: SERVICE_PAYMENT,
        PAYMENT_GATEWAY_ERRORS: SERVICE_PAYMENT,
        ORDERS_SHIPPED: SERVICE_SHIPPING,
        SHIPMENT_FAILURES: SERVICE_SHIPPING,
        STOCK_RELEASES: SERVICE_RELEASE_STOCK,
        ORDERS_NEEDING_INTERVENTION: SERVICE_MANUAL_INTERVENTION,
        WEBHOOK_EVENTS_QUEUED: SERVICE_ORDER_EVENTS,
        WEBHOOKS_DELIVERED: SERVICE_WEBHOOK_DELIVERY,
        WEBHOOK_ATTEMPTS_FAILED: SERVICE_WEBHOOK_DELIVERY,
        WEBHOOKS_DEAD_LETTERED: SERVICE_WEBHOOK_DELIVERY,
        WEBHOOK_ENDPOINTS_DISABLED: SERVICE_WEBHOOK_DELIVERY,
        API_AUTHENTICATION_FAILURES: None,
        API_REQUESTS_THROTTLED: None,
        RATE_LIMITER_UNAVAILABLE: None,
        API_KEY_FAILURES_THROTTLED: None,
        LOGIN_FAILURES_THROTTLED: None,
        STRANDED_PENDING_FOUND: None,
        STRANDED_PENDING_REDRIVEN: None,
        STRANDED_RESERVED_FOUND: None,
        STRANDED_RESERVED_REQUEUED: None,
        STRANDED_RESERVED_RESTARTED: None,
        STRANDED_RESERVED_RELEASED: None,
        STRANDED_PAID_FOUND: None,
        STRANDED_PAID_REQUEUED: None,
        STRANDED_PAID_RESUMED: None,
        STRANDED_PAID_FLAGGED: None,
        LOW_STOCK_ITEMS: None,
    }
)
