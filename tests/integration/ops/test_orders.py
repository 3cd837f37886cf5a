"""The re-queue of stranded orders end to end (the order pages and actions are the admin's:
tests/integration/admin/test_orders.py)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from operations.models import AuditLogEntry
from pipeline import wiring
from pipeline.statuses import OrderStatus
from tests.integration.ops.orders import (
    make_item,
    stranded_order,
    wait_for_status,
)

pytestmark = pytest.mark.integration


@pytest.mark.e2e
def test_requeueing_stranded_orders_sends_them_on_to_shipping(
    db: None, runtime_env: dict[str, str], django_capture_on_commit_callbacks: Any
):
    # Given a RESERVED order in the running system whose queue message was lost, and a staff
    # member allowed to re-queue (a superuser here; the roles give it to operators)
    store = wiring.dynamo_store()
    item = make_item(store)
    order = stranded_order(store, item)
    time.sleep(1)
    assert store.order_get(order.order_id).status == OrderStatus.RESERVED
    boss = get_user_model().objects.create_superuser(username=f"boss-{uuid.uuid4().hex[:6]}")
    client = Client()
    client.force_login(boss)

    # When they re-queue stranded orders: a background job, run by the (eager) worker once the
    # request's transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/ops/orders/requeue-stranded/", {"reason": "queue purged " + uuid.uuid4().hex}
        )

    # Then the job page shows which orders went back to the queue, and it is logged
    page = client.get(response["Location"]).content.decode()
    assert "finished" in page and order.order_id in page
    entry = AuditLogEntry.objects.filter(action="fulfilment_requeue_stranded").first()
    assert entry is not None and entry.actor == boss.username
    assert order.order_id in entry.detail["order_ids"]
    # And the order goes through payment and shipping
    wait_for_status(store, order.order_id, OrderStatus.SHIPPED)
    # And its page shows the workflow execution that shipped it
    detail = client.get(f"/ops/orders/{order.order_id}/", follow=True).content.decode()
    executions = detail[detail.index('id="executions"') :]
    assert f"<code>{order.order_id}</code> — <strong>SUCCEEDED</strong>" in executions
