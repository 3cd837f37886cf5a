"""/ops/dlq/ and `manage.py replay_dlq`: look at the DLQ, replay (all, some, a few), delete."""

from __future__ import annotations

import io
import json
import re
import uuid
from dataclasses import replace
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from kombu.exceptions import OperationalError

from operations.models import AuditLogEntry, ReplayJob
from operations.tasks import replay_dlq
from pipeline import wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus
from tests.integration.ops.conftest import drain, last_audit
from tests.integration.ops.orders import make_item, unique
from tests.integration.ops.test_orders import stranded_order, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

Outcome = AuditLogEntry.Outcome


def cancelled_order() -> Order:
    """An order in the running system that the stream leaves alone (not a new PENDING one)."""
    order = replace(
        Order.new(customer_name=unique("Dead Letter"), lines=[OrderLine("laptop", 1)]),
        status=OrderStatus.CANCELLED,
    )
    wiring.dynamo_store().order_put_new(order)
    return order


def fill(dlq: SqsQueue) -> dict[str, str]:
    """Three dead letters: two fulfilment requests for real orders and one unreadable body.
    Return message id -> body."""
    bodies = [
        json.dumps({"OrderId": cancelled_order().order_id, "Attempt": 1}),
        json.dumps({"OrderId": cancelled_order().order_id, "Attempt": 2}),
        "not json at all " + uuid.uuid4().hex,
    ]
    return {dlq.send_raw(body): body for body in bodies}


def replay(client: Client, **data: Any) -> tuple[ReplayJob, str]:
    """Post a replay, follow it to the job page; return the job and the page."""
    response = client.post("/ops/dlq/replay/", {"reason": "outage over", **data}, follow=True)
    assert response.status_code == 200
    job_id = re.search(r"/ops/dlq/jobs/([0-9a-f-]+)/", response.redirect_chain[-1][0]).group(1)
    return ReplayJob.objects.get(pk=job_id), response.content.decode()


def visible(queue: SqsQueue) -> int:
    return queue.depth()["visible"]


# -- Looking ----------------------------------------------------------------------------------


def test_the_dlq_page_lists_messages_with_their_orders_and_leaves_them_there(
    staff: Client, dlq: SqsQueue
):
    # Given three messages in the DLQ
    messages = fill(dlq)

    # When staff open the DLQ page
    page = staff.get("/ops/dlq/").content.decode()

    # Then each message shows with its receive count and first-receive time
    rows = re.findall(r'<tr class="dlq-row" data-message-id="([^"]+)">(.*?)</tr>', page, re.S)
    assert {message_id for message_id, _ in rows} == set(messages)
    for message_id, row in rows:
        body = json.loads(messages[message_id]) if messages[message_id][0] == "{" else None
        if body:
            # the order it names, linked, with its status now
            assert f'href="/ops/orders/{body["OrderId"]}/"' in row
            assert "ops-status-CANCELLED" in row
        else:
            assert "none in body" in row
        assert re.search(r"<td>1</td>\s*<td>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</td>", row)
    assert "(attempt 2)" in page
    assert "3</strong> messages waiting" in page
    # And the messages are all still waiting in the DLQ, visible at once
    assert dlq.depth() == {"visible": 3, "in_flight": 0, "delayed": 0}


def test_with_the_dlq_unreachable_the_page_says_so(
    staff: Client, db: None, monkeypatch: pytest.MonkeyPatch, dead_endpoint: str
):
    # Given a DLQ URL where nothing answers
    monkeypatch.setenv("ORDERS_DLQ_URL", f"{dead_endpoint}/123456789012/dlq")

    # When staff open the DLQ page
    response = staff.get("/ops/dlq/")

    # Then it renders, with the error where the depth and the messages would be
    assert response.status_code == 200
    assert response.content.decode().count("EndpointConnectionError") >= 2


# -- Replaying (the job runs in this process: CELERY_TASK_ALWAYS_EAGER) -----------------------


def test_replaying_all_moves_every_message_and_shows_the_summary(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue, staff_user: Any
):
    # Given three messages in the DLQ
    messages = fill(dlq)

    # When staff confirm "replay all"
    confirm = staff.get("/ops/dlq/replay/?all=1").content.decode()
    job, page = replay(staff, all="1")

    # Then the confirmation counted them, and the job page shows the summary
    assert "about <strong>3</strong> now" in confirm
    assert "Replay finished: 3 moved, 0 failed, 0 skipped." in page
    assert (job.state, job.moved, job.failed, job.skipped, job.total) == ("succeeded", 3, 0, 0, 3)
    # And the Orders queue got the three bodies unchanged, and the DLQ is empty
    assert sorted(drain(scratch_queue)) == sorted(messages.values())
    assert dlq.depth()["visible"] == dlq.depth()["in_flight"] == 0
    # And the audit log has the counts
    entry = last_audit()
    assert (entry.action, entry.outcome, entry.actor, entry.reason) == (
        "dlq_replay",
        Outcome.SUCCEEDED,
        staff_user.username,
        "outage over",
    )
    assert (entry.detail["moved"], entry.detail["failed"], entry.detail["skipped"]) == (3, 0, 0)


def test_replaying_selected_messages_moves_only_those_and_leaves_the_rest_visible(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three messages, one of them selected on the page
    messages = fill(dlq)
    chosen = next(iter(messages))
    confirm = staff.get("/ops/dlq/replay/", {"message": chosen}).content.decode()

    # When staff confirm the replay of the selection the confirmation page carries
    carried = re.findall(r'<input type="hidden" name="message" value="([^"]+)">', confirm)
    job, page = replay(staff, message=carried)

    # Then only that one moved; the others were skipped and are visible in the DLQ at once
    assert chosen in confirm
    assert "Replay finished: 1 moved, 0 failed, 2 skipped." in page
    assert drain(scratch_queue) == [messages[chosen]]
    assert dlq.depth() == {"visible": 2, "in_flight": 0, "delayed": 0}
    assert job.message_ids == [chosen]


def test_a_replay_limit_stops_after_that_many(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three messages
    fill(dlq)

    # When staff replay all with a limit of 2
    job, _ = replay(staff, all="1", limit="2")

    # Then two moved and the third is still waiting, visible
    assert job.moved == 2
    assert len(drain(scratch_queue)) == 2
    assert dlq.depth() == {"visible": 1, "in_flight": 0, "delayed": 0}


def test_a_replay_that_cannot_send_leaves_every_message_in_the_dlq(
    staff: Client,
    dlq: SqsQueue,
    runtime_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
):
    # Given three messages, and an Orders queue URL that names no queue
    messages = fill(dlq)
    monkeypatch.setenv(
        "ORDERS_QUEUE_URL", f"{runtime_env['AWS_ENDPOINT_URL']}/123456789012/no-such-queue"
    )

    # When staff replay all
    job, page = replay(staff, all="1")

    # Then nothing moved, the page says so, and all three are still in the DLQ, visible again
    assert (job.moved, job.failed) == (0, 3)
    assert "Replay finished: 0 moved, 3 failed, 0 skipped." in page
    assert "still in the dead-letter queue" in page
    assert dlq.depth() == {"visible": 3, "in_flight": 0, "delayed": 0}
    assert sorted(m.body for m in dlq.receive(max_messages=10, visibility=0)) == sorted(
        messages.values()
    )
    # And the audit log records the failure with its counts
    entry = last_audit()
    assert (entry.outcome, entry.detail["failed"]) == (Outcome.FAILED, 3)


def test_a_replay_needs_a_reason_and_a_selection(staff: Client, dlq: SqsQueue):
    # Given a message
    fill(dlq)

    # When "replay selected" is used with nothing selected
    response = staff.get("/ops/dlq/replay/", follow=True)

    # Then staff are sent back to choose
    assert "Select the messages to replay" in response.content.decode()

    # When a replay is posted without a reason
    response = staff.post("/ops/dlq/replay/", {"all": "1", "reason": ""})

    # Then no job is made and nothing moves
    assert "This field is required." in response.content.decode()
    assert not ReplayJob.objects.exists()
    assert visible(dlq) == 3


def test_a_replay_that_cannot_reach_the_broker_fails_at_once_and_says_so(
    staff: Client, dlq: SqsQueue, monkeypatch: pytest.MonkeyPatch
):
    # Given a broker that refuses the job (as kombu does when Redis is down)
    fill(dlq)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused.")

    monkeypatch.setattr(replay_dlq, "apply_async", refuse)

    # When staff start a replay
    job, page = replay(staff, all="1")

    # Then the job is failed with the reason, nothing moved, and the audit log says so
    assert job.state == "failed"
    assert "Replay failed: could not queue the job (OperationalError" in page
    assert visible(dlq) == 3
    assert last_audit().outcome == Outcome.FAILED


def test_the_job_progress_is_served_as_json(staff: Client, dlq: SqsQueue, scratch_queue):
    # Given a finished replay
    fill(dlq)
    job, _ = replay(staff, all="1")

    # When its page polls the progress URL
    progress = staff.get(f"/ops/dlq/jobs/{job.pk}/progress/").json()

    # Then it has the state and the counts
    assert progress == {
        "id": str(job.pk),
        "state": "succeeded",
        "done": True,
        "total": 3,
        "moved": 3,
        "failed": 0,
        "skipped": 0,
        "error": "",
    }


def test_a_replayed_message_takes_its_stranded_order_on_to_shipping(staff: Client, dlq: SqsQueue):
    # Given a RESERVED order whose fulfilment message ended in the DLQ
    store = wiring.dynamo_store()
    order = stranded_order(store, make_item(store))
    dlq.send_json({"OrderId": order.order_id, "Attempt": 1})

    # When staff replay it to the real Orders queue
    job, _ = replay(staff, all="1")

    # Then the pipeline takes it from there: paid and shipped
    assert job.moved == 1
    shipped = wait_for_status(store, order.order_id, OrderStatus.SHIPPED)
    assert shipped.shipment["TrackingNumber"]


# -- Deleting one message ---------------------------------------------------------------------


def test_deleting_a_message_after_confirmation_removes_only_that_one(
    staff: Client, dlq: SqsQueue, staff_user: Any
):
    # Given three messages
    messages = fill(dlq)
    doomed = next(iter(messages))

    # When staff open the delete confirmation and confirm with a reason
    confirm = staff.get(f"/ops/dlq/messages/{doomed}/delete/").content.decode()
    page = staff.post(
        f"/ops/dlq/messages/{doomed}/delete/", {"reason": "test order"}, follow=True
    ).content.decode()

    # Then the confirmation showed its body, it is gone, and the other two are still there
    assert json.loads(messages[doomed])["OrderId"] in confirm
    assert f"Deleted DLQ message {doomed}." in page
    remaining = {m.message_id for m in dlq.receive(max_messages=10, visibility=0)}
    assert remaining == set(messages) - {doomed}
    # And the audit log keeps what was deleted
    entry = last_audit()
    assert (entry.action, entry.reason, entry.detail["body"]) == (
        "dlq_discard",
        "test order",
        messages[doomed],
    )
    assert entry.detail["order_id"] == json.loads(messages[doomed])["OrderId"]


def test_deleting_a_message_that_is_not_there_is_refused(staff: Client, dlq: SqsQueue):
    # Given one message in the DLQ
    fill(dlq)

    # When staff delete an id that is not in it
    page = staff.post(
        "/ops/dlq/messages/not-a-message/delete/", {"reason": "x"}, follow=True
    ).content.decode()

    # Then it is refused and the DLQ is untouched (and visible at once)
    assert "Refused: message not-a-message is not in the queue" in page
    assert dlq.depth() == {"visible": 3, "in_flight": 0, "delayed": 0}


# -- The command line -------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("replay_dlq", *args, stdout=out)
    return out.getvalue()


def test_the_command_dry_run_lists_what_would_move_and_moves_nothing(
    db: None, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three messages
    messages = fill(dlq)

    # When the command runs with --dry-run
    output = run("--dry-run")

    # Then it lists each with its order and status, and nothing moved
    for message_id in messages:
        assert f"would move {message_id}" in output
    assert "CANCELLED" in output
    assert "Dry run: 3 message(s) would be replayed; nothing was changed." in output
    assert visible(dlq) == 3
    assert drain(scratch_queue) == []
    assert not AuditLogEntry.objects.exists()


def test_the_command_replays_with_progress_and_a_limit(
    db: None, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three messages
    fill(dlq)

    # When the command replays at most two
    output = run("--limit", "2", "--reason", "after the fix")

    # Then it printed a line per message moved and the summary
    assert re.search(r"\[1/2\] moved \S+ \(order ", output)
    assert re.search(r"\[2/2\] moved \S+ \(order ", output)
    assert "Replay finished: 2 moved, 0 failed, 0 skipped." in output
    # And two are in the Orders queue, one still in the DLQ, and the audit log has the counts
    assert len(drain(scratch_queue)) == 2
    assert visible(dlq) == 1
    entry = last_audit()
    assert entry.actor.startswith("manage.py replay_dlq")
    assert (entry.detail["moved"], entry.reason) == (2, "after the fix")


def test_the_command_reports_messages_it_could_not_send(
    db: None, dlq: SqsQueue, runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    # Given messages and an Orders queue that does not exist
    fill(dlq)
    monkeypatch.setenv(
        "ORDERS_QUEUE_URL", f"{runtime_env['AWS_ENDPOINT_URL']}/123456789012/no-such-queue"
    )

    # When the command replays
    output = run()

    # Then it says they are still in the DLQ, where they are
    assert "Replay finished: 0 moved, 3 failed, 0 skipped." in output
    assert "3 message(s) could not be sent and are still in the DLQ." in output
    assert visible(dlq) == 3


def test_the_command_without_the_pipeline_settings_says_what_to_do(db: None):
    # Given no DLQ in the environment
    # When the command runs
    with pytest.raises(CommandError, match="ORDERS_DLQ_URL is not set: start the local runtime"):
        run()
