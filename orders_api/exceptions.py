"""The API's exceptions: each carries its status code, message and (for 400) field errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import exceptions, status


class InvalidRequest(exceptions.APIException):
    """400 with field-level errors (the domain's InvalidOrder.errors, or the envelope's)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Invalid order"
    default_code = "invalid"

    def __init__(self, errors: Mapping[str, object], message: str = "Invalid order"):
        super().__init__(message)
        self.errors = {field: str(msg) for field, msg in errors.items()}


class MissingApiKey(exceptions.NotAuthenticated):
    """403 for a request without x-api-key (DRF's own message talks of credentials)."""

    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "Forbidden: send your API key in the x-api-key header"
    default_code = "missing_api_key"


class PayloadTooLarge(exceptions.APIException):
    """413: the body is bigger than the API reads."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self, limit: int):
        super().__init__(f"Request body larger than {limit} bytes")


class IdempotencyKeyReused(exceptions.APIException):
    """422: an Idempotency-Key sent again with a different body."""

    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "Idempotency-Key was already used with a different request body; use a new key "
        "for a new order"
    )
    default_code = "idempotency_key_reused"


class OrderIdConflict(exceptions.APIException):
    """409: the order id is taken by an order this request did not create."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "An order with this id already exists"
    default_code = "conflict"


class _RetryLater(exceptions.APIException):
    def __init__(self, retry_after: str):
        super().__init__()
        self.retry_after = retry_after


class RateLimited(_RetryLater):
    """429: the key's token bucket is empty (its rate or burst limit)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too Many Requests: rate limit of this API key exceeded"
    default_code = "throttled"


class QuotaExceeded(_RetryLater):
    """429: the key used its daily quota; Retry-After points at the next UTC midnight."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Limit Exceeded: daily quota of this API key used up"
    default_code = "quota_exceeded"


class LimiterUnavailable(_RetryLater):
    """503: the limits cannot be checked and the portal is set to refuse then."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "Service Unavailable: request limits cannot be checked right now"
    default_code = "limiter_unavailable"


def flatten_errors(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested error lists as {"ShippingAddress.PostalCode": "message"}."""
    if isinstance(detail, Mapping):
        flat: dict[str, str] = {}
        for field, value in detail.items():
            if field == "non_field_errors":  # about the object itself, not one of its fields
                name = prefix or "body"
            else:
                name = f"{prefix}.{field}" if prefix else str(field)
            flat.update(flatten_errors(value, name))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, Mapping | list) for item in detail):
            return {prefix or "body": " ".join(str(item) for item in detail)}
        flat = {}
        for index, item in enumerate(detail):
            flat.update(flatten_errors(item, f"{prefix}[{index}]"))
        return flat
    return {prefix or "body": str(detail)}
