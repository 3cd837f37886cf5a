"""The audit log: append-only in PostgreSQL (a trigger), written as an intent before a change
and completed after it (`audited`), browsed, filtered and exported in the admin."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from operations.audit import Action, Outcome, audited, record
from operations.models import AuditLogEntry
from tests.integration.admin.conftest import client_for, csrf_post, member

pytestmark = pytest.mark.integration

AUDIT = "/admin/operations/auditlogentry/"


def entry(**kw: Any) -> AuditLogEntry:
    return record(
        user=None,
        actor=kw.pop("actor", "someone"),
        action=kw.pop("action", Action.INVENTORY_ADJUST),
        outcome=kw.pop("outcome", Outcome.SUCCEEDED),
        **kw,
    )


def refused(sql: str, *params: Any) -> str:
    """Run SQL that the trigger must refuse; return the database's message."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic(), connection.cursor() as c:
        c.execute(sql, params)
    return str(caught.value)


# -- Append-only in the database ---------------------------------------------------------------


def test_the_database_refuses_to_change_or_delete_a_finished_entry(db: None):
    done = entry(obj=("operations.order", "o-1"), before={"status": "A"}, after={"status": "B"})

    assert "append-only" in refused(
        "UPDATE operations_auditlogentry SET actor = 'nobody' WHERE id = %s", done.pk
    )
    assert "append-only" in refused(
        "UPDATE operations_auditlogentry SET outcome = 'failed' WHERE id = %s", done.pk
    )
    assert "append-only" in refused("DELETE FROM operations_auditlogentry WHERE id = %s", done.pk)
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditLogEntry.objects.filter(pk=done.pk).delete()
    done.refresh_from_db()
    assert (done.actor, done.outcome, done.after) == ("someone", "succeeded", {"status": "B"})


def test_a_pending_entry_is_completed_once_and_its_intent_cannot_be_rewritten(db: None):
    pending = entry(outcome=Outcome.PENDING, before={"stock": 1}, after={"stock": 2})

    # What it was about cannot be changed, even while pending
    assert "append-only" in refused(
        "UPDATE operations_auditlogentry SET before = '{}'::jsonb WHERE id = %s", pending.pk
    )
    # Completing it once is allowed; completing it again is not
    with connection.cursor() as c:
        c.execute(
            "UPDATE operations_auditlogentry SET outcome = 'succeeded', completed_at = now() "
            "WHERE id = %s",
            [pending.pk],
        )
    assert "append-only" in refused(
        "UPDATE operations_auditlogentry SET outcome = 'failed' WHERE id = %s", pending.pk
    )


def test_deleting_a_user_keeps_their_entries_with_their_name(db: None):
    user = get_user_model().objects.create_user(username="leaver")
    kept = record(user=user, action=Action.ORDER_CANCEL, outcome=Outcome.SUCCEEDED)
    user.delete()
    kept.refresh_from_db()
    assert (kept.user_id, kept.actor) == (None, "leaver")


# -- audited(): intent first, then the outcome ------------------------------------------------


def test_audited_writes_the_intent_before_the_change_and_completes_it_after(db: None):
    user = member("operator")
    with audited(
        user,
        Action.INVENTORY_ADJUST,
        ("operations.inventoryitem", "lamp"),
        before={"stock": 5},
        after={"stock": 7},
        reason="recount",
    ) as intent:
        during = AuditLogEntry.objects.get(pk=intent.pk)
        intent.message = "Stock 5 -> 7."
    after = AuditLogEntry.objects.get(pk=intent.pk)

    assert (during.outcome, during.completed_at, during.before) == ("pending", None, {"stock": 5})
    assert (after.outcome, after.message, after.after) == (
        "succeeded",
        "Stock 5 -> 7.",
        {"stock": 7},
    )
    assert (after.object_type, after.object_id, after.actor) == (
        "operations.inventoryitem",
        "lamp",
        user.username,
    )
    assert after.completed_at is not None


def test_audited_marks_a_refusal_and_a_failure_and_lets_them_go_on_up(db: None):
    with (
        pytest.raises(LookupError),
        audited(None, Action.DLQ_DELETE, None, refusals=(LookupError,)),
    ):
        raise LookupError("message m-1 is not in the queue")
    with pytest.raises(ConnectionError), audited(None, Action.DLQ_DELETE, None):
        raise ConnectionError("endpoint unreachable")

    refusal, failure = AuditLogEntry.objects.order_by("id")
    assert (refusal.outcome, refusal.message) == ("refused", "message m-1 is not in the queue")
    assert failure.outcome == "failed"
    assert failure.detail["error"] == "ConnectionError: endpoint unreachable"


# -- The admin: browse, filter, export; nothing to add, change or delete ------------------------


def test_the_admin_filters_by_user_action_object_and_date_and_exports_what_it_shows(db: None):
    viewer = member("viewer")
    operator = member("operator")
    record(
        user=operator,
        action=Action.DLQ_PURGE,
        outcome="succeeded",
        obj=("operations.streamfailure", "q"),
    )
    old = entry(action=Action.ORDER_CANCEL, obj=("operations.order", "o-9"), before={"a": "=1+1"})
    assert old.pk

    client = client_for(viewer)
    by_user = client.get(AUDIT, {"user__id__exact": operator.pk}).content.decode()
    by_object = client.get(AUDIT, {"object_type": "operations.order"}).content.decode()
    today = timezone.now()
    by_date = client.get(
        AUDIT, {"at__year": today.year, "at__month": today.month, "at__day": today.day}
    )
    export = client.get(AUDIT + "export.csv", {"object_type": "operations.order"})

    purge_row, cancel_row = 'field-object_id">q<', 'field-object_id">o-9<'
    assert purge_row in by_user and cancel_row not in by_user
    assert cancel_row in by_object and purge_row not in by_object
    assert by_date.status_code == 200 and 'id="export-csv"' in by_date.content.decode()
    rows = list(csv.reader(io.StringIO(b"".join(export.streaming_content).decode())))
    assert rows[0][:5] == ["id", "at", "completed_at", "actor", "action"]
    assert len(rows) == 2 and rows[1][4] == "order_cancel" and rows[1][6] == "o-9"
    # A value a spreadsheet would run as a formula is quoted
    assert rows[1][12] == '{"a": "=1+1"}'
    yesterday = today - timedelta(days=1)
    assert (
        client.get(AUDIT, {"at__day": yesterday.day, "at__month": yesterday.month}).status_code
        == 200
    )


def test_no_role_may_change_or_delete_an_entry_through_the_admin(db: None):
    done = entry()

    admin_client = client_for(member("admin"))
    page = admin_client.get(f"{AUDIT}{done.pk}/change/").content.decode()
    assert 'name="_save"' not in page and "deletelink" not in page
    assert csrf_post(admin_client, f"{AUDIT}{done.pk}/delete/", {"post": "yes"}).status_code == 403
    assert csrf_post(admin_client, f"{AUDIT}{done.pk}/change/", {"actor": "x"}).status_code == 403
    assert csrf_post(admin_client, AUDIT + "add/", {"actor": "x"}).status_code == 403
    assert AuditLogEntry.objects.get(pk=done.pk).actor == "someone"


CRASH = """
import os, django
django.setup()
from operations.audit import Action, audited
with audited(None, Action.INVENTORY_ADJUST, ("operations.inventoryitem", "lamp"),
             before={"stock": 5}, after={"stock": 7}, actor="crasher"):
    os._exit(9)  # the process dies in the middle of the change
"""


@pytest.mark.django_db(transaction=True)
def test_a_process_that_dies_during_the_change_leaves_its_pending_intent(tmp_path: Any):
    # Given a process that writes an intent and dies before the change completes
    import os
    import subprocess
    import sys

    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "portal.settings.test"}
    done = subprocess.run([sys.executable, "-c", CRASH], env=env, timeout=60, check=False)

    # Then it died, and its entry is there, pending, with what it meant to do
    assert done.returncode == 9
    left = AuditLogEntry.objects.get(actor="crasher")
    assert (left.outcome, left.before, left.after, left.completed_at) == (
        "pending",
        {"stock": 5},
        {"stock": 7},
        None,
    )
