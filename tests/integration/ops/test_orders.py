"""/ops/orders/: listing by status and customer, an order's page, and the staff actions."""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from operations.models import AuditLogEntry
from pipeline import wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import Order, OrderLine, utc_now
from pipeline.statuses import OrderStatus
from tests.integration.ops.conftest import last_audit
from tests.integration.ops.orders import make_item, make_order, unique

pytestmark = pytest.mark.integration

Outcome = AuditLogEntry.Outcome


def listed_ids(page: str) -> list[str]:
    """The order ids in the listing, top to bottom."""
    return re.findall(r'<tr class="order-row">\s*<td><a href="/ops/orders/([^/]+)/">', page)


def future_date(n: int) -> str:
    """An OrderDate later than any real order's, so these orders list first (newest first)."""
    return f"2990-01-01T00:00:{n:02d}.000Z"


def post_action(client: Client, order_id: str, action: str, reason: str = "customer asked") -> Any:
    return client.post(
        reverse("operations:order-action", args=[order_id, action]), {"reason": reason}, follow=True
    )


# -- Listing ----------------------------------------------------------------------------------


def test_orders_in_a_status_are_listed_newest_first_a_page_at_a_time(
    staff: Client, store: DynamoStore, settings: Any
):
    # Given five orders needing a person, the newest ordered last, and pages of two
    settings.OPS_ORDERS_PAGE_SIZE = 2
    made = [
        make_order(store, OrderStatus.MANUAL_INTERVENTION, order_date=future_date(n)).order_id
        for n in range(5)
    ]

    # When staff open the MANUAL_INTERVENTION list and follow "Next page"
    first = staff.get("/ops/orders/?status=MANUAL_INTERVENTION").content.decode()
    next_url = re.search(r'href="(\?[^"]+)" id="next-page"', first).group(1).replace("&amp;", "&")
    second = staff.get("/ops/orders/" + next_url).content.decode()
    next_url = re.search(r'href="(\?[^"]+)" id="next-page"', second).group(1).replace("&amp;", "&")
    third = staff.get("/ops/orders/" + next_url).content.decode()

    # Then the pages hold the orders newest first, two at a time, each once
    assert listed_ids(first) == [made[4], made[3]]
    assert listed_ids(second) == [made[2], made[1]]
    assert listed_ids(third)[0] == made[0]
    # And later pages offer the way back to the first
    assert "First page" in second


def test_the_default_listing_is_the_orders_that_need_a_person(staff: Client, store: DynamoStore):
    # Given an order in MANUAL_INTERVENTION
    order = make_order(store, OrderStatus.MANUAL_INTERVENTION, order_date=future_date(59))

    # When staff open the orders page without choosing a status
    page = staff.get("/ops/orders/").content.decode()

    # Then they see MANUAL_INTERVENTION orders, this one first
    assert listed_ids(page)[0] == order.order_id
    assert "Orders: MANUAL_INTERVENTION" in page


def test_search_by_customer_lists_only_that_customers_orders(
    staff: Client, store: DynamoStore, settings: Any
):
    # Given a customer with three orders in different statuses, and another customer's order
    settings.OPS_ORDERS_PAGE_SIZE = 2
    customer = unique("Ada Lovelace")
    mine = {
        make_order(store, status, customer=customer).order_id
        for status in (OrderStatus.PENDING, OrderStatus.REJECTED, OrderStatus.SHIPPED)
    }
    make_order(store, OrderStatus.PENDING)

    # When staff search for the customer and page through the results
    first = staff.get("/ops/orders/", {"customer": customer}).content.decode()
    next_url = re.search(r'href="(\?[^"]+)" id="next-page"', first).group(1).replace("&amp;", "&")
    second = staff.get("/ops/orders/" + next_url).content.decode()

    # Then exactly the customer's orders are listed (CustomerIndex), across the two pages
    assert len(listed_ids(first)) == 2
    assert set(listed_ids(first) + listed_ids(second)) == mine
    assert f"Orders of customer {customer}" in first


def test_search_by_order_id_opens_the_order_and_an_unknown_id_says_so(
    staff: Client, store: DynamoStore
):
    # Given an order
    order = make_order(store)

    # When staff search for its id
    found = staff.get("/ops/orders/", {"order_id": order.order_id})

    # Then they are taken to its page
    assert found.status_code == 302
    assert found["Location"] == f"/ops/orders/{order.order_id}/"

    # When they search for an id that does not exist
    missing = staff.get("/ops/orders/", {"order_id": "no-such-order"}).content.decode()

    # Then the page says so
    assert "No order with id no-such-order." in missing


def test_a_tampered_page_cursor_shows_the_first_page_with_a_message(staff: Client, store):
    # When the cursor in the URL is not one the portal made
    page = staff.get("/ops/orders/?status=PENDING&after=bm90LWEtY3Vyc29y").content.decode()

    # Then the first page shows and the staff member is told why
    assert "That page link is not valid any more" in page


# -- One order --------------------------------------------------------------------------------


def test_the_order_page_shows_lines_reservation_payment_and_the_whole_history(
    staff: Client, store: DynamoStore
):
    # Given an order that was reserved, paid and then flagged for a person
    item = make_item(store, stock=10, price="12.50")
    order = make_order(store, OrderStatus.MANUAL_INTERVENTION, lines=[(item, 3)])

    # When staff open its page
    response = staff.get(f"/ops/orders/{order.order_id}/")
    page = response.content.decode()

    # Then the lines, the reservation with prices, the payment and every status change show
    assert response.status_code == 200
    assert f"<td>{item}</td><td>3</td>" in page
    assert "<td>12.50</td>" in page  # unit price reserved
    assert "37.50" in page  # reservation total
    assert "txn_setup" in page
    history = page[page.index('id="status-history"') :]
    for status in ("PENDING", "RESERVED", "PAID", "MANUAL_INTERVENTION"):
        assert f"ops-status-{status}" in history
    assert "carrier refused" in history
    # And the action that fits the status is offered, the others are not
    assert f"/ops/orders/{order.order_id}/resolve-shipped/" in page
    assert f"/ops/orders/{order.order_id}/cancel/" not in page
    # And the workflow part says why it is empty here (no Step Functions in this test)
    assert "STATE_MACHINE_ARN is not set" in page


def test_the_page_of_a_rejected_order_names_every_short_line(staff: Client, store: DynamoStore):
    # Given an order rejected for lack of stock
    order = make_order(store, OrderStatus.REJECTED)

    # When staff open it
    page = staff.get(f"/ops/orders/{order.order_id}/").content.decode()

    # Then the rejection table shows the short line, and resubmitting is offered
    assert "<h2>Rejection</h2>" in page
    assert "INSUFFICIENT_STOCK" in page
    assert f"/ops/orders/{order.order_id}/resubmit/" in page


def test_an_unknown_order_is_not_found(staff: Client, store: DynamoStore):
    # When staff open an order id that does not exist
    response = staff.get("/ops/orders/does-not-exist/")

    # Then the answer is 404
    assert response.status_code == 404


# -- Staff actions ----------------------------------------------------------------------------


def test_cancelling_a_reserved_order_gives_its_stock_back(
    staff: Client, store: DynamoStore, staff_user: Any
):
    # Given a reserved order holding 3 of an item's 10
    item = make_item(store, stock=10)
    order = make_order(store, OrderStatus.RESERVED, lines=[(item, 3)])
    assert store.inventory_get(item).stock == 7

    # When staff confirm the cancellation with a reason
    confirm = staff.get(f"/ops/orders/{order.order_id}/cancel/").content.decode()
    response = post_action(staff, order.order_id, "cancel", reason="duplicate order")

    # Then the confirmation page named the order and its status
    assert order.order_id in confirm and "ops-status-RESERVED" in confirm
    # And the order is CANCELLED, the stock is back, and staff are told
    cancelled = store.order_get(order.order_id)
    assert cancelled.status == OrderStatus.CANCELLED
    assert cancelled.status_reason == f"Cancelled by {staff_user.username}"
    assert store.inventory_get(item).stock == 10
    assert "Cancel: order" in response.content.decode()
    # And the audit log says who, what, which order, why and how it ended
    entry = last_audit()
    assert (entry.actor, entry.action, entry.order_id, entry.outcome, entry.reason) == (
        staff_user.username,
        "order_cancel",
        order.order_id,
        Outcome.SUCCEEDED,
        "duplicate order",
    )
    assert entry.user == staff_user


def test_cancelling_a_pending_order_moves_no_stock(staff: Client, store: DynamoStore):
    # Given a pending order (nothing reserved yet)
    item = make_item(store, stock=10)
    order = make_order(store, OrderStatus.PENDING, lines=[(item, 3)])

    # When staff cancel it
    post_action(staff, order.order_id, "cancel")

    # Then it is CANCELLED and the stock is as it was
    assert store.order_get(order.order_id).status == OrderStatus.CANCELLED
    assert store.inventory_get(item).stock == 10


def test_cancelling_a_shipped_order_is_refused_and_changes_nothing(
    staff: Client, store: DynamoStore
):
    # Given a shipped order
    item = make_item(store, stock=10)
    order = make_order(store, OrderStatus.SHIPPED, lines=[(item, 3)])
    before = store.order_get(order.order_id)

    # When staff try to cancel it
    response = post_action(staff, order.order_id, "cancel")

    # Then they are told why not, and the order and the stock are exactly as they were
    page = response.content.decode()
    assert f"Refused: order {order.order_id} is SHIPPED; cancel needs PENDING or RESERVED." in page
    assert "Nothing was changed." in page
    assert store.order_get(order.order_id) == before
    assert store.inventory_get(item).stock == 7
    # And the refusal is in the audit log
    entry = last_audit()
    assert (entry.action, entry.order_id, entry.outcome) == (
        "order_cancel",
        order.order_id,
        Outcome.REFUSED,
    )


@pytest.mark.parametrize("status", [OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED])
def test_resubmitting_a_failed_order_sends_it_through_the_pipeline_again(
    staff: Client, store: DynamoStore, staff_user: Any, status: OrderStatus
):
    # Given an order that failed
    order = make_order(store, status)

    # When staff resubmit it
    post_action(staff, order.order_id, "resubmit", reason="restocked")

    # Then it is PENDING again (the stream picks it up like a new order) and that is logged
    resubmitted = store.order_get(order.order_id)
    assert resubmitted.status == OrderStatus.PENDING
    assert resubmitted.status_reason == f"Resubmitted by {staff_user.username}"
    assert resubmitted.payment is None
    assert (last_audit().action, last_audit().outcome) == ("order_resubmit", Outcome.SUCCEEDED)


def test_resubmitting_a_reserved_order_is_refused(staff: Client, store: DynamoStore):
    # Given an order that holds stock
    order = make_order(store, OrderStatus.RESERVED)
    before = store.order_get(order.order_id)

    # When staff try to resubmit it
    page = post_action(staff, order.order_id, "resubmit").content.decode()

    # Then nothing changes and the refusal says why
    assert "is RESERVED; resubmit needs PAYMENT_FAILED or REJECTED" in page
    assert store.order_get(order.order_id) == before
    assert last_audit().outcome == Outcome.REFUSED


def test_marking_an_order_shipped_by_hand_records_the_note(
    staff: Client, store: DynamoStore, staff_user: Any
):
    # Given an order waiting for a person
    order = make_order(store, OrderStatus.MANUAL_INTERVENTION)

    # When staff mark it shipped with how they shipped it
    post_action(staff, order.order_id, "resolve-shipped", reason="sent by courier, ref 42")

    # Then it is SHIPPED and the note is on the order and in the audit log
    shipped = store.order_get(order.order_id)
    assert shipped.status == OrderStatus.SHIPPED
    assert shipped.status_reason == (
        f"Shipped manually by {staff_user.username}: sent by courier, ref 42"
    )
    assert last_audit().action == "order_resolve_shipped"
    assert last_audit().reason == "sent by courier, ref 42"


def test_marking_a_paid_order_shipped_by_hand_is_refused(staff: Client, store: DynamoStore):
    # Given an order that is paid and on its way to the carrier
    order = make_order(store, OrderStatus.PAID)
    before = store.order_get(order.order_id)

    # When staff try to mark it shipped by hand
    page = post_action(staff, order.order_id, "resolve-shipped").content.decode()

    # Then it is refused and unchanged
    assert "is PAID; mark shipped needs MANUAL_INTERVENTION" in page
    assert store.order_get(order.order_id) == before


def test_an_action_without_a_reason_is_not_carried_out(staff: Client, store: DynamoStore):
    # Given a pending order
    order = make_order(store, OrderStatus.PENDING)

    # When the confirmation is posted without a reason
    response = staff.post(f"/ops/orders/{order.order_id}/cancel/", {"reason": "  "})

    # Then the form asks for it, the order is untouched, and nothing is logged
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert store.order_get(order.order_id).status == OrderStatus.PENDING
    assert not AuditLogEntry.objects.exists()


def test_an_action_on_an_order_that_does_not_exist_is_refused(staff: Client, store: DynamoStore):
    # When staff post a cancellation for an unknown order id
    page = post_action(staff, "no-such-order", "cancel").content.decode()

    # Then it is refused and logged as such
    assert "Refused: there is no order no-such-order." in page
    assert last_audit().outcome == Outcome.REFUSED


def test_an_unknown_action_is_not_found(staff: Client, store: DynamoStore):
    # When staff post an action the portal does not have
    response = staff.post("/ops/orders/x/refund/", {"reason": "x"})

    # Then the answer is 404 and nothing is logged
    assert response.status_code == 404
    assert not AuditLogEntry.objects.exists()


# -- Stranded orders (the local runtime: queue, workflow) -------------------------------------


def stranded_order(store: DynamoStore, item: str) -> Order:
    """A RESERVED order whose queue message was lost: written as such, so the stream (which
    handles new PENDING orders) never sends it to the queue."""
    now = utc_now()
    order = replace(
        Order.new(customer_name=unique("Stranded"), lines=[OrderLine(item, 1)], now=now),
        status=OrderStatus.RESERVED,
        attempt=1,
        reservation={
            "Lines": [{"ItemName": item, "Quantity": 1, "UnitPrice": Decimal("10.00")}],
            "Total": Decimal("10.00"),
            "Currency": "USD",
            "ReservedAt": now,
        },
    )
    store.order_put_new(order)
    return order


def wait_for_status(store: DynamoStore, order_id: str, want: OrderStatus, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        order = store.order_get(order_id)
        if order.status == want:
            return order
        if time.monotonic() > deadline:
            raise AssertionError(f"order {order_id} stuck in {order.status}: {order.status_reason}")
        time.sleep(0.3)


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
    detail = client.get(f"/ops/orders/{order.order_id}/").content.decode()
    executions = detail[detail.index('id="executions"') :]
    assert f'<td>{order.order_id}</td><td class="">SUCCEEDED</td>' in executions
