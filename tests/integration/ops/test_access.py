"""Who may see the operations pages: staff only, logged in through the admin's login page."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from operations.models import AuditLogEntry
from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.ops.conftest import PASSWORD
from tests.integration.ops.orders import make_item

pytestmark = pytest.mark.integration

PAGES = [
    "/ops/",
    "/ops/orders/",
    "/ops/inventory/",
    "/ops/inventory/new/",
]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_are_sent_to_the_admin_login(db: None, path: str):
    # When someone who is not logged in opens an operations page
    response = Client().get(path)

    # Then they land on the admin's login page, which will bring them back
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"


@pytest.mark.parametrize("path", PAGES)
def test_logged_in_users_who_are_not_staff_are_refused(customer_user: Any, path: str):
    # Given a logged-in user without is_staff
    client = Client()
    client.force_login(customer_user)

    # When they open an operations page
    response = client.get(path)

    # Then they are sent to the login page too (the admin's rule for non-staff)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_non_staff_cannot_change_stock(customer_user: Any, store: DynamoStore):
    # Given an item and a logged-in user who is not staff
    name = make_item(store, stock=5)
    client = Client()
    client.force_login(customer_user)

    # When they post a stock adjustment
    response = client.post(
        f"/admin/operations/inventoryitem/{name}/restock/", {"delta": 100, "reason": "x"}
    )

    # Then nothing happens to the stock and nothing is logged as done
    assert response.status_code == 302
    assert store.inventory_get(name).stock == 5
    assert not AuditLogEntry.objects.exists()


def test_staff_log_in_through_the_admin_login_and_reach_the_dashboard(staff_user: Any):
    # Given a staff member at the admin login page, sent there from /ops/
    client = Client()
    login = client.post(
        "/admin/login/?next=/ops/",
        {"username": staff_user.username, "password": PASSWORD, "next": "/ops/"},
    )

    # Then the login sends them back to the dashboard, which they may see
    assert login.status_code == 302
    assert login["Location"] == "/ops/"
    assert client.get("/ops/").status_code == 200


def test_the_admin_index_links_to_every_operations_page(staff: Client):
    # When a staff member opens the admin's index
    page = staff.get("/admin/").content.decode()

    # Then the operations box links to the dashboard, orders, inventory, DLQ and audit log
    # (the last two in the admin itself)
    assert 'id="operations-links"' in page
    admin = "/admin/operations"
    for path in (
        "/ops/",
        "/ops/orders/",
        "/ops/inventory/",
        f"{admin}/ordersdeadletter/",
        f"{admin}/auditlogentry/",
    ):
        assert f'href="{path}"' in page


def test_every_post_needs_the_csrf_token(staff_user: Any, store: DynamoStore):
    # Given a staff member whose browser does not send the CSRF token
    name = make_item(store, stock=5)
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff_user)

    # When a form is posted without it
    response = client.post(
        f"/admin/operations/inventoryitem/{name}/restock/", {"delta": 1, "reason": "x"}
    )

    # Then Django refuses it and the stock is untouched
    assert response.status_code == 403
    assert store.inventory_get(name).stock == 5


def test_pages_use_local_assets_only(staff: Client):
    # When the dashboard is rendered
    page = staff.get("/ops/").content.decode()

    # Then every stylesheet and script comes from this server
    assert "https://" not in page.replace("https://docs.djangoproject", "")
    assert "/static/operations/ops.css" in page
    assert "/static/admin/css/base.css" in page
