"""Which time zone the portal shows a staff member's dates in: their own choice (their
StaffPreferences), else the portal's TIME_ZONE, made the active zone for each request."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from operations.models import StaffPreferences


@cache
def known_zones() -> tuple[str, ...]:
    """Every IANA time zone name this machine knows, sorted (about 600)."""
    return tuple(sorted(available_timezones()))


def zone_named(name: str) -> ZoneInfo | None:
    """The time zone of an IANA name; None for an empty or unknown one."""
    if not name or name not in known_zones():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def staff_zone(request: HttpRequest) -> ZoneInfo | None:
    """The time zone the signed-in staff member chose, or None (the portal's TIME_ZONE)."""
    # API clients send no session cookie: they cost no session or database read here.
    if settings.SESSION_COOKIE_NAME not in request.COOKIES:
        return None
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return None
    chosen = StaffPreferences.objects.filter(user=user).values_list("time_zone", flat=True).first()
    return zone_named(chosen or "")


class StaffTimeZoneMiddleware:
    """Activates the staff member's time zone for the request (after authentication), so the
    admin, the operations pages and their date filters all use it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = staff_zone(request)
        if zone is None:
            timezone.deactivate()
        else:
            timezone.activate(zone)
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()  # a worker's next request starts from the portal's zone
