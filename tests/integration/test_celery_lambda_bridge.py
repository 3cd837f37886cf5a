"""Celery on SQS without a worker: tasks published through kombu's SQS transport to the
template's PortalTasksQueue (the local runtime's moto), delivered in Lambda's SQS event shape to
portal.lambda_tasks, retried, dead-lettered, checkpointed and continued."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from operations.audit import Action, Outcome, record
from operations.deadlines import stop_check
from operations.jobs import create_replay_job
from operations.models import AuditLogEntry, ReplayJob
from pipeline.adapters.sqs import SqsQueue
from portal import lambda_tasks
from portal.celery import app
from portal.sqs_broker import sqs_transport_options
from tests.integration.ops.conftest import drain
from tests.integration.ops.test_dlq import fill_reserved

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

QUEUE = "portal"  # the Celery queue predefined_queues maps to PortalTasksQueue


# -- test tasks (registered on the portal's app, run by the bridge in this process) -------------


@app.task(name="tests.bridge.write_row")
def write_row(marker: str) -> str:
    """A task with an effect one can look for: an audit row."""
    record(user=None, actor="bridge test", action=Action.DLQ_REPLAY, outcome=Outcome.SUCCEEDED,
           message=marker)  # fmt: skip
    return marker


@app.task(name="tests.bridge.always_fails")
def always_fails(marker: str) -> None:
    """A task that can never succeed."""
    raise RuntimeError(f"{marker}: the cause was never fixed")


@app.task(name="tests.bridge.retries_once", bind=True)
def retries_once(self: Any, marker: str) -> int:
    """Asks for one retry, two seconds on; succeeds on the next delivery."""
    if self.request.retries == 0:
        raise self.retry(countdown=2)
    write_row(f"{marker} after {self.request.retries} retry")
    return int(self.request.retries)


@app.task(name="tests.bridge.count_steps", bind=True)
def count_steps(self: Any, marker: str, steps: int) -> str:
    """A long job: one audit row per step, resumed from the rows already written; stops when
    its request's deadline says so and sends itself on, as the DLQ replay does."""
    should_stop = stop_check(self.request)
    done = AuditLogEntry.objects.filter(message__startswith=f"{marker} step ").count()
    while done < steps:
        if should_stop is not None and should_stop():
            self.apply_async(args=[marker, steps])
            return "continued"
        time.sleep(0.3)
        write_row(f"{marker} step {done}")
        done += 1
    return "finished"


# -- the queue, the broker and Lambda's poller ------------------------------------------------


@dataclass
class TasksQueue:
    """PortalTasksQueue and its dead-letter queue as the local runtime created them."""

    sqs: Any
    url: str
    arn: str
    dlq_url: str
    # The latest receipt handle of every message received, to empty the queue at the end.
    handles: dict[str, tuple[str, str]] = field(default_factory=dict)

    def receive(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        url = queue_url or self.url
        messages = self.sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        for m in messages:
            self.handles[m["MessageId"]] = (url, m["ReceiptHandle"])
        return messages

    def empty(self) -> None:
        """Delete everything in both queues, in flight or not (PurgeQueue: once a minute)."""
        for url, handle in self.handles.values():
            with contextlib.suppress(Exception):  # gone already, or moved to the DLQ
                self.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=handle, VisibilityTimeout=0
                )
        self.handles.clear()
        for url in (self.dlq_url, self.url):  # the DLQ first: a receive may redrive into it
            while messages := self.receive(url):
                for m in messages:
                    self.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        self.handles.clear()

    def event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """Lambda's SQS event for these received messages (AWS's documented record shape)."""
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m["Attributes"],
                    "messageAttributes": m.get("MessageAttributes", {}),
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": "us-east-1",
                }
                for m in messages
            ]
        }

    def poll(self, remaining_ms: int = 30_000) -> tuple[dict[str, Any] | None, Any]:
        """What the event source mapping does once: receive a batch, invoke the handler, and
        (as a mapping without ReportBatchItemFailures does) delete it all if the function
        returned, leave it all if it raised. Returns (the event, the answer or exception)."""
        messages = self.receive()
        if not messages:
            return None, None
        event = self.event(messages)
        try:
            answer = lambda_tasks.handler(event, Context(remaining_ms))
        except lambda_tasks.TaskBatchFailed as exc:
            return event, exc
        for m in messages:
            self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])
        return event, answer

    def visibility_timeout_passes(self, event: dict[str, Any]) -> None:
        """The queue's 180 s visibility timeout, without waiting for it (for the messages still
        in flight: those the handler deleted are gone)."""
        for r in event["Records"]:
            with contextlib.suppress(self.sqs.exceptions.ReceiptHandleIsInvalid):
                self.sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=r["receiptHandle"], VisibilityTimeout=0
                )

    def counts(self, url: str | None = None) -> tuple[int, int]:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            int(attributes["ApproximateNumberOfMessages"]),
            int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        )


class Context:
    """Lambda's context object, as far as the bridge reads it."""

    def __init__(self, remaining_ms: int):
        self.deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@pytest.fixture
def tasks_queue(runtime_env: dict[str, str]) -> Iterator[TasksQueue]:
    """The runtime's PortalTasksQueue (PORTAL_TASKS_QUEUE_URL, from the template's Outputs) and
    its dead-letter queue, both emptied before and after the test."""
    sqs = boto3.client(
        "sqs",
        endpoint_url=runtime_env["AWS_ENDPOINT_URL"],
        region_name=runtime_env["AWS_REGION"],
        aws_access_key_id=runtime_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=runtime_env["AWS_SECRET_ACCESS_KEY"],
    )
    url = runtime_env["PORTAL_TASKS_QUEUE_URL"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    dlq_url = sqs.get_queue_url(QueueName=redrive["deadLetterTargetArn"].rsplit(":", 1)[-1])[
        "QueueUrl"
    ]
    queue = TasksQueue(sqs, url, attributes["QueueArn"], dlq_url)
    queue.empty()
    yield queue
    queue.empty()


def _reset_pools() -> None:
    # As Celery after a fork: the next publish opens a connection with the current broker.
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


@pytest.fixture
def sqs_broker(tasks_queue: TasksQueue, settings: Any) -> Iterator[TasksQueue]:
    """The portal's Celery app as production settings configure it in AWS: `sqs://` with the
    tasks queue predefined (no ListQueues, no CreateQueue), nothing eager."""
    keys = ("broker_url", "broker_transport_options", "task_default_queue", "task_always_eager")
    saved = {key: app.conf[key] for key in keys}
    app.conf.update(
        broker_url="sqs://",
        broker_transport_options=sqs_transport_options(tasks_queue.url, QUEUE),
        task_default_queue=QUEUE,
        task_always_eager=False,
    )
    settings.CELERY_TASK_DEFAULT_QUEUE = QUEUE
    _reset_pools()
    try:
        yield tasks_queue
    finally:
        app.conf.update(saved)
        _reset_pools()


def rows(marker: str) -> list[str]:
    return list(
        AuditLogEntry.objects.filter(message__startswith=marker)
        .order_by("id")
        .values_list("message", flat=True)
    )


# -- the tests --------------------------------------------------------------------------------


def test_a_task_sent_through_celerys_sqs_transport_runs_in_the_lambda_handler(
    sqs_broker: TasksQueue,
):
    # Given a task sent as the portal sends it (apply_async: kombu's SQS transport)
    marker = f"bridge-{uuid.uuid4().hex[:8]}"
    result = write_row.apply_async(args=[marker])

    # When Lambda's poller receives it and invokes the handler with the SQS event
    event, answer = sqs_broker.poll()

    # Then the handler ran the task in-process: its row is written, nothing failed
    assert event is not None and len(event["Records"]) == 1
    assert answer == {"batchItemFailures": []}
    assert rows(marker) == [marker]
    # And the message is gone, and the result is where a worker would have put it
    assert sqs_broker.counts() == (0, 0)
    assert result.get(timeout=10) == marker


def test_a_failing_task_is_received_again_then_dead_lettered_and_its_batch_mate_runs_once(
    sqs_broker: TasksQueue,
):
    # Given a batch of a task that succeeds and one that always fails
    marker = f"bridge-{uuid.uuid4().hex[:8]}"
    write_row.apply_async(args=[f"{marker} ok"])
    failing = always_fails.apply_async(args=[marker])

    # When the poller delivers them together
    event, raised = sqs_broker.poll()

    # Then the invocation fails, naming the failed message in Lambda's partial batch shape
    assert isinstance(raised, lambda_tasks.TaskBatchFailed)
    assert len(event["Records"]) == 2
    (failed_item,) = raised.response["batchItemFailures"]
    failed_record = next(
        r for r in event["Records"] if r["messageId"] == failed_item["itemIdentifier"]
    )
    assert lambda_tasks.decode_task_message(failed_record["body"]).task_id == failing.id
    # And the task that succeeded ran once and its message was deleted; the failed one waits
    assert rows(f"{marker} ok") == [f"{marker} ok"]
    assert sqs_broker.counts() == (0, 1)

    # When its visibility timeout passes, each time, until SQS has delivered it 5 times
    receives = 1
    sqs_broker.visibility_timeout_passes(event)
    while True:
        event, raised = sqs_broker.poll()
        if event is None:
            break
        receives += 1
        assert isinstance(raised, lambda_tasks.TaskBatchFailed)
        assert event["Records"][0]["attributes"]["ApproximateReceiveCount"] == str(receives)
        sqs_broker.visibility_timeout_passes(event)

    # Then the redrive policy moved it to the dead-letter queue after maxReceiveCount (5)
    assert receives == 5
    (dead,) = sqs_broker.receive(sqs_broker.dlq_url)
    message = lambda_tasks.decode_task_message(dead["Body"])
    assert (message.task, message.task_id, message.args) == (
        "tests.bridge.always_fails",
        failing.id,
        [marker],
    )
    # And the succeeded task never ran again
    assert rows(f"{marker} ok") == [f"{marker} ok"]


def test_a_task_asking_for_a_retry_comes_back_after_its_countdown(sqs_broker: TasksQueue):
    # Given a task that asks for a retry in 2 s on its first run
    marker = f"bridge-{uuid.uuid4().hex[:8]}"
    retries_once.apply_async(args=[marker])

    # When it is delivered, the invocation fails and the message hides for the countdown
    event, raised = sqs_broker.poll()
    assert isinstance(raised, lambda_tasks.TaskBatchFailed)
    assert sqs_broker.poll() == (None, None)  # not back yet

    # Then after the countdown it is delivered again, sees one retry, and succeeds
    time.sleep(2.5)
    event, answer = sqs_broker.poll()
    assert event is not None and answer == {"batchItemFailures": []}
    assert event["Records"][0]["attributes"]["ApproximateReceiveCount"] == "2"
    assert rows(marker) == [f"{marker} after 1 retry"]


def test_a_long_task_stops_before_the_invocations_end_and_continues_in_the_next(
    sqs_broker: TasksQueue,
):
    # Given a job of 6 steps of 0.3 s and invocations with 1.2 s left after the stop margin
    marker = f"bridge-{uuid.uuid4().hex[:8]}"
    count_steps.apply_async(args=[marker, 6])
    remaining_ms = int((lambda_tasks.STOP_MARGIN_S + 1.2) * 1000)

    # When the poller delivers whatever is in the queue until it is empty
    answers = []
    for _ in range(10):
        event, answer = sqs_broker.poll(remaining_ms)
        if event is None:
            break
        answers.append(answer)

    # Then it took several invocations, each one continuing where the last stopped, each step
    # done exactly once, with nothing left in the queue
    assert len(answers) >= 2
    assert all(a == {"batchItemFailures": []} for a in answers)
    assert rows(f"{marker} step ") == [f"{marker} step {i}" for i in range(6)]
    assert sqs_broker.counts() == (0, 0)


def test_a_dlq_replay_job_stops_before_the_invocations_end_and_finishes_in_later_ones(
    sqs_broker: TasksQueue,
    runtime_env: dict[str, str],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
):
    # Given 12 dead letters for RESERVED orders, replayed to a queue of this test's own
    dlq = SqsQueue(runtime_env["ORDERS_DLQ_URL"])
    drain(dlq)
    target_url = sqs_broker.sqs.create_queue(QueueName=f"bridge-target-{uuid.uuid4().hex[:8]}")[
        "QueueUrl"
    ]
    monkeypatch.setenv("ORDERS_QUEUE_URL", target_url)
    settings.OPS_REPLAY_WAIT_SECONDS = 1
    letters = fill_reserved(dlq, 12)
    try:
        # When staff start a replay at 4 messages a second (its task goes to PortalTasksQueue)
        # and Lambda's poller hands it to invocations with about a second to spare each
        job = create_replay_job(user=None, reason="outage over", actor="bridge test", rate=4)
        remaining_ms = int((lambda_tasks.STOP_MARGIN_S + 1.0) * 1000)
        invocations = 0
        while invocations < 20:
            event, answer = sqs_broker.poll(remaining_ms)
            if event is None:
                break
            assert answer == {"batchItemFailures": []}
            invocations += 1

        # Then the real replay task stopped before each invocation's end and queued its own
        # continuation through SQS; the job finished, its counts kept across its runs
        job.refresh_from_db()
        assert job.state == ReplayJob.State.SUCCEEDED
        assert (job.sent, job.skipped, job.left, job.failed) == (12, 0, 0, 0)
        assert job.runs == invocations >= 2
        # And every dead letter was sent once, the DLQ is empty, the tasks queue too
        assert sorted(drain(SqsQueue(target_url))) == sorted(letters.values())
        assert dlq.depth()["visible"] == 0
        assert sqs_broker.counts() == (0, 0)
    finally:
        drain(dlq)
        sqs_broker.sqs.delete_queue(QueueUrl=target_url)
