"""An admin creates an API key in a real browser, sees it once, and sees its usage after a few
API calls: requests today on the key list and the day's bar on the key's page."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from tests.integration.api.servers import PortalServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.serial,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "a long admin password 9"
CALLS = 3


def test_an_admin_creates_a_key_and_sees_its_usage(page: Any, portal: PortalServer) -> None:
    # Given a staff member in the admin group
    base = portal.url
    boss = get_user_model().objects.create_user(
        f"adm-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    boss.groups.add(Group.objects.get(name="admin"))
    name = f"browser client {uuid.uuid4().hex[:6]}"

    # When they log in and add an API key
    page.goto(f"{base}/admin/orders_api/clientapikey/add/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", boss.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/orders_api/clientapikey/add/")
    page.fill("#id_name", name)
    page.click("input[name=_save]")

    # Then the new key is shown once, on a page of its own
    raw = page.locator("#new-api-key").inner_text().strip()
    assert raw.count(".") == 1 and len(raw) > 20

    # When the client makes a few calls with it
    for _ in range(CALLS):
        reply = portal.request("GET", f"/orders/{uuid.uuid4()}", headers={"x-api-key": raw})
        assert reply.status == 404, reply.body

    # Then the key list shows its requests today and when it was last used
    page.goto(f"{base}/admin/orders_api/clientapikey/?q={name.replace(' ', '+')}")
    row = page.locator("#result_list tbody tr", has_text=name)
    cells = row.inner_text()
    assert str(CALLS) in cells.split("\t") or f"\t{CALLS}\t" in cells, cells
    assert "never" not in cells and "unavailable" not in cells

    # And the key's page has today's bar with those requests
    row.locator("th a").first.click()
    history = page.locator("table.usage-history").inner_text()
    today_row = history.splitlines()[-1]
    assert today_row.split("\t")[1].strip() == str(CALLS), history
