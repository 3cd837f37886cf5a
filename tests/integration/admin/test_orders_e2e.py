"""The order page and actions on the running local runtime: each workflow execution with the
events Step Functions recorded; retry shipping runs a new workflow run through the pipeline, and
a refund gives the stock back and refunds the charge once."""

from __future__ import annotations

import time
from typing import Any

import pytest

from pipeline import wiring
from pipeline.adapters.mock_carriers import UNDELIVERABLE_POSTCODE
from pipeline.adapters.mock_payments import TOKEN_APPROVE
from pipeline.domain import Order
from pipeline.orders import order_submit
from pipeline.statuses import OrderStatus
from tests.integration.admin.conftest import csrf_post
from tests.integration.ops.orders import make_item, unique, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ADDRESS = {
    "Name": "Test Customer",
    "Line1": "1 Nowhere Road",
    "City": "Faraway",
    "PostalCode": UNDELIVERABLE_POSTCODE,
    "Country": "GB",
}


def _page(client: Any, order_id: str) -> str:
    return client.get(f"/admin/operations/order/{order_id}/change/").content.decode()


def _wait_for_run(order_id: str, run: int, want: OrderStatus, timeout: float = 60) -> Order:
    """The order once its workflow run `run` is recorded and it is back in `want`."""
    store = wiring.dynamo_store()
    deadline = time.monotonic() + timeout
    while True:
        order = store.order_get(order_id)
        if order.workflow_run == run and order.status == want:
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id}: run {order.workflow_run}, {order.status}")
        time.sleep(0.3)


def test_retry_shipping_then_refund_through_the_running_pipeline(
    runtime_env: dict[str, str], role_client: Any
) -> None:
    # Given a paid order the carrier refused (the pipeline flagged it for staff)
    store = wiring.dynamo_store()
    item = make_item(store, stock=10)
    order = order_submit(
        store=store,
        customer_name=unique("E2e"),
        items=[{"ItemName": item, "Quantity": 2}],
        payment_token=TOKEN_APPROVE,
        shipping_address=ADDRESS,
    )
    flagged = wait_for_status(store, order.order_id, OrderStatus.MANUAL_INTERVENTION)
    charge = flagged.payment
    assert charge is not None and store.inventory_get(item).stock == 8
    operator = role_client("operator")

    # When an operator opens its page
    page = _page(operator, order.order_id)
    # Then its execution is shown with the states Step Functions went through
    executions = page[page.index('id="executions"') :]
    assert f"<code>{order.order_id}</code> — <strong>SUCCEEDED</strong>" in executions
    for event in ("ExecutionStarted", "ProcessPayment", "ShipOrder", "FlagForManualIntervention"):
        assert event in executions, event

    # When they retry its shipping
    url = f"/admin/operations/order/{order.order_id}/act/retry-shipping/"
    assert csrf_post(operator, url, {"reason": "carrier asked us to"}).status_code == 302
    # Then workflow run 2 runs through the pipeline: payment finds the charge, shipping is
    # refused again (same address), and the order is back with staff, charged once
    again = _wait_for_run(order.order_id, 2, OrderStatus.MANUAL_INTERVENTION)
    assert again.payment == charge
    statuses = [h.status for h in again.history]
    assert statuses[-2:] == [OrderStatus.PAID, OrderStatus.MANUAL_INTERVENTION]
    page = _page(operator, order.order_id)
    assert f"<code>{order.order_id}-r2</code>" in page

    # When they refund it and release its stock
    url = f"/admin/operations/order/{order.order_id}/act/refund/"
    assert csrf_post(operator, url, {"reason": "cannot deliver there"}).status_code == 302
    # Then it is REFUNDED, the stock is back, and the refund names the charge
    refunded = store.order_get(order.order_id)
    assert refunded.status == OrderStatus.REFUNDED
    assert refunded.refund is not None
    assert refunded.refund["TransactionId"] == charge["TransactionId"]
    assert store.inventory_get(item).stock == 10
    assert "REFUNDED" in _page(operator, order.order_id)
