"""Throttles on the shared Redis limiter: each key's usage plan, and failed authentications."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from orders_api import metrics
from orders_api.exceptions import LimiterUnavailable, QuotaExceeded, RateLimited
from orders_api.models import ClientAPIKey
from orders_api.ratelimit import Decision, RedisRateLimiter, get_limiter


def limiter() -> RedisRateLimiter:
    """This process's limiter on settings.REDIS_URL."""
    return get_limiter(
        settings.REDIS_URL,
        timeout=settings.RATE_LIMIT_REDIS_TIMEOUT,
        retry_seconds=settings.RATE_LIMIT_REDIS_RETRY_SECONDS,
    )


# Where ApiKeyAuthentication leaves the token it took for UsagePlanThrottle (request's own).
TAKEN_ATTRIBUTE = "_usage_plan_decision"


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
        # ApiKeyAuthentication took the token already when it could (one Redis round trip).
        decision = getattr(request, TAKEN_ATTRIBUTE, None)
        if decision is None:
            decision = limiter().hit(
                key.client_id, key.limits, prefix=settings.RATE_LIMIT_KEY_PREFIX
            )
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


# -- Failed authentications per client address (docs/security.md) --------------------------------


def client_address(request: HttpRequest | Request) -> str:
    """The address a request came from, as the nearest hop we trust saw it.

    Under Zappa that hop is API Gateway: its requestContext's sourceIp is the peer of the TCP
    connection it accepted, which no header can change (Zappa's own REMOTE_ADDR is a guess
    from X-Forwarded-For, which clients write). Elsewhere (gunicorn) it is REMOTE_ADDR.
    X-Forwarded-For counts only with TRUSTED_PROXY_COUNT = N > 0 proxies of our own in front:
    then the address N entries from its right, the one our outermost proxy saw. IPv6
    addresses are taken by /64, the block one host is usually given.
    """
    meta = request.META
    peer = _event_source_ip(meta.get("lambda.event")) or meta.get("REMOTE_ADDR", "")
    hops = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if hops > 0:
        chain = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        chain = [part for part in chain if part]
        if len(chain) >= hops:
            peer = chain[-hops]
    return _normalised(peer)


def _event_source_ip(event: Any) -> str | None:
    if not isinstance(event, dict):
        return None
    context = event.get("requestContext") or {}
    # REST APIs (payload 1.0) put it under identity, HTTP APIs and function URLs under http.
    for part in ("identity", "http"):
        source = (context.get(part) or {}).get("sourceIp")
        if source:
            return str(source)
    return None


def _normalised(address: str) -> str:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return "unknown"  # not an address: every such request shares one counter
    if parsed.version == 6:
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass(frozen=True)
class FailureThrottle:
    """At most `limit` failed authentications per client address in `window` seconds, for one
    scope ("api-key", "login"). `check` comes before the credentials are looked up, so a
    refused attempt costs one Redis call and no database query; `record` counts a failure.
    While Redis is down both let everything through (fail open) and count
    RateLimiterUnavailable: credentials are still checked, only unthrottled.
    """

    scope: str
    limit: int
    window: float

    @classmethod
    def for_api_keys(cls) -> FailureThrottle:
        """Bad API keys (unknown, revoked, expired, malformed)."""
        return cls("api-key", settings.API_KEY_FAILURE_LIMIT, settings.API_KEY_FAILURE_WINDOW)

    @classmethod
    def for_logins(cls) -> FailureThrottle:
        """Failed staff logins on the admin's login page."""
        return cls("login", settings.LOGIN_FAILURE_LIMIT, settings.LOGIN_FAILURE_WINDOW)

    @property
    def enabled(self) -> bool:
        """A limit of 0 turns the throttle off."""
        return self.limit > 0

    def check(self, address: str) -> Decision:
        """Allowed, "blocked" (with the seconds left in the window) or "unavailable"."""
        if not self.enabled:
            return Decision(True, "ok")
        decision = limiter().failures_check(
            self.scope, address, limit=self.limit, prefix=settings.RATE_LIMIT_KEY_PREFIX
        )
        return self.judged(decision)

    def judged(self, decision: Decision) -> Decision:
        """The limiter's `decision` on an address as this throttle acts on it: while Redis is
        unavailable the attempt goes on, counted as RateLimiterUnavailable."""
        if decision.reason == "unavailable":
            metrics.count(metrics.LIMITER_UNAVAILABLE, Policy="allow", Scope=self.scope)
            return Decision(True, "unavailable", decision.retry_after)
        return decision

    def record(self, address: str) -> None:
        """Count one failure of `address` (Redis down: counted as RateLimiterUnavailable)."""
        if not self.enabled:
            return
        count = limiter().failures_record(
            self.scope, address, window=self.window, prefix=settings.RATE_LIMIT_KEY_PREFIX
        )
        if count is None:
            metrics.count(metrics.LIMITER_UNAVAILABLE, Policy="allow", Scope=self.scope)
