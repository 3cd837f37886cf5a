"""Each staff member sees the portal's dates in the time zone they chose on /ops/preferences/,
others in the portal's PORTAL_TIME_ZONE; a zone nobody knows is refused and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from operations.models import StaffPreferences
from operations.time_zones import staff_zone
from pipeline.adapters.dynamodb import DynamoStore
from tests.integration.admin.conftest import client_for, csrf_post, member
from tests.integration.admin.test_orders import LIST, change_url
from tests.integration.admin.test_orders import text as _text
from tests.integration.ops.orders import make_order, unique

pytestmark = pytest.mark.integration

PREFERENCES = "/ops/preferences/"


def test_a_member_who_chose_tokyo_sees_tokyo_time_and_the_others_the_portals(
    store: DynamoStore, db: None
) -> None:
    # Given an order placed at 10:00 UTC, and two members of the same role
    stem = unique("tz").replace("-", "")
    order = make_order(store, customer=f"Tz {stem}", order_date="2026-01-05T10:00:00.000Z")
    tokyo, other = client_for(member("viewer")), client_for(member("viewer"))

    # When one of them chooses Asia/Tokyo
    saved = csrf_post(tokyo, PREFERENCES, {"time_zone": "Asia/Tokyo"})
    assert saved.status_code == 302

    # Then the orders list and the order's page show 19:00 JST to them
    listing = _text(tokyo.get(LIST, {"q": f"tz {stem}"}))
    assert "2026-01-05 19:00:00 JST" in listing
    page = _text(tokyo.get(change_url(order.order_id)))
    assert "2026-01-05 19:00:00 JST" in page
    assert "Asia/Tokyo" in _text(tokyo.get(PREFERENCES))
    # And the other member still sees the portal's zone (UTC here)
    assert "2026-01-05 10:00:00 UTC" in _text(other.get(LIST, {"q": f"tz {stem}"}))


def test_choosing_the_default_again_goes_back_to_the_portals_zone(
    store: DynamoStore, db: None
) -> None:
    stem = unique("tz").replace("-", "")
    make_order(store, customer=f"Tz {stem}", order_date="2026-07-05T10:00:00.000Z")
    client = client_for(member("viewer"))
    csrf_post(client, PREFERENCES, {"time_zone": "America/New_York"})
    assert "2026-07-05 06:00:00 EDT" in _text(client.get(LIST, {"q": f"tz {stem}"}))

    csrf_post(client, PREFERENCES, {"time_zone": ""})

    assert "2026-07-05 10:00:00 UTC" in _text(client.get(LIST, {"q": f"tz {stem}"}))


@pytest.mark.parametrize("bad", ["Mars/Olympus_Mons", "utc+2", "../../etc/passwd", "x" * 100])
def test_a_zone_nobody_knows_is_refused_and_the_saved_one_stays(bad: str, db: None) -> None:
    # Given a member who chose Europe/Paris
    user = member("operator")
    client = client_for(user)
    csrf_post(client, PREFERENCES, {"time_zone": "Europe/Paris"})

    # When they send a zone that does not exist
    refused = csrf_post(client, PREFERENCES, {"time_zone": bad})

    # Then the page says why, and Paris is still what they have
    assert refused.status_code == 200
    assert "is not a time zone this portal knows" in _text(refused)
    assert StaffPreferences.objects.get(user=user).time_zone == "Europe/Paris"


def test_the_page_is_for_staff_only(customer_user: Any, db: None) -> None:
    client = client_for(customer_user)
    response = client.get(PREFERENCES)
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert not StaffPreferences.objects.exists()


def test_a_request_without_a_session_reads_no_preference(
    django_assert_num_queries: Any, db: None
) -> None:
    # An API client sends no session cookie: choosing its zone costs no database read
    request = RequestFactory().post("/submitorder", data={}, content_type="application/json")
    with django_assert_num_queries(0):
        assert staff_zone(request) is None
