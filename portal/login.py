"""The admin's login page with failed logins throttled per client address (docs/security.md)."""

from __future__ import annotations

import math
from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.cache import add_never_cache_headers

from orders_api import metrics
from orders_api.throttling import FailureThrottle, client_address


def admin_login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """admin.site.login, except that an address with too many failed logins in its window gets
    429 and a page saying when to come back, before the password is checked at all."""
    if request.method != "POST":
        return admin.site.login(request, extra_context)
    throttle = FailureThrottle.for_logins()
    address = client_address(request)
    verdict = throttle.check(address)
    if not verdict.allowed:
        metrics.count(metrics.LOGIN_FAILURES_THROTTLED, Address=address)
        response = TemplateResponse(
            request,
            "portal/login_throttled.html",
            {
                **admin.site.each_context(request),
                "title": "Too many failed logins",
                "minutes": max(1, math.ceil(verdict.retry_after / 60)),
            },
            status=429,
        )
        response["Retry-After"] = verdict.retry_after_header
        add_never_cache_headers(response)  # as the login page itself: never from a cache
        return response
    response = admin.site.login(request, extra_context)
    # The admin answers a good login with a redirect and a refused one with the form again
    # (200); a request refused before the form (CSRF) never gets here.
    if response.status_code == 200:
        throttle.record(address)
    return response
