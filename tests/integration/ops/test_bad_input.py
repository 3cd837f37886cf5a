"""Bad text on the staff pages: the form says what is wrong, and nothing is written or logged."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from operations.models import AuditLogEntry
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.statuses import OrderStatus
from tests.integration.ops.orders import make_order, unique

pytestmark = pytest.mark.integration


def test_an_order_action_whose_reason_hides_text_is_not_carried_out(
    staff: Client, store: DynamoStore
):
    # Given a pending order
    order = make_order(store, OrderStatus.PENDING)

    # When staff cancel it with a reason holding a zero-width space
    response = staff.post(
        reverse("operations:order-action", args=[order.order_id, "cancel"]),
        {"reason": "dupli\u200bcate"},
    )

    # Then the form says why, and the order is still pending with nothing in the audit log
    assert "U+200B ZERO WIDTH SPACE" in response.content.decode()
    assert store.order_get(order.order_id).status == OrderStatus.PENDING
    assert not AuditLogEntry.objects.exists()


def test_a_customer_search_is_normalised_like_the_stored_names(staff: Client, store: DynamoStore):
    # Given an order for "José" (stored NFC-normalised whatever the client typed)
    customer = unique("José")
    order = make_order(store, OrderStatus.PENDING, customer=customer.replace("é", "e\u0301"))
    assert store.order_get(order.order_id).customer_name == customer

    # When staff search for the name typed with a combining accent, and with a hidden character
    found = staff.get("/ops/orders/", {"customer": customer.replace("é", "e\u0301")})
    refused = staff.get("/ops/orders/", {"customer": f"{customer}\u200b"})

    # Then the first finds the order
    assert order.order_id in found.content.decode()
    # And the second is not searched for: the page lists orders by status, as with no search
    # (orders.html shows no field errors of the search form, for this or an over-long name)
    page = refused.content.decode()
    assert "Orders of customer" not in page and order.order_id not in page
