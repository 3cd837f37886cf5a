"""Each role against each admin page and action of the operations app: what it may open, what
it is refused (403) and which buttons it does not see. AWS is a dead loopback endpoint here:
pages still render (saying what they could not read), and refusals come before any call."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from operations.models import AuditLogEntry, ReplayJob
from tests.integration.admin.conftest import ROLES, csrf_post

pytestmark = pytest.mark.integration

ADMIN = "/admin/operations"
PAGES = [
    f"{ADMIN}/ordersdeadletter/",
    f"{ADMIN}/streamfailure/",
    f"{ADMIN}/replayjob/",
    f"{ADMIN}/backgroundjob/",
    f"{ADMIN}/auditlogentry/",
    f"{ADMIN}/auditlogentry/export.csv",
    f"{ADMIN}/order/",
    f"{ADMIN}/inventoryitem/",
]
# (path, role that may, data): every state change, refused below its role.
ACTIONS = [
    (
        f"{ADMIN}/ordersdeadletter/",
        "operator",
        {"action": "replay_selected", "_selected_action": "m1"},
    ),
    (
        f"{ADMIN}/ordersdeadletter/",
        "operator",
        {"action": "delete_selected", "_selected_action": "m1"},
    ),
    (
        f"{ADMIN}/streamfailure/",
        "operator",
        {"action": "replay_selected", "_selected_action": "m1"},
    ),
    (f"{ADMIN}/ordersdeadletter/replay/", "operator", {"reason": "x"}),
    (f"{ADMIN}/streamfailure/replay/", "operator", {"reason": "x"}),
    (f"{ADMIN}/ordersdeadletter/purge/", "admin", {"reason": "x", "confirm_name": "q"}),
    (f"{ADMIN}/streamfailure/purge/", "admin", {"reason": "x", "confirm_name": "q"}),
]
RANK = {role: n for n, role in enumerate(ROLES)}


def test_the_roles_migration_made_the_three_groups_with_their_permissions(db: None):
    perms = {
        g.name: {f"{p.content_type.app_label}.{p.codename}" for p in g.permissions.all()}
        for g in Group.objects.filter(name__in=ROLES)
    }
    assert set(perms) == set(ROLES)
    assert "operations.view_ordersdeadletter" in perms["viewer"]
    assert "operations.view_auditlogentry" in perms["viewer"]
    assert not {p for p in perms["viewer"] if not p.split(".")[1].startswith("view_")}
    assert perms["viewer"] < perms["operator"] < perms["admin"]
    assert {"operations.replay_deadletters", "operations.delete_deadletter"} <= perms["operator"]
    assert "operations.purge_deadletterqueue" not in perms["operator"]
    assert {"operations.purge_deadletterqueue", "auth.change_user"} <= perms["admin"]


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_visitors_get_the_login_page(db: None, path: str):
    response = Client().get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("path", PAGES)
def test_non_staff_users_get_the_login_page(customer_user: Any, path: str):
    client = Client()
    client.force_login(customer_user)
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/?next=")


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("role", ROLES)
def test_every_role_may_open_every_page(role_client: Any, role: str, path: str):
    response = role_client(role).get(path)
    assert response.status_code == 200, response.content[:500]


def test_staff_without_a_role_are_refused_every_page(db: None):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="norole", is_staff=True)
    client = Client()
    client.force_login(user)
    for path in PAGES:
        assert client.get(path).status_code == 403, path


@pytest.mark.parametrize("role", ROLES)
def test_the_queue_page_shows_only_the_buttons_of_the_role(role_client: Any, role: str):
    page = role_client(role).get(f"{ADMIN}/ordersdeadletter/").content.decode()
    assert 'id="list-rows"' in page  # everyone may look
    assert ('id="replay-all"' in page) == (RANK[role] >= RANK["operator"])
    assert ('id="purge"' in page) == (role == "admin")


@pytest.mark.parametrize(("path", "least", "data"), ACTIONS)
@pytest.mark.parametrize("role", ROLES)
def test_each_action_is_refused_below_its_role(
    role_client: Any, role: str, path: str, least: str, data: dict[str, str]
):
    response = csrf_post(role_client(role), path, data)
    if RANK[role] < RANK[least]:
        assert response.status_code == 403
        assert not AuditLogEntry.objects.exists()
        assert not ReplayJob.objects.exists()
    else:
        # Allowed: a confirmation page or a form with errors, never a refusal.
        assert response.status_code in (200, 302)


@pytest.mark.parametrize("path", [p for p, _, _ in ACTIONS])
def test_a_post_without_its_csrf_token_is_refused(role_client: Any, path: str):
    response = role_client("admin").post(path, {"reason": "x"})
    assert response.status_code == 403
    assert b"CSRF" in response.content


def test_no_page_changes_anything_on_get(role_client: Any):
    client = role_client("admin")
    for path in [f"{ADMIN}/ordersdeadletter/purge/", f"{ADMIN}/ordersdeadletter/replay/"]:
        assert client.get(path, {"confirm_name": "q", "reason": "x"}).status_code == 200
    assert not AuditLogEntry.objects.exists()
    assert not ReplayJob.objects.exists()


def test_a_role_group_that_is_gone_comes_back_on_the_next_migrate(db: None):
    from operations.roles import restore_missing_roles

    Group.objects.filter(name="operator").delete()
    Group.objects.get(name="viewer").permissions.clear()  # an admin's own change
    restore_missing_roles()
    assert Group.objects.get(name="operator").permissions.filter(codename="replay_deadletters")
    assert not Group.objects.get(name="viewer").permissions.exists()


@pytest.mark.django_db(transaction=True)
def test_the_role_groups_survive_a_flush():
    from django.core.management import call_command

    call_command("flush", interactive=False, verbosity=0)
    assert set(Group.objects.values_list("name", flat=True)) >= set(ROLES)
    assert Group.objects.get(name="viewer").permissions.filter(codename="view_order").exists()


@pytest.mark.parametrize("role", ROLES)
def test_a_replay_jobs_cancel_is_hidden_and_refused_for_a_viewer(role_client: Any, role: str):
    job = ReplayJob.objects.create(queue="orders-dlq", actor="someone", state="queued")
    client = role_client(role)
    page = client.get(f"{ADMIN}/replayjob/{job.pk}/change/").content.decode()
    response = csrf_post(client, f"{ADMIN}/replayjob/{job.pk}/cancel/")
    job.refresh_from_db()
    if role == "viewer":
        assert 'id="job-cancel"' not in page
        assert response.status_code == 403 and job.state == "queued"
        assert csrf_post(client, f"{ADMIN}/replayjob/{job.pk}/resume/").status_code == 403
    else:
        assert 'id="job-cancel"' in page
        assert response.status_code == 302 and job.state == "cancelled"
