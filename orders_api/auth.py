"""The x-api-key check: a DRF authentication class and the permission every endpoint needs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework_api_key.permissions import BaseHasAPIKey, KeyParser

from orders_api import metrics
from orders_api.key_cache import check_key
from orders_api.models import ClientAPIKey
from orders_api.throttling import (
    TAKEN_ATTRIBUTE,
    FailureThrottle,
    UsagePlanThrottle,
    client_address,
)

INVALID_KEY = "Forbidden: the API key is unknown, revoked or expired"


class InvalidApiKey(exceptions.AuthenticationFailed):
    """403 (not 401: there is no WWW-Authenticate scheme to offer, as with API Gateway)."""

    status_code = 403
    default_detail = INVALID_KEY
    default_code = "invalid_api_key"


class TooManyKeyFailures(exceptions.APIException):
    """429 for an address that sent too many bad keys: refused before any key is looked up."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_detail = "Too Many Requests: too many invalid API keys from this address"
    default_code = "too_many_key_failures"

    def __init__(self, retry_after: str):
        super().__init__()
        self.retry_after = retry_after  # the exception handler sends it as Retry-After


class ApiKeyAuthentication(BaseAuthentication):
    """Finds the key in `x-api-key` (settings.API_KEY_CUSTOM_HEADER) and puts it on request.auth.

    Done once per request here so the views and the throttle read the key (and its plan, joined
    in the same query) from request.auth instead of looking it up again.
    """

    key_parser = KeyParser()

    def authenticate(self, request: Request) -> tuple[None, ClientAPIKey] | None:
        """(None, key) for a usable key; None without a key; 403 for any other key; 429, before
        the key is looked up, for an address with too many bad keys in its window."""
        raw = self.key_parser.get(request)
        if not raw:
            return None  # no key costs no query, so it is not counted as a failure
        throttle = FailureThrottle.for_api_keys()
        address = client_address(request)
        found = check_key(
            raw, failures=throttle, address=address, take_token=_throttled_after(request)
        )
        if not found.address.allowed:
            metrics.count(metrics.KEY_FAILURES_THROTTLED, Address=address, Path=request.path)
            raise TooManyKeyFailures(retry_after=found.address.retry_after_header)
        key = found.key
        reason = None
        if key is None:
            reason = "unknown"
        elif key.revoked:
            reason = "revoked"
        elif key.has_expired:
            reason = "expired"
        if reason is not None:
            # Not reset by a good key later: one valid key must not buy unlimited guesses.
            throttle.record(address)
            metrics.count(metrics.AUTH_FAILURES, Reason=reason, Path=request.path)
            raise InvalidApiKey()
        if found.usage is not None:
            setattr(request, TAKEN_ATTRIBUTE, found.usage)
        return (None, key)

    def authenticate_header(self, request: Request) -> None:
        """No challenge: DRF then answers 403, as the seed's API Gateway did."""
        return None


class HasClientApiKey(BaseHasAPIKey):
    """Allows requests that carried a usable client key; counts the ones that carried none."""

    model = ClientAPIKey

    def has_permission(self, request: Request, view: Any) -> bool:
        """True when ApiKeyAuthentication accepted a key for this request."""
        if isinstance(request.auth, ClientAPIKey):
            return True
        metrics.count(metrics.AUTH_FAILURES, Reason="missing", Path=request.path)
        return False


def _throttled_after(request: Request) -> bool:
    """Whether the view's only permission is HasClientApiKey and its only throttle
    UsagePlanThrottle: then, for a usable key, nothing between this check and the throttle can
    refuse the request, so the key's token may be taken now, in the key check's round trip."""
    view = (request.parser_context or {}).get("view")
    return (
        settings.RATE_LIMIT_ENABLED
        and view is not None
        and list(getattr(view, "permission_classes", ())) == [HasClientApiKey]
        and list(getattr(view, "throttle_classes", ())) == [UsagePlanThrottle]
    )
