"""The portal's front page at /: the way to the dashboard, the staff login and the API docs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse


def home(request: HttpRequest) -> HttpResponse:
    """Staff get a link to the operations dashboard, everyone else the staff login; all see the
    API docs. A page rather than a redirect, so API clients landing here find the docs too."""
    dashboard = reverse("operations:dashboard")
    user = request.user
    is_staff = bool(user.is_active and user.is_staff)
    return render(
        request,
        "portal/home.html",
        {
            "is_staff": is_staff,
            "dashboard_url": dashboard,
            # The admin's login page comes back to the dashboard once the staff member is in.
            "login_url": f"{reverse('admin:login')}?next={dashboard}",
            "api_docs_url": reverse("api-docs"),
            "submit_url": reverse("orders_api:submit-order"),
        },
    )
