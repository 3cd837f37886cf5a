"""The x-api-key check: a DRF authentication class and the permission every endpoint needs."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework_api_key.permissions import BaseHasAPIKey, KeyParser

from orders_api import metrics
from orders_api.models import ClientAPIKey

INVALID_KEY = "Forbidden: the API key is unknown, revoked or expired"


class InvalidApiKey(exceptions.AuthenticationFailed):
    """403 (not 401: there is no WWW-Authenticate scheme to offer, as with API Gateway)."""

    status_code = 403
    default_detail = INVALID_KEY
    default_code = "invalid_api_key"


class ApiKeyAuthentication(BaseAuthentication):
    """Finds the key in `x-api-key` (settings.API_KEY_CUSTOM_HEADER) and puts it on request.auth.

    Done once per request here so the views and the throttle read the key (and its plan, joined
    in the same query) from request.auth instead of looking it up again.
    """

    key_parser = KeyParser()

    def authenticate(self, request: Request) -> tuple[None, ClientAPIKey] | None:
        """(None, key) for a usable key; None without a key; 403 for any other key."""
        raw = self.key_parser.get(request)
        if not raw:
            return None
        key = ClientAPIKey.objects.find(raw)
        reason = None
        if key is None:
            reason = "unknown"
        elif key.revoked:
            reason = "revoked"
        elif key.has_expired:
            reason = "expired"
        if reason is not None:
            metrics.count(metrics.AUTH_FAILURES, Reason=reason, Path=request.path)
            raise InvalidApiKey()
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
