"""The old /ops/ addresses of the pages that moved to the admin lead there; a POST to one of
them changes nothing (it lands on the page where the action is now)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from operations.models import AuditLogEntry, ReplayJob
from tests.integration.admin.conftest import csrf_post

pytestmark = pytest.mark.integration

ADMIN = "/admin/operations"


def test_old_addresses_redirect_to_their_admin_pages(role_client: Any):
    client = role_client("viewer")
    job = uuid.uuid4()
    expected = {
        "/ops/dlq/": f"{ADMIN}/ordersdeadletter/",
        "/ops/dlq/orders-dlq/": f"{ADMIN}/ordersdeadletter/",
        "/ops/dlq/stream-failures/": f"{ADMIN}/streamfailure/",
        f"/ops/dlq/jobs/{job}/": f"{ADMIN}/replayjob/{job}/change/",
        f"/ops/dlq/jobs/{job}/progress/": f"{ADMIN}/replayjob/{job}/progress/",
        "/ops/audit/?action=dlq_purge": f"{ADMIN}/auditlogentry/?action=dlq_purge",
    }
    for old, new in expected.items():
        response = client.get(old)
        assert (response.status_code, response["Location"]) == (302, new), old


def test_a_post_to_an_old_action_address_changes_nothing(role_client: Any):
    client = role_client("admin")
    for old in ("/ops/dlq/orders-dlq/purge/", "/ops/dlq/replay/", "/ops/dlq/stream-failures/look/"):
        response = csrf_post(client, old, {"confirm_name": "x", "reason": "x", "all": "1"})
        assert response.status_code == 302
    assert not AuditLogEntry.objects.exists() and not ReplayJob.objects.exists()
