"""Webhook use cases: turn status changes into queued deliveries, deliver one with its retries,
resend one event, and say when an endpoint has failed long enough to be disabled."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.dlq import MessageOutcome, Outcome, ReplayResult, TokenBucket, replay_queue
from pipeline.domain import Order
from pipeline.ports import MessageQueue, QueueMessage
from pipeline.webhooks import (
    DISABLE_AFTER_DAYS,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    SQS_MAX_DELAY_S,
    TIMESTAMP_HEADER,
    Endpoint,
    InvalidEndpoint,
    RetryPolicy,
    check_endpoint,
    event_body,
    signature,
    status_change_event,
    wants,
)
from pipeline.webhooks_http import AttemptResult, post
from pipeline.webhooks_store import SecretUnreadable, Subscription, WebhookStore, delivery_message

log = logging.getLogger(__name__)

Poster = Callable[[Endpoint, bytes, Mapping[str, str]], AttemptResult]


class DeliveryQueue:
    """The WebhookDeliveries queue (or its DLQ): JSON messages, optionally held back."""

    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = client

    @property
    def client(self) -> Any:
        """The SQS client given, or the shared one."""
        from pipeline import aws

        return self._client or aws.client("sqs")

    def send(self, body: Mapping[str, Any], delay_s: float = 0) -> str:
        """Send one message, held back `delay_s` (at most SQS's 15 minutes); its MessageId."""
        delay = max(0, min(SQS_MAX_DELAY_S, round(delay_s)))
        return self.client.send_message(
            QueueUrl=self.queue_url, MessageBody=json.dumps(body), DelaySeconds=delay
        )["MessageId"]


# -- From the Orders stream ---------------------------------------------------------------------


class SubscriptionsByClient:
    """The endpoints of each API key, read once: one stream batch holds many status changes of
    the same keys' orders (a busy client's), and each would otherwise cost a consistent Query.
    Made per batch, so an endpoint added since is seen from the next batch on."""

    def __init__(self, store: WebhookStore) -> None:
        self.store = store
        self._found: dict[str, list[Subscription]] = {}

    def __call__(self, client_id: str) -> list[Subscription]:
        """The key's endpoints, oldest first (read on the first call for the key)."""
        found = self._found.get(client_id)
        if found is None:
            found = self._found[client_id] = self.store.for_client(client_id)
        return found


def events_queue(
    *,
    old: Order | None,
    new: Order,
    store: WebhookStore,
    queue: DeliveryQueue,
    subscriptions: Callable[[str], Sequence[Subscription]] | None = None,
) -> int:
    """Queue one delivery per endpoint of the order's key that wants this status change; the
    number queued. A write that did not change the status queues nothing. A redelivered stream
    record queues again under the same EventId: receivers drop what they have seen. The key's
    endpoints come from `subscriptions` (a batch's SubscriptionsByClient), else the store."""
    if not new.client_id:
        return 0
    event = status_change_event(old, new)
    if event is None:
        return 0
    endpoints = (subscriptions or store.for_client)(new.client_id)
    queued = 0
    for subscription in endpoints:
        if not subscription.enabled or not wants(subscription.events, event):
            continue
        store.save_event(subscription.subscription_id, event)
        queue.send(delivery_message(subscription, event["EventId"]))
        queued += 1
    return queued


# -- Delivery -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryOutcome:
    """What handling one delivery message did: delivered, retry, dead-lettered, deferred,
    dropped (the endpoint or event is gone)."""

    outcome: str
    attempt: int = 0
    result: AttemptResult | None = None
    disabled_now: bool = False


def _failing_too_long(failing_since: float | None, now: float) -> bool:
    return failing_since is not None and now - failing_since >= DISABLE_AFTER_DAYS * 86400


def deliver(
    message: Mapping[str, Any],
    *,
    store: WebhookStore,
    queue: DeliveryQueue,
    dead_letters: DeliveryQueue,
    policy: RetryPolicy,
    allow_local: bool,
    poster: Poster = post,
    now: Callable[[], float] = time.time,
) -> DeliveryOutcome:
    """Handle one delivery message: POST the event signed, record the attempt, and on failure
    queue the next attempt after its backoff (chained through SQS's 15-minute limit) until the
    retry window ends, then dead-letter it. An endpoint failing DISABLE_AFTER_DAYS is disabled
    and its deliveries dead-lettered, so staff can replay them once it is fixed."""
    client_id = message["ClientId"]
    subscription_id = message["SubscriptionId"]
    event_id = message["EventId"]
    attempt = int(message.get("Attempt", 0))
    started = now()
    due = float(message.get("DueAt") or 0)
    if due > started + 1:
        # Not yet: SQS could not hold it back that long in one go.
        queue.send(dict(message), delay_s=due - started)
        return DeliveryOutcome("deferred", attempt)

    subscription = store.get(client_id, subscription_id)
    event = store.event(subscription_id, event_id) if subscription else None
    if subscription is None or event is None:
        log.info("webhook dropped: endpoint or event gone", extra={"event_id": event_id})
        return DeliveryOutcome("dropped", attempt)
    if not subscription.enabled:
        dead_letters.send({**message, "Reason": "endpoint disabled"})
        return DeliveryOutcome("dead-lettered", attempt)

    attempt += 1
    first = float(message.get("FirstAttemptAt") or started)
    result = _attempt(subscription, event, store=store, allow_local=allow_local, poster=poster)
    if result.ok:
        store.record_attempt(
            subscription_id,
            event,
            attempt=attempt,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=None,
            outcome="delivered",
        )
        store.note_success(client_id, subscription_id)
        return DeliveryOutcome("delivered", attempt, result)

    at = now()
    failing_since = store.note_failure(client_id, subscription_id, at)
    disabled_now = _failing_too_long(failing_since, at)
    if disabled_now:
        store.set_enabled(
            client_id,
            subscription_id,
            False,
            f"disabled automatically: every delivery failed for {DISABLE_AFTER_DAYS} days "
            f"(last: {result.error or f'HTTP {result.status_code}'})",
        )
    resend = bool(message.get("Resend"))
    if disabled_now or resend or policy.gives_up(first, at, attempt):
        outcome = "dead-lettered" if not resend else "failed"
        store.record_attempt(
            subscription_id,
            event,
            attempt=attempt,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            outcome=outcome,
        )
        if not resend:
            dead_letters.send({**message, "Attempt": attempt, "FirstAttemptAt": first})
        return DeliveryOutcome(outcome, attempt, result, disabled_now)

    delay = policy.delay_after(attempt)
    store.record_attempt(
        subscription_id,
        event,
        attempt=attempt,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        error=result.error,
        outcome=f"retry in {delay:g} s",
    )
    queue.send(
        delivery_message(
            subscription, event_id, attempt=attempt, first_attempt_at=first, due_at=at + delay
        ),
        delay_s=delay,
    )
    return DeliveryOutcome("retry", attempt, result)


def _attempt(
    subscription: Subscription,
    event: Mapping[str, Any],
    *,
    store: WebhookStore,
    allow_local: bool,
    poster: Poster,
) -> AttemptResult:
    """One signed POST; a refused endpoint or an unreadable secret is a failed attempt too."""
    try:
        # Checked again at each delivery: the name may resolve elsewhere by now.
        endpoint = check_endpoint(subscription.url, allow_local=allow_local)
        secret = store.secret(subscription)
    except (InvalidEndpoint, SecretUnreadable) as exc:
        return AttemptResult(None, 0, str(exc))
    body = event_body(event)
    timestamp = int(time.time())
    headers = {
        SIGNATURE_HEADER: signature(secret, timestamp, body),
        EVENT_ID_HEADER: event["EventId"],
        TIMESTAMP_HEADER: str(timestamp),
    }
    return poster(endpoint, body, headers)


def resend(
    *, store: WebhookStore, queue: DeliveryQueue, client_id: str, subscription_id: str,
    event_id: str,
) -> bool:  # fmt: skip
    """Queue one more delivery of a kept event (staff's "resend"): tried once, recorded, not
    retried. False if the endpoint or the event is gone."""
    subscription = store.get(client_id, subscription_id)
    if subscription is None or store.event(subscription_id, event_id) is None:
        return False
    queue.send(delivery_message(subscription, event_id, resend=True))
    return True


def fresh_delivery(message: Mapping[str, Any]) -> dict[str, Any]:
    """A dead-lettered delivery as a new one: attempt 0, a fresh retry window."""
    fresh = {k: v for k, v in message.items() if k not in ("DueAt", "FirstAttemptAt", "Reason")}
    fresh["Attempt"] = 0
    return fresh


def dead_letters_replay(
    *,
    dlq: MessageQueue,
    queue: DeliveryQueue,
    client_id: str,
    subscription_id: str | None = None,
    **options: Any,
) -> ReplayResult:
    """Send the key's dead-lettered deliveries (one endpoint's, given `subscription_id`) back
    to the deliveries queue with a fresh retry window, through the DLQ replay of
    pipeline/dlq.py (each message looked at once, rate-limited, the others left in place);
    `replay_queue`'s options apply."""

    def handle(messages: Sequence[QueueMessage], bucket: TokenBucket) -> list[MessageOutcome]:
        outcomes: list[MessageOutcome] = []
        for message in messages:
            try:
                body = json.loads(message.body)
            except ValueError:
                body = None
            if not isinstance(body, dict) or "EventId" not in body:
                outcomes.append(
                    MessageOutcome(message.message_id, Outcome.LEFT, "not a webhook delivery")
                )
                continue
            mine = body.get("ClientId") == client_id and (
                subscription_id is None or body.get("SubscriptionId") == subscription_id
            )
            if not mine:
                outcomes.append(MessageOutcome(message.message_id, Outcome.PASSED))
                continue
            bucket.take(1)
            try:
                new_id = queue.send(fresh_delivery(body))
            except Exception as exc:  # the queue is unreachable: the message stays
                outcomes.append(
                    MessageOutcome(message.message_id, Outcome.FAILED, f"{type(exc).__name__}")
                )
                continue
            outcomes.append(
                MessageOutcome(
                    message.message_id,
                    Outcome.SENT,
                    "sent to the webhook deliveries queue",
                    body.get("OrderId"),
                    detail={"sent_as": new_id, "event_id": body["EventId"]},
                )
            )
        return outcomes

    return replay_queue(source=dlq, handle=handle, **options)
