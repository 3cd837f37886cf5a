"""The dead-letter queues' admin pages and `manage.py replay_dlq` on the running local runtime:
look at the queues without consuming them, replay (all, some, filtered, a few), cancel, resume,
delete, purge. Staff here are operators (the roles migration's group) unless a test says."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from kombu.exceptions import OperationalError

from operations.jobs import create_replay_job, run_replay_job
from operations.models import AuditLogEntry, ReplayJob, ReplayJobMessage
from operations.tasks import replay_dlq
from pipeline import aws, wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.dlq import SWEEP_FALLBACK
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus
from tests.integration.ops.conftest import drain, last_audit
from tests.integration.ops.orders import make_item, unique
from tests.integration.ops.test_orders import stranded_order, wait_for_status

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

Outcome = AuditLogEntry.Outcome
ORDERS_DLQ = ReplayJob.Queue.ORDERS_DLQ
STREAM_FAILURES = ReplayJob.Queue.STREAM_FAILURES


# Orders order_in wrote, deleted after each test of this module (forget_orders).
MADE: list[str] = []


QUEUE_PAGE = "/admin/operations/ordersdeadletter/"
STREAM_PAGE = "/admin/operations/streamfailure/"


@pytest.fixture
def staff_user(db: None) -> Any:
    """A staff member in the operator group: may look, replay and delete, not purge."""
    user = get_user_model().objects.create_user(username=unique("operator"), is_staff=True)
    user.groups.add(Group.objects.get(name="operator"))
    return user


def look(client: Client, page: str = QUEUE_PAGE) -> str:
    """Ask for a look at a queue's messages (the POST of its "Look at messages" button)."""
    return client.post(page, {"_list": "1"}).content.decode()


def rows_of(page: str) -> dict[str, str]:
    """message id -> its row's HTML on a queue page."""
    return dict(re.findall(r'<tr data-pk="([^"]+)">(.*?)</tr>', page, re.S))


def job_page(job: ReplayJob, suffix: str = "change/") -> str:
    return f"/admin/operations/replayjob/{job.pk}/{suffix}"


@pytest.fixture(autouse=True)
def quick_replays(settings: Any) -> None:
    """Replays that end one second after the queue is empty, not five (the long poll)."""
    settings.OPS_REPLAY_WAIT_SECONDS = 1


@pytest.fixture(autouse=True)
def forget_orders() -> Iterator[None]:
    """The orders a test wrote are deleted after it: RESERVED ones left behind would be sent
    through the pipeline by later tests' stranded-order sweeps."""
    yield
    if MADE:
        store = wiring.dynamo_store()
        for order_id in MADE:
            store.client.delete_item(TableName=store.orders_table, Key={"OrderId": {"S": order_id}})
        MADE.clear()


def order_in(status: OrderStatus) -> Order:
    """An order in the running system that the stream leaves alone (not a new PENDING one)."""
    store = wiring.dynamo_store()
    if status == OrderStatus.RESERVED:
        order = stranded_order(store, make_item(store))
    else:
        order = replace(
            Order.new(customer_name=unique("Dead Letter"), lines=[OrderLine("laptop", 1)]),
            status=status,
            attempt=1,
        )
        store.order_put_new(order)
    MADE.append(order.order_id)
    return order


def request_for(order: Order, attempt: int = 1) -> str:
    return json.dumps({"OrderId": order.order_id, "Attempt": attempt})


def fill(dlq: SqsQueue) -> dict[str, str]:
    """Three dead letters a replay sends back: requests for RESERVED orders (the last one for
    an attempt the order has not reached, which is sent too). Return message id -> body."""
    bodies = [request_for(order_in(OrderStatus.RESERVED)) for _ in range(2)]
    bodies.append(request_for(order_in(OrderStatus.RESERVED), attempt=2))
    return {dlq.send_raw(body): body for body in bodies}


def fill_mixed(dlq: SqsQueue) -> dict[str, str]:
    """Three dead letters: a request for a RESERVED order (a replay sends it), one for a
    CANCELLED order (skipped), and an unreadable body (left). Return message id -> body."""
    bodies = [
        request_for(order_in(OrderStatus.RESERVED)),
        request_for(order_in(OrderStatus.CANCELLED), attempt=2),
        "not json at all " + uuid.uuid4().hex,
    ]
    return {dlq.send_raw(body): body for body in bodies}


def fill_reserved(dlq: SqsQueue, count: int) -> dict[str, str]:
    """`count` dead letters for RESERVED orders (each one a replay sends)."""
    bodies = [request_for(order_in(OrderStatus.RESERVED)) for _ in range(count)]
    return {dlq.send_raw(body): body for body in bodies}


def receive_counts(queue: SqsQueue) -> dict[str, int]:
    """Each message's receive count as the next receive reports it (then released)."""
    seen: dict[str, Any] = {}
    while batch := queue.receive(max_messages=10, wait_seconds=1, visibility=30):
        seen.update({m.message_id: m for m in batch})
    queue.release(list(seen.values()))
    return {message_id: m.receive_count for message_id, m in seen.items()}


def replay(
    client: Client, path: str = QUEUE_PAGE + "replay/", **data: Any
) -> tuple[ReplayJob, str]:
    """Post a replay of all (or the filtered) messages, or with `message` the selected ones
    (the changelist's action, confirmed); follow it to the job page; return job and page."""
    if "message" in data:
        selected = data.pop("message")
        data = {"action": "replay_selected", "_selected_action": selected, "post": "yes", **data}
        path = path.removesuffix("replay/")
    data.pop("all", None)
    response = client.post(path, {"reason": "outage over", **data}, follow=True)
    assert response.status_code == 200
    found = re.search(r"/replayjob/([0-9a-f-]+)/change/", response.redirect_chain[-1][0])
    return ReplayJob.objects.get(pk=found.group(1)), response.content.decode()


def counts(job: ReplayJob) -> tuple[int, int, int, int]:
    job.refresh_from_db()
    return job.sent, job.skipped, job.left, job.failed


def visible(queue: SqsQueue) -> int:
    return queue.depth()["visible"]


@pytest.fixture
def stream_failures(runtime_env: dict[str, str]) -> Iterator[SqsQueue]:
    """The runtime's stream-failure queue, emptied before and after the test."""
    queue = SqsQueue(runtime_env["STREAM_FAILURE_QUEUE_URL"])
    drain(queue)
    yield queue
    drain(queue)


# -- Looking: nothing is received unless staff ask --------------------------------------------


def test_the_dlq_page_shows_depth_and_age_and_receives_nothing(staff: Client, dlq: SqsQueue):
    # Given three messages in the DLQ, never received
    messages = fill_mixed(dlq)

    # When staff open the DLQ page, twice
    page = staff.get(QUEUE_PAGE).content.decode()
    staff.get(QUEUE_PAGE)

    # Then it shows the depth, says the oldest message's age is unknown (CloudWatch has no
    # such metric locally), offers to look, and lists no message
    assert "3</strong> messages waiting" in page
    assert "Oldest message:" in page and "unknown" in page
    assert 'id="list-rows"' in page and 'method="post"' in page
    assert "data-pk=" not in page
    # And no message was received: the next receive is each one's first
    assert receive_counts(dlq) == dict.fromkeys(messages, 1)


def test_looking_lists_each_message_with_its_order_and_what_a_replay_would_do(
    staff: Client, dlq: SqsQueue
):
    # Given three messages in the DLQ
    messages = fill_mixed(dlq)

    # When staff ask to look at them
    page = look(staff)

    # Then each shows with its order, that order's status now and the replay's verdict
    rows = rows_of(page)
    assert set(rows) == set(messages)
    reserved_id, cancelled_id, junk_id = messages
    assert "<td>RESERVED</td>" in rows[reserved_id] and "send it" in rows[reserved_id]
    assert "skip it: the order is CANCELLED now" in rows[cancelled_id]
    assert "(attempt 2)" in rows[cancelled_id]
    assert "none in body" in rows[junk_id]
    for row in rows.values():
        assert re.search(r"<td>1</td>\s*<td>\w+", row)  # received once, and when sent
    # And they are all still there, visible, each received once more (as the page says)
    assert dlq.depth() == {"visible": 3, "in_flight": 0, "delayed": 0}
    assert "adds one to every listed message" in page
    assert receive_counts(dlq) == dict.fromkeys(messages, 2)


def test_looking_by_get_lists_nothing(staff: Client, dlq: SqsQueue):
    messages = fill(dlq)
    page = staff.get(QUEUE_PAGE, {"_list": "1"}).content.decode()
    assert "data-pk=" not in page
    assert receive_counts(dlq) == dict.fromkeys(messages, 1)


def test_looking_is_refused_while_a_replay_of_the_queue_runs(staff: Client, dlq: SqsQueue):
    # Given three messages and a replay of the DLQ running
    messages = fill_mixed(dlq)
    job = ReplayJob.objects.create(queue=ORDERS_DLQ, state="running", actor="worker")

    # When staff ask to look
    page = look(staff)

    # Then the page refuses, links the replay, and no message was received
    assert "messages are not listed while it runs" in page
    assert job_page(job) in page
    assert "data-pk=" not in page
    assert receive_counts(dlq) == dict.fromkeys(messages, 1)


def test_with_the_dlq_unreachable_the_page_says_so(
    staff: Client, db: None, monkeypatch: pytest.MonkeyPatch, dead_endpoint: str
):
    # Given a DLQ URL where nothing answers
    monkeypatch.setenv("ORDERS_DLQ_URL", f"{dead_endpoint}/123456789012/dlq")

    # When staff open the DLQ page
    response = staff.get(QUEUE_PAGE)

    # Then it renders, with the error where the depth (and the oldest age) would be
    assert response.status_code == 200
    assert response.content.decode().count("EndpointConnectionError") >= 2


# -- Replaying (the job runs in this process: CELERY_TASK_ALWAYS_EAGER) -----------------------


def test_replaying_all_sends_what_can_go_skips_moved_on_orders_and_leaves_the_rest(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue, staff_user: Any
):
    # Given a request for a reserved order, one for a cancelled order and an unreadable body
    messages = fill_mixed(dlq)
    reserved_id, cancelled_id, junk_id = messages

    # When staff confirm "replay all"
    confirm = staff.get(QUEUE_PAGE + "replay/").content.decode()
    job, page = replay(staff, all="1")

    # Then the confirmation counted them, and the job page shows exact counts
    assert "about <strong>3</strong> visible messages" in confirm
    assert "Replay finished: 1 moved, 0 failed, 1 skipped, 1 left." in page
    assert (job.state, *counts(job), job.total) == ("succeeded", 1, 1, 1, 0, 3)
    # And only the reserved order's request went to the Orders queue, unchanged; the cancelled
    # one's is gone (with its reason and body on the job); the unreadable one is still in the DLQ
    assert drain(scratch_queue) == [messages[reserved_id]]
    left = dlq.receive(max_messages=10, wait_seconds=1, visibility=0)
    assert [m.body for m in left] == [messages[junk_id]]
    skipped = ReplayJobMessage.objects.get(job=job, message_id=cancelled_id)
    assert (skipped.outcome, skipped.reason, skipped.body) == (
        "skipped",
        "the order is CANCELLED now",
        messages[cancelled_id],
    )
    assert "the order is CANCELLED now" in page and "not a fulfilment request" in page
    # And the audit log has the counts
    entry = last_audit()
    assert (entry.action, entry.outcome, entry.actor, entry.reason) == (
        "dlq_replay",
        Outcome.SUCCEEDED,
        staff_user.username,
        "outage over",
    )
    assert [entry.detail[k] for k in ("sent", "skipped", "left", "failed")] == [1, 1, 1, 0]


def test_replaying_selected_messages_sends_only_those_and_leaves_the_rest_visible(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three replayable messages, one of them selected on the page
    messages = fill_reserved(dlq, 3)
    chosen = list(messages)[1]
    action = {"action": "replay_selected", "_selected_action": chosen}
    confirm = staff.post(QUEUE_PAGE, action).content.decode()

    # When staff confirm the replay of the selection the confirmation page carries
    found = r'<input type="hidden" name="_selected_action" value="([^"]+)">'
    carried = re.findall(found, confirm)
    job, _ = replay(staff, message=carried)

    # Then only it was sent; the others are visible in the DLQ at once
    assert chosen in confirm
    assert job.sent == 1 and job.message_ids == [chosen]
    assert drain(scratch_queue) == [messages[chosen]]
    assert dlq.depth() == {"visible": 2, "in_flight": 0, "delayed": 0}


def test_filters_choose_the_messages_of_one_order(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three replayable messages
    messages = fill_reserved(dlq, 3)
    wanted = json.loads(list(messages.values())[2])["OrderId"]

    # When staff replay all those for one order, received at least once before
    job, _ = replay(staff, all="1", order_id=wanted, min_receives="1")

    # Then only its message was sent; the other two were passed over and stay
    assert (job.sent, job.passed, job.filters) == (1, 2, {"order_id": wanted, "min_receives": 1})
    assert [json.loads(b)["OrderId"] for b in drain(scratch_queue)] == [wanted]
    assert visible(dlq) == 2


def test_a_replay_limit_stops_after_that_many(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three replayable messages
    fill_reserved(dlq, 3)

    # When staff replay all with a limit of 2
    job, _ = replay(staff, all="1", limit="2")

    # Then two were sent and the third is still waiting, visible
    assert counts(job) == (2, 0, 0, 0)
    assert len(drain(scratch_queue)) == 2
    assert dlq.depth() == {"visible": 1, "in_flight": 0, "delayed": 0}


def test_a_replay_that_cannot_send_leaves_every_message_in_the_dlq(
    staff: Client,
    dlq: SqsQueue,
    runtime_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
):
    # Given three replayable messages, and an Orders queue URL that names no queue
    messages = fill_reserved(dlq, 3)
    monkeypatch.setenv(
        "ORDERS_QUEUE_URL", f"{runtime_env['AWS_ENDPOINT_URL']}/123456789012/no-such-queue"
    )

    # When staff replay all
    job, page = replay(staff, all="1")

    # Then nothing was sent, the page says so, and all three are in the DLQ, visible again
    assert counts(job) == (0, 0, 0, 3)
    assert "Replay finished: 0 moved, 3 failed, 0 skipped." in page
    assert "still in the queue" in page
    assert dlq.depth() == {"visible": 3, "in_flight": 0, "delayed": 0}
    assert sorted(m.body for m in dlq.receive(max_messages=10, visibility=0)) == sorted(
        messages.values()
    )
    # And the audit log records the failure with its counts
    entry = last_audit()
    assert (entry.outcome, entry.detail["failed"]) == (Outcome.FAILED, 3)


def test_a_replay_needs_a_reason_a_selection_and_a_rate_sqs_allows(staff: Client, dlq: SqsQueue):
    # Given messages
    fill(dlq)

    # When "replay selected" is used with nothing selected
    chosen_none = {"action": "replay_selected", "post": "yes", "reason": "x"}
    response = staff.post(QUEUE_PAGE, chosen_none, follow=True)

    # Then staff are sent back to choose
    assert "Items must be selected in order to perform actions" in response.content.decode()

    # When a replay is posted without a reason, or faster than SQS's own redrive goes
    no_reason = staff.post(QUEUE_PAGE + "replay/", {"reason": ""}).content.decode()
    too_fast = staff.post(QUEUE_PAGE + "replay/", {"reason": "x", "rate": "501"})

    # Then no job is made and nothing moves
    assert "This field is required." in no_reason
    assert "less than or equal to 500" in too_fast.content.decode()
    assert not ReplayJob.objects.exists()
    assert visible(dlq) == 3


def test_a_second_replay_of_a_queue_is_refused_while_one_is_unfinished(
    staff: Client, dlq: SqsQueue, monkeypatch: pytest.MonkeyPatch
):
    # Given a replay that waits for a worker
    fill(dlq)
    monkeypatch.setattr(replay_dlq, "apply_async", lambda *args, **kwargs: None)
    first, _ = replay(staff, all="1")

    # When staff start another
    page = staff.post(QUEUE_PAGE + "replay/", {"reason": "again"}, follow=True).content.decode()

    # Then it is refused, naming the first, and only one job exists
    assert first.state == "queued"
    assert "Another replay of this queue is queued" in page
    assert ReplayJob.objects.count() == 1


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
    assert 'id="job-resume"' in page  # a failed job can be queued again
    assert visible(dlq) == 3
    assert last_audit().outcome == Outcome.FAILED


def test_the_job_progress_is_served_as_json(staff: Client, dlq: SqsQueue, scratch_queue):
    # Given a finished replay
    fill_mixed(dlq)
    job, _ = replay(staff, all="1")

    # When its page polls the progress URL
    progress = staff.get(job_page(job, "progress/")).json()

    # Then it has the state and the counts
    assert progress == {
        "id": str(job.pk),
        "queue": "orders-dlq",
        "state": "succeeded",
        "done": True,
        "stale": False,
        "total": 3,
        "sent": 1,
        "moved": 1,
        "skipped": 1,
        "left": 1,
        "failed": 0,
        "passed": 0,
        "rate": 100.0,
        "runs": 1,
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
    assert job.sent == 1
    shipped = wait_for_status(store, order.order_id, OrderStatus.SHIPPED)
    assert shipped.shipment["TrackingNumber"]


# -- Cancelling, stale jobs, resuming ---------------------------------------------------------


def test_a_queued_replay_is_cancelled_at_once_and_never_runs(
    staff: Client, dlq: SqsQueue, monkeypatch: pytest.MonkeyPatch
):
    # Given a replay waiting for a worker
    fill(dlq)
    monkeypatch.setattr(replay_dlq, "apply_async", lambda *args, **kwargs: None)
    job, page = replay(staff, all="1")
    assert 'id="job-cancel"' in page

    # When staff cancel it, and a worker then gets its task
    cancelled = staff.post(job_page(job, "cancel/"), follow=True).content.decode()
    run_replay_job(job.pk)

    # Then it is cancelled, nothing ran, and the audit log says who cancelled it
    job.refresh_from_db()
    assert job.state == "cancelled" and job.runs == 0
    assert "Replay cancelled." in cancelled
    assert visible(dlq) == 3
    assert last_audit().action == "dlq_replay_cancel"


@pytest.mark.django_db(transaction=True)
def test_a_running_replay_stops_between_batches_when_cancelled(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given twelve replayable messages and a replay of two a second running in a worker thread
    messages = fill_reserved(dlq, 12)
    job = create_replay_job(user=None, reason="slow", rate=2, dispatch=False)

    def worker() -> None:
        try:
            run_replay_job(job.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 30
    while ReplayJob.objects.get(pk=job.pk).sent < 2:
        assert time.monotonic() < deadline, "the replay did not start"
        time.sleep(0.1)

    # When staff cancel it
    page = staff.post(job_page(job, "cancel/"), follow=True).content.decode()
    thread.join(timeout=30)

    # Then it was cancelling until the worker saw it, and it stopped after the batch it was on
    assert "Cancelling: the worker stops after the batch it is on." in page
    job.refresh_from_db()
    assert job.state == "cancelled"
    assert 2 <= job.sent < 12
    # And what it sent is in the Orders queue, the rest visible in the DLQ: none lost, none twice
    sent = drain(scratch_queue)
    assert len(sent) == job.sent
    assert dlq.depth() == {"visible": 12 - job.sent, "in_flight": 0, "delayed": 0}
    assert sorted(sent + drain(dlq)) == sorted(messages.values())


def test_a_replay_whose_worker_went_quiet_is_stale_and_can_be_resumed(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue, monkeypatch: pytest.MonkeyPatch
):
    # Given a replay that a worker claimed and then went silent on (its row not written for
    # longer than OPS_REPLAY_STALE_SECONDS)
    messages = fill_mixed(dlq)
    with monkeypatch.context() as patched:
        patched.setattr(replay_dlq, "apply_async", lambda *args, **kwargs: None)
        job, _ = replay(staff, all="1")
    ReplayJob.objects.filter(pk=job.pk).update(
        state="running", lease="dead-worker", runs=1, started_at=timezone.now()
    )
    long_ago = timezone.now() - timedelta(minutes=5)
    ReplayJob.objects.filter(pk=job.pk).update(updated_at=long_ago)

    # When staff open its page, and the DLQ's
    page = staff.get(job_page(job)).content.decode()
    queue_page = staff.get(QUEUE_PAGE).content.decode()

    # Then both say it looks dead, and offer to resume it
    assert "running (stale)" in page and 'id="job-stale"' in page
    assert 'id="job-resume"' in page
    assert "it looks dead, resume or cancel it" in queue_page

    # When staff resume it (the worker runs it here)
    resumed = staff.post(job_page(job, "resume/"), follow=True).content.decode()

    # Then it ran again and finished, with the counts of the whole queue
    job.refresh_from_db()
    assert (job.state, job.runs, *counts(job)) == ("succeeded", 2, 1, 1, 1, 0)
    assert "Replay finished: 1 moved, 0 failed, 1 skipped, 1 left." in resumed
    assert len(drain(scratch_queue)) == 1
    assert AuditLogEntry.objects.filter(action="dlq_replay_resume").count() == 1
    assert len(messages) == 3


def test_a_run_told_to_stop_queues_its_continuation_which_finishes_the_job(
    db: None, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given 15 replayable messages and a run whose time runs out after its first batch (as a
    # Lambda invocation's would)
    messages = fill_reserved(dlq, 15)
    job = create_replay_job(user=None, reason="x", dispatch=False)
    asked = iter([False, True])

    # When it runs (its continuation is queued, and runs here: CELERY_TASK_ALWAYS_EAGER)
    run_replay_job(job.pk, should_stop=lambda: next(asked, False))

    # Then the job finished in two runs, each message sent once
    job.refresh_from_db()
    assert (job.state, job.runs, job.sent) == ("succeeded", 2, 15)
    assert sorted(drain(scratch_queue)) == sorted(messages.values())


def test_a_job_whose_worker_is_alive_cannot_be_resumed(staff: Client, db: None):
    # Given a running job whose row was written just now
    job = ReplayJob.objects.create(queue=ORDERS_DLQ, state="running", actor="worker", lease="x")

    # When staff try to resume it
    page = staff.post(job_page(job, "resume/"), follow=True).content.decode()

    # Then it is refused, and nothing changed
    assert "only a stale or failed job can be resumed" in page
    job.refresh_from_db()
    assert (job.state, job.lease) == ("running", "x")


# -- Deleting one message ---------------------------------------------------------------------


def test_deleting_a_message_after_confirmation_removes_only_that_one(
    staff: Client, dlq: SqsQueue, staff_user: Any
):
    # Given three messages
    messages = fill_mixed(dlq)
    doomed = next(iter(messages))

    # When staff choose "delete" for it (the confirmation receives nothing) and confirm
    action = {"action": "delete_selected", "_selected_action": doomed}
    confirm = staff.post(QUEUE_PAGE, action).content.decode()
    assert receive_counts(dlq) == dict.fromkeys(messages, 1)
    page = staff.post(
        QUEUE_PAGE, {**action, "post": "yes", "reason": "test order"}, follow=True
    ).content.decode()

    # Then it is gone, and the other two are still there
    assert doomed in confirm and 'name="reason"' in confirm
    assert "Deleted 1 message(s) for good." in page
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
    # Given three messages in the DLQ
    fill(dlq)

    # When staff delete an id that is not in it
    action = {"action": "delete_selected", "_selected_action": "not-a-message", "post": "yes"}
    page = staff.post(QUEUE_PAGE, {**action, "reason": "x"}, follow=True).content.decode()

    # Then it is refused and the DLQ is untouched (and visible at once)
    assert "Refused: message not-a-message is not in the queue" in page
    assert dlq.depth() == {"visible": 3, "in_flight": 0, "delayed": 0}


# -- Purging ----------------------------------------------------------------------------------


def test_purging_needs_the_permission_the_queue_name_and_a_csrf_post(
    staff_user: Any, dlq: SqsQueue, runtime_env: dict[str, str]
):
    # Given three messages, and a staff member without the purge permission
    fill(dlq)
    name = runtime_env["ORDERS_DLQ_URL"].rsplit("/", 1)[-1]
    client = Client()
    client.force_login(staff_user)

    # When they open the purge page, or post a purge with the right name
    page = client.get(QUEUE_PAGE).content.decode()
    denied_get = client.get(QUEUE_PAGE + "purge/")
    denied_post = client.post(QUEUE_PAGE + "purge/", {"confirm_name": name, "reason": "clean up"})

    # Then there is no purge button, both are forbidden, and nothing was purged
    assert 'id="purge"' not in page
    assert (denied_get.status_code, denied_post.status_code) == (403, 403)
    assert visible(dlq) == 3

    # Given the admin role
    staff_user.groups.add(Group.objects.get(name="admin"))
    client.force_login(type(staff_user).objects.get(pk=staff_user.pk))  # permissions reloaded

    # When they post without the CSRF token, then with the wrong name typed
    no_csrf = Client(enforce_csrf_checks=True)
    no_csrf.force_login(type(staff_user).objects.get(pk=staff_user.pk))
    forged = no_csrf.post(QUEUE_PAGE + "purge/", {"confirm_name": name, "reason": "x"})
    wrong = client.post(
        QUEUE_PAGE + "purge/", {"confirm_name": name + "-x", "reason": "clean up"}
    ).content.decode()

    # Then both are refused, and the messages are all there
    assert forged.status_code == 403
    assert "That is not this queue&#x27;s name: nothing was purged." in wrong
    assert visible(dlq) == 3

    # When they type the name exactly
    done = client.post(
        QUEUE_PAGE + "purge/", {"confirm_name": name, "reason": "clean up"}, follow=True
    ).content.decode()

    # Then the queue is empty, the page says so, and the audit log has it
    assert f"Purged {name}: about 3 message(s) deleted" in done
    assert dlq.depth() == {"visible": 0, "in_flight": 0, "delayed": 0}
    entry = last_audit()
    assert (entry.action, entry.outcome, entry.detail["about"]) == ("dlq_purge", "succeeded", 3)

    # When they purge again within the minute
    again = client.post(
        QUEUE_PAGE + "purge/", {"confirm_name": name, "reason": "again"}, follow=True
    ).content.decode()

    # Then SQS's once-a-minute rule is given as the reason
    assert "SQS purges a queue at most once a minute" in again


def test_a_superuser_may_purge(db: None, stream_failures: SqsQueue, runtime_env: dict[str, str]):
    # Given a superuser (no explicit permission) and a message in the stream-failure queue
    admin = get_user_model().objects.create_superuser(username=unique("root"), password="x")
    client = Client()
    client.force_login(admin)
    stream_failures.send_raw("{}")
    name = runtime_env["STREAM_FAILURE_QUEUE_URL"].rsplit("/", 1)[-1]

    # When they purge it with its name
    page = client.post(
        STREAM_PAGE + "purge/", {"confirm_name": name, "reason": "x"}, follow=True
    ).content.decode()

    # Then it is empty
    assert f"Purged {name}" in page
    assert stream_failures.depth()["visible"] == 0


# -- The stream-failure queue -----------------------------------------------------------------


def insert_record_of(order_id: str) -> tuple[str, str, str]:
    """(stream ARN, shard, sequence number) of an order's INSERT in the runtime's stream."""
    streams = aws.client("dynamodbstreams")
    table = wiring.dynamo_store().orders_table
    arn = aws.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while iterator:
                page = streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in page["Records"]:
                    if (
                        record["eventName"] == "INSERT"
                        and record["dynamodb"]["Keys"]["OrderId"]["S"] == order_id
                    ):
                        return arn, shard["ShardId"], record["dynamodb"]["SequenceNumber"]
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        time.sleep(0.5)
    raise AssertionError(f"no INSERT record for {order_id}")


def failure_record(arn: str, shard: str, start: str, end: str, size: int) -> str:
    """The on-failure record the stream mapping writes for a batch it gave up on."""
    return json.dumps(
        {
            "requestContext": {"condition": "RetryAttemptsExhausted", "approximateInvokeCount": 6},
            "version": "1.0",
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": start,
                "endSequenceNumber": end,
                "batchSize": size,
                "streamArn": arn,
            },
        }
    )


def test_the_stream_failure_queue_is_replayed_by_re_driving_its_batches(
    staff: Client, stream_failures: SqsQueue
):
    # Given two failed batches: one whose order the pipeline has handled since, one on a shard
    # the stream no longer has
    order = order_in(OrderStatus.CANCELLED)
    arn, shard, seq = insert_record_of(order.order_id)
    handled = stream_failures.send_raw(failure_record(arn, shard, seq, seq, 1))
    gone = stream_failures.send_raw(
        failure_record(arn, "shardId-00000001700000000000-deadbeef", seq, seq, 1)
    )

    # When staff look at the queue, then replay it all
    looked = look(staff, STREAM_PAGE)
    job, page = replay(staff, STREAM_PAGE + "replay/")

    # Then the listing showed each batch, and the job says what it did with each: the handled
    # batch skipped (nothing PENDING in it), the other left for the PENDING sweep
    assert f"1 record of {shard}, {seq} to {seq}" in looked
    assert (job.queue, *counts(job)) == ("stream-failures", 0, 1, 1, 0)
    assert "Replay finished: 0 re-driven, 0 failed, 1 skipped, 1 left." in page
    assert SWEEP_FALLBACK in page
    rows = {r.message_id: r for r in job.messages.all()}
    assert rows[handled].reason == "no order of the batch is PENDING any more"
    assert rows[gone].detail["source"] == "sweep"
    # And only the batch the stream no longer holds is still in the queue
    still = stream_failures.receive(max_messages=10, wait_seconds=1, visibility=0)
    assert [m.message_id for m in still] == [gone]


def test_an_order_filter_is_refused_for_the_stream_failure_queue(
    staff: Client, stream_failures: SqsQueue
):
    page = staff.post(STREAM_PAGE + "replay/", {"order_id": "o-1", "reason": "x"}).content.decode()
    assert "stream-failure records name no order" in page
    assert not ReplayJob.objects.exists()


# -- The command line -------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("replay_dlq", *args, stdout=out)
    return out.getvalue()


def test_the_command_dry_run_says_what_would_happen_and_moves_nothing(
    db: None, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three messages
    messages = fill_mixed(dlq)
    reserved_id, cancelled_id, junk_id = messages

    # When the command runs with --dry-run
    output = run("--dry-run")

    # Then it says for each what a replay would do, and nothing moved
    assert f"would send {reserved_id} order" in output
    assert f"would skip {cancelled_id}" in output and "the order is CANCELLED now" in output
    assert f"would leave {junk_id}: not a fulfilment request" in output
    assert "Dry run: 3 message(s) looked at; nothing was changed" in output
    assert visible(dlq) == 3
    assert drain(scratch_queue) == []
    assert not AuditLogEntry.objects.exists()


def test_the_command_replays_with_progress_a_limit_and_a_rate(
    db: None, dlq: SqsQueue, scratch_queue: SqsQueue
):
    # Given three replayable messages
    fill_reserved(dlq, 3)

    # When the command replays at most two, at five a second
    output = run("--limit", "2", "--rate", "5", "--reason", "after the fix")

    # Then it printed a line per message sent and the summary
    assert len(re.findall(r"\[\s*\d+\] moved \S+ \(order ", output)) == 2
    assert "Replay finished: 2 moved, 0 failed, 0 skipped." in output
    # And two are in the Orders queue, one still in the DLQ, and the audit log has the counts
    assert len(drain(scratch_queue)) == 2
    assert visible(dlq) == 1
    entry = last_audit()
    assert entry.actor.startswith("manage.py replay_dlq")
    assert (entry.detail["sent"], entry.detail["rate"], entry.reason) == (2, 5.0, "after the fix")


def test_the_command_reports_messages_it_could_not_send(
    db: None, dlq: SqsQueue, runtime_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
):
    # Given replayable messages and an Orders queue that does not exist
    fill_reserved(dlq, 3)
    monkeypatch.setenv(
        "ORDERS_QUEUE_URL", f"{runtime_env['AWS_ENDPOINT_URL']}/123456789012/no-such-queue"
    )

    # When the command replays
    output = run()

    # Then it says they are still in the DLQ, where they are
    assert "Replay finished: 0 moved, 3 failed, 0 skipped." in output
    assert "3 message(s) failed and are still in the queue." in output
    assert visible(dlq) == 3


def test_the_command_resumes_a_stale_job(db: None, dlq: SqsQueue, scratch_queue: SqsQueue):
    # Given a job whose worker died before it did anything
    fill_reserved(dlq, 2)
    job = create_replay_job(user=None, reason="x", dispatch=False)
    ReplayJob.objects.filter(pk=job.pk).update(state="running", lease="gone", runs=1)
    ReplayJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    # When the command resumes it
    output = run("--resume", str(job.pk))

    # Then it finished it
    assert "Replay finished: 2 moved, 0 failed, 0 skipped." in output
    job.refresh_from_db()
    assert (job.state, job.runs) == ("succeeded", 2)


def test_the_command_without_the_pipeline_settings_says_what_to_do(db: None):
    # Given no DLQ in the environment
    # When the command runs
    with pytest.raises(CommandError, match="ORDERS_DLQ_URL is not set: start the local runtime"):
        run()


def test_a_replay_jobs_history_is_its_audit_entries(staff: Client, db: None):
    # Given a queued job that staff cancel
    job = create_replay_job(user=None, reason="x", dispatch=False)
    staff.post(job_page(job, "cancel/"))

    # When they open the job's history
    page = staff.get(job_page(job, "history/")).content.decode()

    # Then the cancel is there, with the job's state before and after
    assert "Cancel a DLQ replay" in page
    assert "&#x27;state&#x27;: &#x27;queued&#x27;" in page
    assert "&#x27;state&#x27;: &#x27;cancelled&#x27;" in page
