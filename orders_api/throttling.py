"""The DRF throttle that applies each key's usage plan through the shared Redis limiter."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from orders_api import metrics
from orders_api.exceptions import LimiterUnavailable, QuotaExceeded, RateLimited
from orders_api.models import ClientAPIKey
from orders_api.ratelimit import get_limiter


class UsagePlanThrottle(BaseThrottle):
    """Refuses a request over its key's rate, burst or daily quota with 429 and Retry-After.

    DRF's own throttles read and write the cache in two steps, so concurrent processes can
    all pass the same check; this one decides in a single atomic Redis script.
    """

    def allow_request(self, request: Request, view: Any) -> bool:
        """True to go on; raises RateLimited, QuotaExceeded or LimiterUnavailable otherwise."""
        key = request.auth
        if not settings.RATE_LIMIT_ENABLED or not isinstance(key, ClientAPIKey):
            return True  # keyless requests were refused already, or the view is public
        limiter = get_limiter(
            settings.REDIS_URL,
            timeout=settings.RATE_LIMIT_REDIS_TIMEOUT,
            retry_seconds=settings.RATE_LIMIT_REDIS_RETRY_SECONDS,
        )
        decision = limiter.hit(key.client_id, key.limits, prefix=settings.RATE_LIMIT_KEY_PREFIX)
        if decision.allowed:
            return True
        if decision.reason == "unavailable":
            metrics.count(metrics.LIMITER_UNAVAILABLE, Policy=settings.RATE_LIMIT_ON_REDIS_ERROR)
            if settings.RATE_LIMIT_ON_REDIS_ERROR == "allow":
                return True
            raise LimiterUnavailable(retry_after=decision.retry_after_header)
        metrics.count(metrics.RATE_LIMITED, Reason=decision.reason, ClientId=key.client_id)
        if decision.reason == "quota":
            raise QuotaExceeded(retry_after=decision.retry_after_header)
        raise RateLimited(retry_after=decision.retry_after_header)
