"""The Celery-on-Lambda bridge without AWS: beat and Zappa agree, messages decode, outcomes map."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import types
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import states
from celery.schedules import crontab, schedule
from django.conf import settings as django_settings
from zappa.core import Zappa
from zappa.handler import LambdaHandler

from operations.deadlines import stop_check
from pipeline.dlq import MemoryLedger, MessageOutcome, Outcome, replay_queue
from pipeline.local.cfn import load_template
from pipeline.local.emulators import REPO_ROOT
from portal import lambda_tasks
from portal.celery import app
from portal.lambda_tasks import (
    HANDLER,
    PERIODIC,
    InvalidTaskMessage,
    TaskBatchFailed,
    TaskMessage,
    decode_task_message,
    periodic,
    process_batch,
    run_task_message,
    zappa_expression,
    zappa_schedule_events,
)
from tests.fakes import FakeQueue

SETTINGS = json.loads((REPO_ROOT / "zappa_settings.json").read_text())
CALLS: list[dict[str, Any]] = []


def stage(name: str) -> dict[str, Any]:
    """A stage as Zappa sees it: `extends` merged shallowly, as Zappa merges it."""
    own = SETTINGS[name]
    return {**(stage(own["extends"]) if "extends" in own else {}), **own}


# Test tasks: ignore_result, so nothing goes to the result backend (no Redis in unit tests).
@app.task(name="tests.unit.bridge.record", bind=True, ignore_result=True)
def record_call(self: Any, value: Any) -> Any:
    CALLS.append(
        {"value": value, "retries": self.request.retries, "stop": stop_check(self.request)}
    )
    if value == "fail":
        raise ValueError("told to fail")
    if value == "retry":
        raise self.retry(countdown=42, max_retries=3)
    return value


@pytest.fixture(autouse=True)
def no_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bridge closes stale database connections around each task, as a worker does; these
    unit tests have no database, and an earlier test of the same worker may have left a
    connection object that Django would then refuse to touch."""
    monkeypatch.setattr("portal.lambda_tasks.close_old_connections", lambda: None)


@pytest.fixture(autouse=True)
def calls() -> list[dict[str, Any]]:
    CALLS.clear()
    return CALLS


def envelope(task: str, args: list[Any], *, b64: bool = True, **headers: Any) -> str:
    """A message body as kombu's SQS transport writes it (protocol 2)."""
    body = json.dumps([args, {}, {"callbacks": None, "errbacks": None, "chain": None}])
    message = {
        "body": base64.b64encode(body.encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"lang": "py", "task": task, "id": str(uuid.uuid4()), "retries": 0, **headers},
        "properties": {
            "body_encoding": "base64",
            "delivery_info": {"exchange": "", "routing_key": "portal"},
            "priority": 0,
        },
    }
    text = json.dumps(message)
    return base64.b64encode(text.encode()).decode() if b64 else text


def sqs_record(body: str, *, receives: int = 1) -> dict[str, Any]:
    """A record of Lambda's SQS event (AWS's documented shape)."""
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "rh-" + uuid.uuid4().hex,
        "body": body,
        "attributes": {"ApproximateReceiveCount": str(receives), "SentTimestamp": "0"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:tasks",
        "awsRegion": "us-east-1",
    }


class Context:
    """Lambda's context object, as far as the bridge reads it."""

    def __init__(self, remaining_ms: int = 30_000):
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


# -- beat's schedule and Zappa's schedule events --------------------------------------------------


@pytest.mark.parametrize("name", ["dev", "prod"])
def test_every_beat_entry_is_a_zappa_schedule_event_at_the_same_rate(name: str):
    # Given beat's schedule (the settings' defaults) and the stage's Zappa events
    events = [e for e in stage(name)["events"] if "expression" in e]
    by_entry = {e["kwargs"]["beat"]: e for e in events}

    # Then each beat entry has one schedule event calling `periodic` with its name, at its rate
    beat = django_settings.CELERY_BEAT_SCHEDULE
    assert set(by_entry) == set(beat)
    assert len(events) == len(beat)
    for entry_name, entry in beat.items():
        event = by_entry[entry_name]
        assert event["function"] == PERIODIC
        assert event["expression"] == zappa_expression(entry["schedule"]), entry_name
    # And the whole list is what zappa_schedule_events derives from beat
    assert sorted(events, key=lambda e: e["name"]) == sorted(
        zappa_schedule_events(beat), key=lambda e: e["name"]
    )


@pytest.mark.parametrize(
    ("value", "expression"),
    [
        (300.0, "rate(5 minutes)"),
        (60, "rate(1 minute)"),
        (timedelta(hours=1), "rate(1 hour)"),
        (schedule(timedelta(days=2)), "rate(2 days)"),
        (5400, "rate(90 minutes)"),
    ],
)
def test_beat_schedules_become_eventbridge_rates(value: Any, expression: str):
    assert zappa_expression(value) == expression


@pytest.mark.parametrize("value", [30, 90.5, crontab(minute="*/5"), "often"])
def test_schedules_eventbridge_cannot_run_as_a_rate_are_refused(value: Any):
    with pytest.raises(ValueError):
        zappa_expression(value)


def test_the_tasks_queue_is_an_sqs_event_source_of_one_message_at_a_time():
    # Given the dev stage's SQS event source
    (source,) = [e for e in stage("dev")["events"] if "event_source" in e]
    assert source["function"] == HANDLER
    assert source["event_source"]["arn"].startswith("arn:aws:sqs:")
    # One message per invocation: a failure is then exactly that message, each task gets the
    # invocation's whole time, and Zappa cannot ask for partial batch responses anyway
    assert source["event_source"]["batch_size"] == 1
    assert source["event_source"]["enabled"] is True
    # And the queue's visibility timeout is at least six times the function's timeout (AWS)
    queue = load_template(REPO_ROOT / "template.yaml")["Resources"]["PortalTasksQueue"]
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * stage("dev")["timeout_seconds"]
    assert queue["Properties"]["RedrivePolicy"]["maxReceiveCount"] == 5


def test_zappas_own_handler_routes_queue_records_and_schedule_events_to_the_bridge():
    # Given the routing Zappa bakes into the package (cli.py's AWS_EVENT_MAPPING)...
    mapping: dict[str, list[str]] = {}
    for event in stage("prod")["events"]:
        arn, function = event.get("event_source", {}).get("arn"), event.get("function")
        if arn and function:
            mapping.setdefault(arn, []).append(function)
    zappa_handler = types.SimpleNamespace(settings=types.SimpleNamespace(AWS_EVENT_MAPPING=mapping))
    record = {**sqs_record("x"), "eventSourceARN": next(iter(mapping))}
    # ...Then a record from the queue goes to the bridge's handler
    assert LambdaHandler.get_function_for_aws_event(zappa_handler, record) == [HANDLER]
    # And every schedule rule Zappa names for the prod function leads back to `periodic`
    # (its handler takes the function from the rule name's last "-" part)
    core = Zappa.__new__(Zappa)
    for event in stage("prod")["events"]:
        if "expression" in event:
            rule = core.get_scheduled_event_name(event, event["function"], "order-portal-prod")
            assert len(rule) <= 64
            arn = f"arn:aws:events:us-east-1:123456789012:rule/{rule}"
            assert arn.split("/")[-1].split("-")[-1] == PERIODIC


# -- messages -------------------------------------------------------------------------------------


@pytest.mark.parametrize("b64", [True, False])
def test_kombus_sqs_envelope_decodes_to_headers_and_arguments(b64: bool):
    message = decode_task_message(envelope("tests.unit.bridge.record", ["hello"], b64=b64))
    assert message.task == "tests.unit.bridge.record"
    assert message.args == ["hello"] and message.kwargs == {}
    assert message.properties["delivery_info"]["routing_key"] == "portal"


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"no": "envelope"}),
        json.dumps({"body": "", "headers": {}}),  # protocol 1 or no Celery message at all
        json.dumps({"body": "e30=", "headers": {"task": "t", "id": "1"},
                    "properties": {"body_encoding": "base64"},
                    "content-type": "application/x-python-serialize"}),  # pickle: refused
    ],
)  # fmt: skip
def test_anything_else_is_not_a_task_message(body: str):
    with pytest.raises(InvalidTaskMessage):
        decode_task_message(body)


# -- running tasks --------------------------------------------------------------------------------


def test_a_task_runs_in_process_with_its_receive_count_as_retries_and_a_deadline(calls):
    # Given a message delivered for the third time, in an invocation with 30 s left
    event = {"Records": [sqs_record(envelope("tests.unit.bridge.record", ["ok"]), receives=3)]}

    # When the bridge handles it
    response = process_batch(event, Context(30_000))

    # Then the task ran once, saw two retries and a deadline it has not reached
    assert response == {"batchItemFailures": []}
    (call,) = calls
    assert call["retries"] == 2
    assert call["stop"] is not None and call["stop"]() is False


def test_a_failed_or_retried_task_is_named_for_redelivery_and_the_rest_deleted(monkeypatch, calls):
    # Given one task that succeeds, one that fails and one that asks for a retry
    ok, bad, retry = (
        sqs_record(envelope("tests.unit.bridge.record", [value]))
        for value in ("ok", "fail", "retry")
    )
    deleted: list[str] = []
    deferred: list[tuple[str, float]] = []
    monkeypatch.setattr(
        lambda_tasks, "_delete", lambda rs: deleted.extend(r["messageId"] for r in rs)
    )
    monkeypatch.setattr(
        lambda_tasks,
        "_set_visibility",
        lambda pairs: deferred.extend((r["messageId"], s) for r, s in pairs),
    )

    # When Zappa's handler gets them in one batch
    with pytest.raises(TaskBatchFailed) as raised:
        lambda_tasks.handler({"Records": [ok, bad, retry]}, Context())

    # Then the invocation fails naming the two to receive again (Lambda's partial batch shape)
    assert raised.value.response == {
        "batchItemFailures": [
            {"itemIdentifier": bad["messageId"]},
            {"itemIdentifier": retry["messageId"]},
        ]
    }
    # And the finished one is deleted here (Zappa's mapping would bring it back too), the
    # retried one hidden for its countdown; the failed one waits for the visibility timeout
    assert deleted == [ok["messageId"]]
    assert deferred == [(retry["messageId"], 42)]
    assert [c["value"] for c in calls] == ["ok", "fail", "retry"]
    # And the exception is no TypeError (Zappa would call the handler again with fewer args)
    assert not isinstance(raised.value, TypeError)


def test_a_message_past_its_expiry_or_before_its_eta_does_not_run(calls):
    past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    later = (datetime.now(UTC) + timedelta(seconds=120)).isoformat()
    expired = decode_task_message(envelope("tests.unit.bridge.record", ["x"], expires=past))
    early = decode_task_message(envelope("tests.unit.bridge.record", ["x"], eta=later))

    assert run_task_message(expired).state == states.REVOKED
    outcome = run_task_message(early)
    assert outcome.state == states.RETRY and 100 < (outcome.retry_in or 0) <= 120
    assert calls == []


def test_an_unknown_task_or_a_foreign_message_fails_for_the_dead_letter_queue():
    unknown = sqs_record(envelope("tests.unit.bridge.nobody", []))
    foreign = sqs_record("hello")
    response = process_batch({"Records": [unknown, foreign]}, Context())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        unknown["messageId"],
        foreign["messageId"],
    ]


def test_a_task_left_no_time_is_not_started():
    # Given an invocation whose time is already inside the stop margin
    record = sqs_record(envelope("tests.unit.bridge.record", ["late"]))
    context = Context(int((lambda_tasks.STOP_MARGIN_S - 1) * 1000))
    outcome = lambda_tasks._run_record(record, lambda_tasks._deadline(context))
    assert (outcome.state, outcome.retry_in) == (states.RETRY, 0)
    assert CALLS == []


# -- periodic (schedule events) -------------------------------------------------------------------


def scheduled(entry: str, *, at: datetime | None = None) -> dict[str, Any]:
    """The event Zappa's schedule rule sends (its input template, with the kwargs)."""
    return {
        "time": (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "resources": [f"arn:aws:events:us-east-1:123456789012:rule/x-{entry}-{PERIODIC}"],
        "detail": {},
        "kwargs": {"beat": entry},
    }


def test_a_schedule_event_runs_its_beat_entry_here_unless_it_expired(settings, calls):
    settings.CELERY_BEAT_SCHEDULE = {
        "tick": {"task": "tests.unit.bridge.record", "schedule": 60, "args": ["tick"],
                 "options": {"expires": 60}},
    }  # fmt: skip
    # When the rule fires now, the task runs in this invocation
    assert periodic(scheduled("tick"), Context())["state"] == states.SUCCESS
    assert [c["value"] for c in calls] == ["tick"]
    # And Lambda's retry of an invocation two minutes later skips it, as a worker would
    late = scheduled("tick", at=datetime.now(UTC) - timedelta(minutes=2))
    assert periodic(late, Context())["state"] == states.REVOKED
    assert len(calls) == 1


def test_a_failing_scheduled_task_or_an_unknown_entry_fails_the_invocation(settings):
    settings.CELERY_BEAT_SCHEDULE = {
        "bad": {"task": "tests.unit.bridge.record", "schedule": 60, "args": ["fail"]}
    }
    with pytest.raises(lambda_tasks.PeriodicTaskFailed):
        periodic(scheduled("bad"), Context())
    with pytest.raises(lambda_tasks.PeriodicTaskFailed, match="no beat entry"):
        periodic(scheduled("missing"), Context())


# -- the replay loop's stop hook ------------------------------------------------------------------


def test_a_replay_told_to_stop_ends_early_and_a_new_run_on_its_ledger_finishes():
    # Given 25 dead letters and a run that may look at two batches only
    queue = FakeQueue([f'{{"OrderId": "o{i}", "Attempt": 1}}' for i in range(25)])
    ledger = MemoryLedger()
    asked = iter([False, False, True])

    def send(messages, bucket):
        return [MessageOutcome(m.message_id, Outcome.SENT) for m in messages]

    first = replay_queue(
        source=queue, handle=send, ledger=ledger, wait_seconds=0, should_stop=lambda: next(asked)
    )
    # Then it stopped after 20, said so, and left the rest visible
    assert (first.stopped, first.sent) == (True, 20)
    assert len(queue.visible) == 5

    # When a new run goes on with the same ledger, it finishes, counting from where it was
    second = replay_queue(source=queue, handle=send, ledger=ledger, wait_seconds=0)
    assert (second.stopped, second.sent) == (False, 25)
    assert queue.messages == {}


def test_only_a_request_with_a_deadline_has_a_stop_check():
    assert stop_check(types.SimpleNamespace()) is None
    assert stop_check(types.SimpleNamespace(deadline=None)) is None
    assert stop_check(types.SimpleNamespace(deadline=0.0))() is True


def test_task_messages_keep_their_headers():
    message = TaskMessage({"task": "t", "id": "1"}, [], {})
    assert (message.task, message.task_id) == ("t", "1")


READ_BROKER = """
import json, django
django.setup()
from portal.celery import app
print(json.dumps([app.conf.broker_url, app.conf.broker_transport_options, app.conf.result_backend]))
"""


def production_celery(**env: str) -> list[Any]:
    """The broker production settings give Celery, in a fresh process with `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "DJANGO_"))}
    result = subprocess.run(
        [sys.executable, "-c", READ_BROKER],
        cwd=REPO_ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "portal.settings.production",
            "DJANGO_SECRET_KEY": "unit-test-" + "x" * 50,
            "DATABASE_URL": "postgres://nobody@127.0.0.1:9/none",
            "DJANGO_ALLOWED_HOSTS": "portal.invalid",
            "REDIS_URL": "redis://cache.internal:6379/0",
            "AWS_REGION": "eu-west-1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_sends_tasks_to_the_stacks_queue_with_no_queue_listing():
    # Given the stack's tasks queue in the environment (portal_stack_env.py writes it)
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/Stack-PortalTasksQueue-X"
    broker, options, backend = production_celery(PORTAL_TASKS_QUEUE_URL=url)
    # Then Celery publishes to SQS, the portal's queue predefined at that URL (no ListQueues,
    # no CreateQueue), in the function's region; results stay in Redis
    assert broker == "sqs://"
    assert options["predefined_queues"] == {"portal": {"url": url}}
    assert options["region"] == "eu-west-1"
    assert backend == "redis://cache.internal:6379/0"
    # And a broker named on purpose wins; without the queue it is Redis as before
    assert (
        production_celery(PORTAL_TASKS_QUEUE_URL=url, CELERY_BROKER_URL="redis://b:6379/1")[0]
        == "redis://b:6379/1"
    )
    assert production_celery()[0] == "redis://cache.internal:6379/0"
