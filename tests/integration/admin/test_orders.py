"""The Order admin page on DynamoDB Local: search by customer prefix with filters, the timeline,
each action for each role (viewer 403, operator done), bulk actions, bad input."""

from __future__ import annotations

import re
from typing import Any

import pytest

from operations.admin.orders import OrderAdmin
from operations.models import AuditLogEntry
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.statuses import OrderStatus
from tests.integration.admin.conftest import client_for, csrf_post, member
from tests.integration.ops.orders import make_item, make_order, unique

pytestmark = pytest.mark.integration

LIST = "/admin/operations/order/"


def change_url(order_id: str) -> str:
    return f"{LIST}{order_id}/change/"


def act_url(order_id: str, slug: str) -> str:
    return f"{LIST}{order_id}/act/{slug}/"


def text(response: Any) -> str:
    return response.content.decode()


# -- the list --------------------------------------------------------------------------------


def test_a_viewer_finds_orders_by_customer_prefix_newest_first(
    role_client: Any, store: DynamoStore
) -> None:
    # Given two orders of "Zoë <stem>" and one of another customer of the same first letters
    stem = unique("zoe").replace("-", "")
    older = make_order(store, customer=f"Zoë {stem}", order_date="2026-01-02T10:00:00.000Z")
    newer = make_order(store, customer=f"Zoë {stem}", order_date="2026-01-03T10:00:00.000Z")
    other = make_order(store, customer=f"Zoë x{stem}")
    client = role_client("viewer")
    # When a viewer searches "zoe <stem>" (no accent, lower case)
    page = text(client.get(LIST, {"q": f"zoe {stem}"}))
    # Then both orders are listed, newest first, and the other customer is not
    assert page.index(newer.order_id) < page.index(older.order_id)
    assert other.order_id not in page
    # And the dates are shown in the portal's time zone, not as raw ISO strings
    assert "2026-01-03 10:00:00 UTC" in page
    assert "2026-01-03T10:00:00.000Z" not in page
    # And sorted by date ascending, the order flips
    page = text(client.get(LIST, {"q": f"zoe {stem}", "o": "placed"}))
    assert page.index(older.order_id) < page.index(newer.order_id)


def test_the_search_combines_with_the_status_filter(role_client: Any, store: DynamoStore) -> None:
    stem = unique("amy").replace("-", "")
    pending = make_order(store, OrderStatus.PENDING, customer=f"Amy {stem}")
    reserved = make_order(store, OrderStatus.RESERVED, customer=f"Amy {stem}")
    page = text(role_client("viewer").get(LIST, {"q": f"amy {stem}", "status": "RESERVED"}))
    assert reserved.order_id in page and pending.order_id not in page


def test_the_date_filter_bounds_the_list(role_client: Any, store: DynamoStore) -> None:
    stem = unique("bo").replace("-", "")
    old = make_order(store, customer=f"Bo {stem}", order_date="2020-01-01T10:00:00.000Z")
    new = make_order(store, customer=f"Bo {stem}")
    page = text(role_client("viewer").get(LIST, {"q": f"bo {stem}", "placed": "7d"}))
    assert new.order_id in page and old.order_id not in page


def test_an_order_id_search_opens_that_order_and_bad_searches_are_explained(
    role_client: Any, store: DynamoStore
) -> None:
    order = make_order(store, OrderStatus.REJECTED)
    client = role_client("viewer")
    assert order.order_id in text(client.get(LIST, {"q": order.order_id}))
    # Too short to pick an index partition: said, nothing listed
    short = text(client.get(LIST, {"q": "ab"}))
    assert "at least 3 characters" in short
    # A forged cursor or an unknown status is refused with a message, not a 500
    assert client.get(LIST, {"cursor": "forged"}).status_code == 302
    assert "No such status" in text(client.get(LIST, {"status": "LOST"}, follow=True))


def test_the_list_pages_with_opaque_cursors(role_client: Any, store: DynamoStore) -> None:
    stem = unique("cy").replace("-", "")
    made = [
        make_order(store, customer=f"Cy {stem}", order_date=f"2026-02-0{day}T10:00:00.000Z")
        for day in range(1, 4)
    ]
    client = role_client("viewer")
    OrderAdmin.list_per_page, before = 2, OrderAdmin.list_per_page
    try:
        first = text(client.get(LIST, {"q": f"cy {stem}"}))
        assert made[2].order_id in first and made[0].order_id not in first
        next_link = re.search(r'href="(\?[^"]*cursor=[^"]+)"', first)
        assert next_link is not None
        second = text(client.get(LIST + next_link.group(1).replace("&amp;", "&")))
        assert made[0].order_id in second and made[2].order_id not in second
    finally:
        OrderAdmin.list_per_page = before


# -- one order -------------------------------------------------------------------------------


def test_the_order_page_shows_one_timeline_and_only_allowed_buttons(
    role_client: Any, store: DynamoStore
) -> None:
    order = make_order(store, OrderStatus.MANUAL_INTERVENTION)
    viewer_page = text(role_client("viewer").get(change_url(order.order_id)))
    # The timeline: every status the order went through, the payment, who did it
    for status in ("PENDING", "RESERVED", "PAID", "MANUAL_INTERVENTION"):
        assert status in viewer_page
    assert 'id="status-history"' in viewer_page and "txn_setup" in viewer_page
    assert 'id="order-request"' in viewer_page and 'id="executions"' in viewer_page
    # A viewer sees no action button; an operator sees the three of MANUAL_INTERVENTION
    assert "order-action-" not in viewer_page
    operator_page = text(role_client("operator").get(change_url(order.order_id)))
    for slug in ("retry-shipping", "refund", "mark-shipped"):
        assert f'id="order-action-{slug}"' in operator_page
    assert 'id="order-action-cancel"' not in operator_page


@pytest.mark.parametrize(
    ("status", "slug", "data", "after"),
    [
        (OrderStatus.RESERVED, "cancel", {}, OrderStatus.CANCELLED),
        (OrderStatus.PAYMENT_FAILED, "resubmit", {}, OrderStatus.PENDING),
        (
            OrderStatus.MANUAL_INTERVENTION,
            "mark-shipped",
            {"carrier": "CityCourier", "tracking_number": "CC-1"},
            OrderStatus.SHIPPED,
        ),
    ],
)
def test_each_action_is_refused_to_a_viewer_and_done_for_an_operator(
    role_client: Any,
    store: DynamoStore,
    status: OrderStatus,
    slug: str,
    data: dict[str, str],
    after: OrderStatus,
) -> None:
    order = make_order(store, status)
    # A viewer: 403 on the confirmation page and on the POST, and nothing changes
    viewer = role_client("viewer")
    assert viewer.get(act_url(order.order_id, slug)).status_code == 403
    refused = csrf_post(viewer, act_url(order.order_id, slug), {**data, "reason": "r"})
    assert refused.status_code == 403
    assert store.order_get(order.order_id).status == status
    assert not AuditLogEntry.objects.filter(order_id=order.order_id).exists()
    # An operator: the confirmation page, then the POST does it
    operator = role_client("operator")
    confirm = operator.get(act_url(order.order_id, slug))
    assert confirm.status_code == 200 and "order-action-form" in text(confirm)
    done = csrf_post(operator, act_url(order.order_id, slug), {**data, "reason": "phoned in"})
    assert done.status_code == 302 and done["Location"] == change_url(order.order_id)
    changed = store.order_get(order.order_id)
    assert changed.status == after
    # The reason and the operator's name are in the order's own history and in the audit log
    assert changed.history[-1].actor.startswith("operator-")
    assert "phoned in" in changed.history[-1].reason
    entry = AuditLogEntry.objects.get(order_id=order.order_id)
    assert (entry.outcome, entry.reason) == ("succeeded", "phoned in")


def test_an_action_needs_a_post_a_reason_and_the_right_status(
    role_client: Any, store: DynamoStore
) -> None:
    order = make_order(store, OrderStatus.PENDING)
    operator = role_client("operator")
    # A reason hiding text is refused by the form: nothing changes, nothing is logged
    response = csrf_post(operator, act_url(order.order_id, "cancel"), {"reason": "dupli\u200bcate"})
    assert "U+200B ZERO WIDTH SPACE" in text(response)
    assert store.order_get(order.order_id).status == OrderStatus.PENDING
    assert not AuditLogEntry.objects.filter(order_id=order.order_id).exists()
    # Refund of a PENDING order: refused by the rules, said on the page and logged as REFUSED
    refused = csrf_post(
        operator, act_url(order.order_id, "refund"), {"reason": "wrong"}, follow=True
    )
    assert "needs MANUAL_INTERVENTION" in text(refused)
    entry = AuditLogEntry.objects.get(order_id=order.order_id)
    assert entry.outcome == "refused"
    # A POST without the CSRF token is refused
    plain = client_for(member("operator"))
    assert plain.post(act_url(order.order_id, "cancel"), {"reason": "x"}).status_code == 403
    assert store.order_get(order.order_id).status == OrderStatus.PENDING


def test_refund_from_the_admin_gives_stock_back(role_client: Any, store: DynamoStore) -> None:
    item = make_item(store, stock=10)
    order = make_order(store, OrderStatus.MANUAL_INTERVENTION, lines=[(item, 2)])
    assert store.inventory_get(item).stock == 8
    done = csrf_post(
        role_client("operator"), act_url(order.order_id, "refund"), {"reason": "cannot ship"}
    )
    assert done.status_code == 302
    assert store.order_get(order.order_id).status == OrderStatus.REFUNDED
    assert store.inventory_get(item).stock == 10


def test_bulk_cancel_goes_through_the_confirmation_and_reports_refusals(
    role_client: Any, store: DynamoStore
) -> None:
    pending = make_order(store, OrderStatus.PENDING)
    shipped = make_order(store, OrderStatus.SHIPPED)
    selected = {"action": "bulk_cancel", "_selected_action": [pending.order_id, shipped.order_id]}
    operator = role_client("operator")
    # The first POST shows the confirmation page with a reason field; nothing changes yet
    confirm = csrf_post(operator, LIST, selected)
    assert confirm.status_code == 200 and 'name="reason"' in text(confirm)
    assert store.order_get(pending.order_id).status == OrderStatus.PENDING
    # Confirmed with a reason: the pending one is cancelled, the shipped one refused
    done = csrf_post(operator, LIST, {**selected, "post": "yes", "reason": "fraud"}, follow=True)
    assert "1 order(s) done" in text(done) and "Refused 1" in text(done)
    assert store.order_get(pending.order_id).status == OrderStatus.CANCELLED
    assert store.order_get(shipped.order_id).status == OrderStatus.SHIPPED
    # A viewer cannot run it
    viewer = role_client("viewer")
    assert csrf_post(viewer, LIST, {**selected, "post": "yes", "reason": "x"}).status_code == 403


def test_old_ops_order_addresses_lead_to_the_admin(role_client: Any, store: DynamoStore) -> None:
    order = make_order(store, OrderStatus.PENDING)
    client = role_client("viewer")
    assert client.get(f"/ops/orders/{order.order_id}/")["Location"] == change_url(order.order_id)
    moved = client.get("/ops/orders/", {"customer": "Ada", "status": "PAID"})["Location"]
    assert moved.startswith(LIST) and "q=Ada" in moved and "status=PAID" in moved


def test_dates_follow_the_portals_time_zone(
    role_client: Any, store: DynamoStore, settings: Any
) -> None:
    # Given the portal set to Paris time, and an order placed at 10:00 UTC in January
    settings.TIME_ZONE = "Europe/Paris"
    stem = unique("tz").replace("-", "")
    order = make_order(store, customer=f"Tz {stem}", order_date="2026-01-05T10:00:00.000Z")
    # Then the list and the order's page show 11:00 CET
    listing = text(role_client("viewer").get(LIST, {"q": f"tz {stem}"}))
    assert "2026-01-05 11:00:00 CET" in listing
    assert "2026-01-05 11:00:00 CET" in text(role_client("viewer").get(change_url(order.order_id)))


def test_mark_shipped_with_a_bad_tracking_number_changes_nothing(
    role_client: Any, store: DynamoStore
) -> None:
    order = make_order(store, OrderStatus.MANUAL_INTERVENTION)
    response = csrf_post(
        role_client("operator"),
        act_url(order.order_id, "mark-shipped"),
        {"carrier": "City\u200bCourier", "tracking_number": "CC 1;drop", "reason": "sent"},
    )
    page = text(response)
    assert response.status_code == 200
    assert "U+200B ZERO WIDTH SPACE" in page and "Letters, digits, spaces" in page
    assert store.order_get(order.order_id).status == OrderStatus.MANUAL_INTERVENTION
    assert not AuditLogEntry.objects.filter(order_id=order.order_id).exists()
