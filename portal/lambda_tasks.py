"""Celery without a worker: the portal's task messages and beat's schedule, run inside Lambda."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Task, states
from celery.app.trace import build_tracer
from celery.exceptions import Reject, Retry
from celery.schedules import crontab
from celery.schedules import schedule as interval
from django.conf import settings
from django.db import close_old_connections
from kombu.serialization import loads, prepare_accept_content

from operations.deadlines import DEADLINE
from pipeline import aws
from portal.celery import app

log = logging.getLogger(__name__)

# How the two functions are named in zappa_settings.json's events.
HANDLER = "portal.lambda_tasks.handler"
PERIODIC = "portal.lambda_tasks.periodic"
# A long task is told to stop this long before the invocation's end: one more step of its loop
# (the DLQ replay's 5 s long poll and a batch of sends), saving its progress and queueing its
# continuation must fit in it.
STOP_MARGIN_S = 10.0
# ChangeMessageVisibility's ceiling.
MAX_VISIBILITY_S = 43_200
HOSTNAME = f"lambda@{socket.gethostname()}"
# The message may go: the task ran, or must never run (expired, ignored, rejected for good).
DONE = frozenset({states.SUCCESS, states.IGNORED, states.REJECTED, states.REVOKED})


class InvalidTaskMessage(ValueError):
    """An SQS message that is not a Celery task message (protocol 2) this app can read."""


class TaskBatchFailed(RuntimeError):
    """Some task messages of a batch must come back: raised so Lambda leaves them in the queue.

    A RuntimeError, never a TypeError: Zappa's handler calls a function again with fewer
    arguments when it raises TypeError, which would run the batch twice.
    """

    def __init__(self, response: Mapping[str, list[dict[str, str]]]):
        self.response = response
        ids = [item["itemIdentifier"] for item in response["batchItemFailures"]]
        super().__init__(f"{len(ids)} task message(s) to be received again: {', '.join(ids)}")


@dataclass(frozen=True)
class TaskMessage:
    """A decoded Celery task message: its headers, arguments and embedded canvas options."""

    headers: Mapping[str, Any]
    args: list[Any]
    kwargs: dict[str, Any]
    embed: dict[str, Any] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        """The task's registered name."""
        return str(self.headers["task"])

    @property
    def task_id(self) -> str:
        """The task id (the result's key)."""
        return str(self.headers["id"])


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one task message."""

    state: str  # a celery.states state
    task: str | None = None
    task_id: str | None = None
    error: str = ""
    # Seconds until the message should be received again (a retry's countdown, an eta); None:
    # when the queue's visibility timeout says.
    retry_in: float | None = None
    result: Any = None

    @property
    def done(self) -> bool:
        """The message can be deleted."""
        return self.state in DONE


def decode_task_message(body: str) -> TaskMessage:
    """Read a message body as kombu's SQS transport sends it: base64 of the JSON envelope
    (sqs_base64_encoding, its default; the plain JSON is accepted too), whose own `body` is
    [args, kwargs, embed] serialised by Celery (protocol 2), base64 again by body_encoding."""
    try:
        text = base64.b64decode(body, validate=True).decode()
    except (binascii.Error, ValueError):  # not base64 (UnicodeDecodeError is a ValueError)
        text = body
    try:
        envelope = json.loads(text)
    except ValueError:
        raise InvalidTaskMessage("the body is not kombu's JSON envelope") from None
    if not isinstance(envelope, dict) or "body" not in envelope:
        raise InvalidTaskMessage("the body is not kombu's JSON envelope")
    headers = envelope.get("headers") or {}
    if "task" not in headers or "id" not in headers:
        raise InvalidTaskMessage("no task and id headers: not Celery's message protocol 2")
    properties = envelope.get("properties") or {}
    raw = envelope["body"]
    if properties.get("body_encoding") == "base64":
        raw = base64.b64decode(raw)
    try:
        payload = loads(
            raw,
            envelope.get("content-type", "application/json"),
            envelope.get("content-encoding", "utf-8"),
            accept=prepare_accept_content(app.conf.accept_content),
        )
        args, kwargs, embed = payload
    except Exception as exc:  # a serializer not accepted, or a body of another shape
        raise InvalidTaskMessage(f"unreadable task body ({type(exc).__name__}: {exc})") from exc
    return TaskMessage(headers, list(args), dict(kwargs), dict(embed or {}), properties)


def _when(value: Any) -> datetime | None:
    """An eta/expires header (ISO 8601) or an event's time, as an aware datetime."""
    if not value:
        return None
    if isinstance(value, datetime):
        when = value
    else:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _deadline(context: Any) -> float | None:
    """The time.monotonic() by which a task of this invocation should have returned."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None  # not in Lambda (a test calling in directly): no limit
    return time.monotonic() + remaining() / 1000 - STOP_MARGIN_S


_tracers: dict[str, Any] = {}
_loaded = False


def _task(name: str) -> Task | None:
    global _loaded
    if not _loaded:
        # As a worker does at start-up: import every installed app's tasks module, so a task
        # not yet imported by this process (no page asked for it) is registered.
        app.loader.import_default_modules()
        _loaded = True
    return app.tasks.get(name)


def _tracer(task: Task) -> Any:
    # A worker's tracer (eager=False): results, retries and failures stored in the result
    # backend as a worker stores them, errors returned in the trace instead of raised.
    if task.name not in _tracers:
        _tracers[task.name] = build_tracer(
            task.name, task, eager=False, propagate=False, app=app, hostname=HOSTNAME
        )
    return _tracers[task.name]


def run_task_message(
    message: TaskMessage,
    *,
    receives: int = 1,
    deadline: float | None = None,
    delivery_info: Mapping[str, Any] | None = None,
) -> TaskOutcome:
    """Run the task `message` names in this process, as a worker would; say what became of it.

    `receives` is how often SQS delivered it (the task's request.retries is one less: SQS's
    redelivery is the retry). `deadline` goes into the request (operations.deadlines).
    """
    name, task_id = message.task, message.task_id
    now = datetime.now(UTC)
    expires = _when(message.headers.get("expires"))
    if expires is not None and expires <= now:
        log.warning("task %s[%s] expired at %s: not run", name, task_id, expires.isoformat())
        return TaskOutcome(states.REVOKED, name, task_id, error="expired")
    eta = _when(message.headers.get("eta"))
    if eta is not None and (eta - now).total_seconds() > 1:
        # Not due yet (apply_async's countdown or eta): back when it is.
        return TaskOutcome(states.RETRY, name, task_id, retry_in=(eta - now).total_seconds())
    task = _task(name)
    if task is None:
        log.error("task %s[%s] is not registered in this app", name, task_id)
        return TaskOutcome(states.FAILURE, name, task_id, error=f"unregistered task {name!r}")
    request = {
        **message.headers,
        **message.embed,
        "delivery_info": {
            "exchange": message.properties.get("delivery_info", {}).get("exchange", ""),
            "routing_key": message.properties.get("delivery_info", {}).get("routing_key"),
            "priority": message.properties.get("priority"),
            "redelivered": receives > 1,
            **(delivery_info or {}),
        },
        "reply_to": message.properties.get("reply_to"),
        "correlation_id": message.properties.get("correlation_id", task_id),
        "hostname": HOSTNAME,
        "retries": max(0, receives - 1),
        # Task.retry() then raises Retry without sending a copy of the message: the message
        # already in SQS comes back instead (after the countdown), and its receive count is
        # the retry count, bounded by the queue's redrive policy.
        "is_eager": True,
        DEADLINE: deadline,
    }
    # As Django around a request, and Celery's Django fix-up around a task: a connection that
    # went stale between invocations is replaced, not reused.
    close_old_connections()
    try:
        traced = _tracer(task)(task_id, message.args, message.kwargs, request)
    finally:
        close_old_connections()
    info = traced.info
    if info is None:
        return TaskOutcome(states.SUCCESS, name, task_id, result=traced.retval)
    reason = info.retval
    if info.state == states.RETRY:
        when = reason.when if isinstance(reason, Retry) else None
        if isinstance(when, datetime):
            when = (_when(when) - datetime.now(UTC)).total_seconds()  # type: ignore[operator]
        return TaskOutcome(states.RETRY, name, task_id, error=str(reason), retry_in=when)
    if info.state == states.REJECTED and isinstance(reason, Reject) and reason.requeue:
        return TaskOutcome(states.RETRY, name, task_id, error=str(reason), retry_in=0)
    return TaskOutcome(info.state, name, task_id, error=repr(reason) if reason else "")


def _run_record(record: Mapping[str, Any], deadline: float | None) -> TaskOutcome:
    try:
        message = decode_task_message(record["body"])
    except InvalidTaskMessage as exc:
        # Received again and again, then dead-lettered where a person can look at it.
        log.error("SQS message %s is not a task message: %s", record.get("messageId"), exc)
        return TaskOutcome(states.FAILURE, error=str(exc))
    if deadline is not None and time.monotonic() >= deadline:
        # The batch's earlier tasks used the invocation up: this one waits for the next.
        return TaskOutcome(states.RETRY, message.task, message.task_id, retry_in=0)
    receives = int(record.get("attributes", {}).get("ApproximateReceiveCount", "1"))
    return run_task_message(message, receives=receives, deadline=deadline)


def process_batch(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Run every task message of an SQS event, in order; answer Lambda's partial batch response
    ({"batchItemFailures": [{"itemIdentifier": messageId}]}) naming those to receive again.

    A retried task's message is hidden for its countdown first (ChangeMessageVisibility);
    any other failure comes back after the queue's visibility timeout.
    """
    records = list(event.get("Records") or [])
    deadline = _deadline(context)
    outcomes = [_run_record(record, deadline) for record in records]
    failed = [(r, o) for r, o in zip(records, outcomes, strict=True) if not o.done]
    _set_visibility([(r, o.retry_in) for r, o in failed if o.retry_in is not None])
    return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r, _ in failed]}


def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The function of zappa_settings.json's SQS event source on PortalTasksQueue.

    Zappa 0.63 creates the event source mapping without FunctionResponseTypes (it passes only
    BatchSize, Enabled and the batching window), so Lambda would take any answer as "all
    done" and delete a failed task's message too. So when some fail, the messages that are
    done are deleted here and the invocation fails: Lambda then leaves the rest for SQS to
    deliver again, and dead-letter after maxReceiveCount. (`context` stays a required
    argument: see TaskBatchFailed.)
    """
    response = process_batch(event, context)
    if response["batchItemFailures"]:
        again = {item["itemIdentifier"] for item in response["batchItemFailures"]}
        _delete([r for r in event["Records"] if r["messageId"] not in again])
        raise TaskBatchFailed(response)
    return response


def _queue_url(arn: str) -> str:
    """The URL of the queue named by a record's eventSourceARN."""
    _, _, _, _, account, name = arn.split(":", 5)
    options = app.conf.broker_transport_options or {}
    for queue in options.get("predefined_queues", {}).values():
        if queue["url"].rstrip("/").rsplit("/", 1)[-1] == name:
            return str(queue["url"])
    return str(
        aws.client("sqs").get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    )


def _by_queue(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        grouped.setdefault(record["eventSourceARN"], []).append(record)
    return grouped


def _delete(records: Sequence[Mapping[str, Any]]) -> None:
    # Best effort: a message not deleted runs again once it comes back (tasks are idempotent:
    # a replay job is claimed once, sweeps write conditionally).
    for arn, group in _by_queue(records).items():
        url = _queue_url(arn)
        for start in range(0, len(group), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": r["receiptHandle"]}
                for i, r in enumerate(group[start : start + 10])
            ]
            try:
                answer = aws.client("sqs").delete_message_batch(QueueUrl=url, Entries=entries)
            except Exception:
                log.exception("could not delete %d finished task message(s)", len(entries))
                continue
            for failure in answer.get("Failed", []):
                log.error("could not delete a finished task message: %s", failure)


def _set_visibility(deferred: Sequence[tuple[Mapping[str, Any], float]]) -> None:
    for record, seconds in deferred:
        try:
            aws.client("sqs").change_message_visibility(
                QueueUrl=_queue_url(record["eventSourceARN"]),
                ReceiptHandle=record["receiptHandle"],
                VisibilityTimeout=max(0, min(MAX_VISIBILITY_S, round(seconds))),
            )
        except Exception:  # it comes back after the queue's visibility timeout instead
            log.exception("could not defer task message %s", record["messageId"])


# -- beat's schedule as Zappa schedule events -------------------------------------------------


def zappa_expression(schedule: Any) -> str:
    """The EventBridge rate(...) expression of a beat entry's schedule: seconds, a timedelta
    or an interval schedule, in whole minutes (EventBridge's finest)."""
    if isinstance(schedule, crontab):
        raise ValueError(
            "a crontab beat entry needs a cron(...) Zappa event (EventBridge's fields, in UTC): "
            "write it, and teach zappa_expression to check it"
        )
    if isinstance(schedule, interval):
        seconds = schedule.run_every.total_seconds()
    elif isinstance(schedule, timedelta):
        seconds = schedule.total_seconds()
    elif isinstance(schedule, int | float):
        seconds = float(schedule)
    else:
        raise ValueError(f"not a schedule Zappa can express: {schedule!r}")
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"rate({count} {unit}{'' if count == 1 else 's'})"
    raise ValueError(f"EventBridge schedules whole minutes, not every {seconds:g} s")


def zappa_schedule_events(beat_schedule: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The Zappa events that run beat's entries: one schedule event each, calling `periodic`."""
    return [
        {
            "name": name,
            "function": PERIODIC,
            "expression": zappa_expression(entry["schedule"]),
            "kwargs": {"beat": name},
        }
        for name, entry in beat_schedule.items()
    ]


class PeriodicTaskFailed(RuntimeError):
    """A scheduled task failed: the invocation fails, so Lambda's Errors metric counts it."""


def periodic(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """The function of zappa_settings.json's schedule events: run beat's entry
    `event["kwargs"]["beat"]` here and now, as beat would have sent it to a worker.

    In-process rather than through the queue: one invocation per tick instead of two, and a
    periodic task's retry is its next tick. An entry's `expires` counts from the event's time,
    so Lambda's own retries of a failed invocation (a minute or two later) skip a task that
    would have expired on a worker.
    """
    name = (event.get("kwargs") or {}).get("beat")
    entry = settings.CELERY_BEAT_SCHEDULE.get(name) if name else None
    if entry is None:
        raise PeriodicTaskFailed(
            f"no beat entry {name!r} in CELERY_BEAT_SCHEDULE: zappa_settings.json's events and "
            "the settings disagree"
        )
    fired = _when(event.get("time")) or datetime.now(UTC)
    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {
        "task": entry["task"],
        "id": task_id,
        "root_id": task_id,
        "parent_id": None,
        "origin": f"zappa schedule {name}",
        "periodic_task_name": name,
    }
    expires = (entry.get("options") or {}).get("expires")
    if isinstance(expires, int | float):
        headers["expires"] = (fired + timedelta(seconds=expires)).isoformat()
    elif isinstance(expires, datetime):
        headers["expires"] = expires.isoformat()
    message = TaskMessage(headers, list(entry.get("args") or []), dict(entry.get("kwargs") or {}))
    outcome = run_task_message(message, deadline=_deadline(context))
    if not outcome.done:
        raise PeriodicTaskFailed(
            f"{entry['task']}[{task_id}] ({name}): {outcome.state} {outcome.error}"
        )
    return {"task": entry["task"], "id": task_id, "state": outcome.state, "result": outcome.result}
