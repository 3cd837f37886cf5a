"""One webhook delivery on DynamoDB Local, moto's KMS and SQS: retries with backoff, chained
delays past SQS's 15 minutes, dead-lettering after the window, disabling after days of
failures, the address check at delivery, and a receiver that hangs."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from pipeline import aws
from pipeline.adapters.sqs import SqsQueue
from pipeline.local.emulators import LOCAL_CREDENTIALS, LOCAL_REGION, free_port, moto_server
from pipeline.webhooks import DISABLE_AFTER_DAYS, Endpoint, RetryPolicy, verify
from pipeline.webhooks_flow import DeliveryQueue, dead_letters_replay, deliver
from pipeline.webhooks_http import AttemptResult, post
from pipeline.webhooks_store import Subscription, WebhookStore, delivery_message

pytestmark = [pytest.mark.integration]

EVENT = {"EventId": "evt-1", "OrderId": "o-1", "Type": "order.shipped", "Sequence": 4}


def _client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=LOCAL_REGION,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    emulator = moto_server(free_port())
    emulator.start()
    try:
        yield emulator.url
    finally:
        emulator.stop()


class Queue(DeliveryQueue):
    """The real queue, and what was sent to it (body, delay) in this test."""

    def __init__(self, url: str, client: Any) -> None:
        super().__init__(url, client)
        self.sent: list[tuple[dict[str, Any], float]] = []

    def send(self, body: Any, delay_s: float = 0) -> str:
        self.sent.append((dict(body), delay_s))
        return super().send(body, delay_s)


@pytest.fixture
def world(dynamodb_endpoint: dict[str, str], moto_url: str, monkeypatch) -> dict[str, Any]:
    for name, value in dynamodb_endpoint.items():
        monkeypatch.setenv(name, value)
    aws.reset_clients()
    kms = _client("kms", moto_url)
    sqs = _client("sqs", moto_url)
    store = WebhookStore(
        dynamodb_endpoint["WEBHOOKS_TABLE_NAME"],
        key_id=kms.create_key()["KeyMetadata"]["KeyId"],
        client=_client("dynamodb", dynamodb_endpoint["AWS_ENDPOINT_URL_DYNAMODB"]),
        kms=kms,
    )
    queue = Queue(sqs.create_queue(QueueName=f"d-{uuid.uuid4().hex[:8]}")["QueueUrl"], sqs)
    dlq = Queue(sqs.create_queue(QueueName=f"dl-{uuid.uuid4().hex[:8]}")["QueueUrl"], sqs)
    return {"store": store, "queue": queue, "dlq": dlq}


def _subscribe(store: WebhookStore, url: str = "http://127.0.0.1:9/hook") -> Subscription:
    sub = store.create(
        client_id=f"c{uuid.uuid4().hex[:8]}",
        url=url,
        events=["order.shipped"],
        secret="whsec_fixed",
        created_by="t",
    )
    store.save_event(sub.subscription_id, EVENT)
    return sub


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _run(world: dict[str, Any], message: dict[str, Any], poster: Any, clock: Clock,
         allow_local: bool = True) -> Any:  # fmt: skip
    return deliver(
        message,
        store=world["store"],
        queue=world["queue"],
        dead_letters=world["dlq"],
        policy=RetryPolicy(base_s=30, max_delay_s=3600, window_s=26 * 3600),
        allow_local=allow_local,
        poster=poster,
        now=clock,
    )


def test_failures_back_off_then_dead_letter_after_the_window(world: dict[str, Any]) -> None:
    # Given an endpoint whose receiver always answers 500
    store = world["store"]
    sub = _subscribe(store)
    calls: list[tuple[bytes, dict[str, str]]] = []

    def failing(endpoint: Endpoint, body: bytes, headers: dict[str, str]) -> AttemptResult:
        calls.append((body, dict(headers)))
        return AttemptResult(500, 12)

    clock = Clock()
    message = delivery_message(sub, EVENT["EventId"])

    # When deliveries are attempted as the queue hands them back
    delays = []
    outcome = None
    for _ in range(60):
        outcome = _run(world, message, failing, clock)
        if outcome.outcome != "retry":
            break
        message, delay = world["queue"].sent[-1]
        delays.append(delay)
        clock.now = message["DueAt"]  # the queue hands it back when due

    # Then each wait doubled from 30 s up to an hour, attempts went on for over a day, and
    # the delivery was then dead-lettered with its attempt count
    assert delays[:8] == [30, 60, 120, 240, 480, 960, 1920, 3600]
    assert outcome is not None and outcome.outcome == "dead-lettered"
    assert clock.now - 1_800_000_000.0 >= 24 * 3600
    dead, _ = world["dlq"].sent[-1]
    assert dead["EventId"] == EVENT["EventId"] and dead["Attempt"] == outcome.attempt
    # And every attempt was the same signed event (same id, same body)
    assert {body for body, _ in calls} == {calls[0][0]}
    for body, headers in calls:
        assert headers["Webhook-Id"] == "evt-1"
        stamp = int(headers["Webhook-Timestamp"])
        assert verify("whsec_fixed", headers["Webhook-Signature"], body, now=stamp)
    # And each attempt is recorded with its status, latency and outcome
    attempts = store.attempts(sub.subscription_id, limit=100)
    assert len(attempts) == len(calls)
    assert {a["StatusCode"] for a in attempts} == {500}
    assert attempts[0]["Outcome"] == "dead-lettered"


def test_a_wait_longer_than_sqs_allows_is_chained(world: dict[str, Any]) -> None:
    # Given a delivery due in 40 minutes
    sub = _subscribe(world["store"])
    clock = Clock()
    message = delivery_message(sub, EVENT["EventId"], attempt=9, due_at=clock.now + 2400)

    def never(*args: Any) -> AttemptResult:
        raise AssertionError("no attempt before it is due")

    # When it arrives early, Then it is sent back for SQS's most (15 minutes), untouched
    outcome = _run(world, message, never, clock)
    assert outcome.outcome == "deferred"
    assert world["queue"].sent[-1] == (message, 2400)
    sqs_message = world["queue"].client.receive_message(
        QueueUrl=world["queue"].queue_url, AttributeNames=["All"]
    )
    assert "Messages" not in sqs_message  # held back by SQS


def test_an_endpoint_failing_for_days_is_disabled_with_a_note(world: dict[str, Any]) -> None:
    store = world["store"]
    sub = _subscribe(store)
    clock = Clock()

    def down(*args: Any) -> AttemptResult:
        return AttemptResult(None, 5000, "timed out after 5 s")

    # Given deliveries failing since now
    assert _run(world, delivery_message(sub, "evt-1"), down, clock).outcome == "retry"
    # When one more fails after the documented number of days
    clock.now += DISABLE_AFTER_DAYS * 86400 + 1
    outcome = _run(world, delivery_message(sub, "evt-1", attempt=3), down, clock)
    # Then the endpoint is disabled, saying why, and the delivery dead-lettered
    assert outcome.disabled_now and outcome.outcome == "dead-lettered"
    now = store.get(sub.client_id, sub.subscription_id)
    assert now is not None and not now.enabled
    assert "3 days" in (now.disabled_reason or "") and "timed out" in (now.disabled_reason or "")
    # And later deliveries to it go to the DLQ without a request
    outcome = _run(world, delivery_message(sub, "evt-1"), down, clock)
    assert outcome.outcome == "dead-lettered" and outcome.result is None


def test_private_addresses_are_refused_at_delivery_too(world: dict[str, Any]) -> None:
    # Given an endpoint stored as https://127.0.0.1 (say, from before a rule changed)
    sub = _subscribe(world["store"], "https://127.0.0.1:8443/hook")
    requests: list[Any] = []

    def record(*args: Any) -> AttemptResult:
        requests.append(args)
        return AttemptResult(204, 1)

    # When production settings deliver to it
    outcome = _run(world, delivery_message(sub, "evt-1"), record, Clock(), allow_local=False)

    # Then no request is made, and the attempt says why
    assert requests == [] and outcome.outcome == "retry"
    (attempt,) = world["store"].attempts(sub.subscription_id)
    assert "private, loopback or link-local" in attempt["Error"]


def test_a_hanging_or_trickling_receiver_cannot_hold_a_worker() -> None:
    # Given a receiver that accepts connections and never answers, and one that answers a
    # byte at a time forever
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", 0))
    hanging.listen(5)

    trickle = socket.socket()
    trickle.bind(("127.0.0.1", 0))
    trickle.listen(5)

    def serve_trickle() -> None:
        conn, _ = trickle.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        try:
            for _ in range(100):
                conn.sendall(b"x")
                time.sleep(0.2)
        except OSError:
            pass
        conn.close()

    threading.Thread(target=serve_trickle, daemon=True).start()
    try:
        for server in (hanging, trickle):
            port = server.getsockname()[1]
            endpoint = Endpoint(f"http://127.0.0.1:{port}/", "http", "127.0.0.1", port,
                                ("127.0.0.1",))  # fmt: skip
            # When a delivery with a 1 s budget is made
            started = time.monotonic()
            result = post(endpoint, json.dumps(EVENT).encode(), {}, timeout=1.0)
            took = time.monotonic() - started
            # Then it gives up in about that time, as a failed attempt
            assert took < 2.0, took
            if server is hanging:
                assert not result.ok and "timed out" in (result.error or "")
            else:
                # the trickle's status came in time; its body is cut at 1 KiB or the deadline
                assert result.status_code in (200, None)
    finally:
        hanging.close()
        trickle.close()


def test_an_endpoints_dead_letters_are_replayed_and_others_left(world: dict[str, Any]) -> None:
    # Given the DLQ holding two deliveries of one endpoint and one of another
    store = world["store"]
    mine, other = _subscribe(store), _subscribe(store)
    dlq = world["dlq"]
    for sub, event_id in ((mine, "a"), (mine, "b"), (other, "c")):
        message = delivery_message(sub, event_id, attempt=30, first_attempt_at=1.0)
        dlq.send({**message, "Reason": "retry window ended"})

    # When the first endpoint's dead letters are replayed (the DLQ replay of pipeline/dlq.py)
    result = dead_letters_replay(
        dlq=SqsQueue(dlq.queue_url, dlq.client),
        queue=world["queue"],
        client_id=mine.client_id,
        subscription_id=mine.subscription_id,
        wait_seconds=0,
        max_empty_receives=1,
    )

    # Then its two are queued again as new deliveries, and the other stays in the DLQ
    assert (result.sent, result.passed) == (2, 1)
    sent = [body for body, _ in world["queue"].sent]
    assert sorted(b["EventId"] for b in sent) == ["a", "b"]
    assert all(b["Attempt"] == 0 and "FirstAttemptAt" not in b for b in sent)
    left = dlq.client.receive_message(QueueUrl=dlq.queue_url, MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["EventId"] for m in left.get("Messages", [])] == ["c"]
