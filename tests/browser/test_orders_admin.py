"""An operator finds an order by the first letters of its customer's name, in a real browser."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from pipeline import wiring
from pipeline.orders import order_submit
from tests.integration.api.servers import PortalServer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.serial,
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "a long operator password 7"


def test_an_operator_finds_an_order_by_customer_prefix(page: Any, portal: PortalServer) -> None:
    # Given an operator, and orders of two customers whose names start alike
    base = portal.url
    operator = get_user_model().objects.create_user(
        f"op-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=True
    )
    operator.groups.add(Group.objects.get(name="operator"))
    stem = "Brw" + uuid.uuid4().hex[:6]
    store = wiring.dynamo_store()
    # Items nobody stocks: the pipeline rejects these orders, and they stay findable
    wanted = order_submit(store=store, customer_name=f"{stem} Ångström", items=["no-such-item"])
    other = order_submit(store=store, customer_name=f"{stem} Zed", items=["no-such-item"])

    # When they log in through the admin and open the orders
    page.goto(f"{base}/admin/operations/order/")
    assert "/admin/login/" in page.url
    page.fill("#id_username", operator.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{base}/admin/operations/order/")

    # And search the first letters of the name, typed without the accent and in lower case
    page.fill("#searchbar", f"{stem.lower()} angs")
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()

    # Then the customer's order is listed and the other customer's is not
    listing = page.locator("#result_list").inner_text()
    assert wanted.order_id in listing
    assert other.order_id not in listing

    # When they open it
    page.click(f"text={wanted.order_id}")

    # Then its page shows the order's timeline, starting with its receipt
    assert page.locator("#order-status").inner_text() in {"PENDING", "REJECTED"}
    assert "PENDING" in page.locator("#status-history").inner_text()
    assert f"{stem} Ångström" in page.content()
