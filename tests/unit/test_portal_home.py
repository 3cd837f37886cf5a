"""GET /: the front page README sends newcomers to leads staff to the dashboard, others to the
staff login, and everyone to the API docs."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


def _links(page: str) -> dict[str, str]:
    """id -> href of the page's links that carry an id."""
    return dict(re.findall(r'<a [^>]*id="([^"]+)" href="([^"]+)"', page))


def test_anonymous_visitors_get_the_staff_login_and_the_api_docs(client: Client) -> None:
    # When someone who is not logged in opens the root URL
    response = client.get("/")

    # Then it answers with a page, not the 404 it used to
    assert response.status_code == 200
    links = _links(response.content.decode())
    # And it offers the admin login, which comes back to the dashboard, and the API docs
    assert links == {"login-link": "/admin/login/?next=/ops/", "api-docs-link": "/api/docs/"}
    # And both lead to a real page
    assert client.get(links["login-link"]).status_code == 200
    assert client.get(links["api-docs-link"]).status_code == 200


def test_staff_get_a_link_straight_to_the_dashboard(client: Client, django_user_model: Any) -> None:
    # Given a logged-in staff member
    staff = django_user_model.objects.create_user(username="front-staff", is_staff=True)
    client.force_login(staff)

    # When they open the root URL
    page = client.get("/").content.decode()

    # Then it links to the operations dashboard (no login needed) and to the API docs
    assert _links(page) == {"dashboard-link": "/ops/", "api-docs-link": "/api/docs/"}
    assert "front-staff" in page


def test_logged_in_users_who_are_not_staff_are_offered_the_staff_login(
    client: Client, django_user_model: Any
) -> None:
    # Given a logged-in user without is_staff (the dashboard would refuse them)
    client.force_login(django_user_model.objects.create_user(username="shopper"))

    # When they open the root URL
    links = _links(client.get("/").content.decode())

    # Then they are offered the staff login, not a dashboard link that would bounce them
    assert "dashboard-link" not in links
    assert links["login-link"] == "/admin/login/?next=/ops/"
