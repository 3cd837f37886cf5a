"""JSON, never Django's HTML error pages, for every failure on the order API's paths."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

log = logging.getLogger(__name__)

INTERNAL_ERROR = "Internal Server Error"
# Headers of Django's own answer that still hold for the JSON one.
_KEPT_HEADERS = ("Allow", "Retry-After")
# Django answers these with their own 4xx status (and logs them); only the page is rewritten.
_DJANGO_CLIENT_ERRORS = (Http404, PermissionDenied, BadRequest, SuspiciousOperation)


def on_api(request: HttpRequest) -> bool:
    """Whether the request is for the order API (its routes, or an unknown path under them)."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.app_name == "orders_api"
    # No route matched (a 404 page): decide by the API's own prefixes. reverse() includes the
    # script prefix, as request.path does (a Zappa stage, for one).
    submit = reverse("orders_api:submit-order")
    orders = reverse("orders_api:order-detail", args=["-"])[:-1]
    return request.path == submit or request.path.startswith((f"{submit}/", orders))


class ApiJsonErrorsMiddleware:
    """On the API's paths: an exception nothing answered becomes a logged JSON 500, and an HTML
    error page (an unknown path's 404, a 500 from another middleware) becomes JSON.

    The DRF exception handler answers everything raised inside the views; this covers what it
    never sees. It must come first in MIDDLEWARE so it sees every other layer's answer. Other
    paths (the portal, the admin) keep Django's pages, which are meant for people.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """The response, as JSON if it is an error page on the API's paths."""
        response = self.get_response(request)
        if response.status_code < 400 or _is_json(response) or not on_api(request):
            return response
        answer = JsonResponse({"message": response.reason_phrase}, status=response.status_code)
        for header in _KEPT_HEADERS:
            if response.has_header(header):
                answer[header] = response[header]
        return answer

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A JSON 500 for an unexpected exception on the API's paths, logged with its traceback
        (Django would have logged it and rendered its HTML page)."""
        if isinstance(exception, _DJANGO_CLIENT_ERRORS) or not on_api(request):
            return None
        log.error(
            "unhandled exception in the order API",
            exc_info=exception,
            extra={"path": request.path, "method": request.method},
        )
        return JsonResponse({"message": INTERNAL_ERROR}, status=500)


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")
