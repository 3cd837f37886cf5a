"""Webhooks through the running local runtime: the Orders stream, OrderEvents, the deliveries
queue and WebhookDelivery, posting to a receiver on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pipeline import wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.domain import InventoryItem
from pipeline.orders import order_submit
from pipeline.statuses import FINAL_STATUSES, OrderStatus
from pipeline.webhooks import (
    ALL_EVENTS,
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    new_secret,
    verify,
)
from pipeline.webhooks_flow import DeliveryQueue, resend
from pipeline.webhooks_store import ENV_DELIVERIES_QUEUE_URL, WebhookStore

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

WAIT_S = 90


class Receiver:
    """An HTTP receiver on 127.0.0.1 that keeps every request; it can be stopped and started
    again on the same port (a receiver that is down refuses connections)."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.port = 0
        self.server: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        received, lock = self.received, self.lock

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append(
                        {"at": time.time(), "headers": dict(self.headers), "body": body}
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def events(self) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(event, request) of every request so far."""
        import json

        with self.lock:
            return [(json.loads(r["body"]), r) for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def store(runtime_env: dict[str, str]) -> DynamoStore:
    return wiring.dynamo_store()


@pytest.fixture
def hooks(runtime_env: dict[str, str]) -> WebhookStore:
    return WebhookStore.from_env()


def _item(store: DynamoStore, stock: int) -> str:
    name = f"wh-{uuid.uuid4().hex[:10]}"
    store.inventory_put(InventoryItem(name, stock, Decimal("10.00"), "webhook test item"))
    return name


def _wait(condition: Any, what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_rejected_orders_client_is_notified_within_seconds_signed(
    store: DynamoStore, hooks: WebhookStore, receiver: Receiver
) -> None:
    # Given an API key with an endpoint for the default (final) events
    client_id = f"wh{uuid.uuid4().hex[:8]}"
    secret = new_secret()
    hooks.create(
        client_id=client_id,
        url=receiver.url,
        events=["order.rejected", "order.shipped"],
        secret=secret,
        created_by="test",
    )

    # When it submits an order for an item that does not exist
    submitted = time.time()
    order = order_submit(
        store=store,
        customer_name="Ann",
        items=[f"missing-{uuid.uuid4().hex[:6]}"],
        client_id=client_id,
    )

    # Then its endpoint hears of the rejection within seconds
    def rejected() -> Any:
        return [
            (e, r)
            for e, r in receiver.events()
            if e["OrderId"] == order.order_id and e["Type"] == "order.rejected"
        ]

    event, request = _wait(rejected, "the rejection event")[0]
    latency = request["at"] - submitted
    rejected_at = datetime.fromisoformat(event["Time"].replace("Z", "+00:00")).timestamp()
    print(
        f"\nrejected order notified {latency:.2f} s after it was submitted "
        f"(rejected after {rejected_at - submitted:.2f} s, "
        f"delivered {request['at'] - rejected_at:.2f} s later)"
    )
    assert latency < 5
    # And the request is signed: it verifies with the endpoint's secret, not with another
    assert verify(secret, request["headers"][SIGNATURE_HEADER], request["body"], now=time.time())
    assert not verify(
        new_secret(), request["headers"][SIGNATURE_HEADER], request["body"], time.time()
    )
    assert request["headers"][EVENT_ID_HEADER] == event["EventId"]
    # And the event says what happened, with the order's public fields
    assert event["Status"] == "REJECTED" and event["PreviousStatus"] == "PENDING"
    assert event["Reason"] == store.order_get(order.order_id).status_reason
    assert event["Order"]["OrderId"] == order.order_id and "ClientId" not in event["Order"]
    # And only the events subscribed to came (no order.pending)
    assert {e["Type"] for e, _ in receiver.events() if e["OrderId"] == order.order_id} == {
        "order.rejected"
    }


def test_a_receiver_down_for_a_while_gets_every_event_once_back_in_sequence(
    store: DynamoStore, hooks: WebhookStore, receiver: Receiver
) -> None:
    # Given an endpoint that wants every transition, and its receiver down
    client_id = f"wh{uuid.uuid4().hex[:8]}"
    secret = new_secret()
    subscription = hooks.create(
        client_id=client_id, url=receiver.url, events=ALL_EVENTS, secret=secret, created_by="t"
    )
    receiver.stop()

    # When orders of the key go through the pipeline meanwhile (4 ship, 1 is rejected)
    item = _item(store, 100)
    orders = [
        order_submit(
            store=store,
            customer_name=f"Customer {i}",
            items=[item],
            client_id=client_id,
            payment_token="tok_approve",
        )
        for i in range(4)
    ]
    orders.append(
        order_submit(store=store, customer_name="Late", items=["no-such-item"], client_id=client_id)
    )
    finals = {
        o.order_id: _wait(
            lambda o=o: (lambda now: now if now.status in FINAL_STATUSES else None)(
                store.order_get(o.order_id)
            ),
            f"order {o.order_id} to finish",
        )
        for o in orders
    }
    # And failed attempts are recorded while the receiver is down
    _wait(lambda: any(a.get("Error") for a in hooks.attempts(subscription.subscription_id)),
          "a failed attempt to be recorded")  # fmt: skip
    down_for = 3.0
    time.sleep(down_for)

    # Then once it is back, every status change of every order arrives
    receiver.start()
    expected = {
        (order_id, n)
        for order_id, order in finals.items()
        for n in range(1, len(order.history) + 1)
    }

    def all_arrived() -> bool:
        got = {(e["OrderId"], e["Sequence"]) for e, _ in receiver.events()}
        return expected <= got

    _wait(all_arrived, "every event after the receiver came back")
    events = [e for e, _ in receiver.events()]
    # And each verifies, and sorting one order's events by Sequence gives its history
    for _, request in receiver.events():
        assert verify(secret, request["headers"][SIGNATURE_HEADER], request["body"], time.time())
    for order_id, order in finals.items():
        mine = {e["Sequence"]: e for e in events if e["OrderId"] == order_id}
        statuses = [mine[n]["Status"] for n in sorted(mine)]
        assert statuses == [str(change.status) for change in order.history]
    assert [str(finals[o.order_id].status) for o in orders] == ["SHIPPED"] * 4 + ["REJECTED"]
    # And a repeated event (redelivered) carries the same EventId: each id is one change
    ids: dict[str, tuple[str, int]] = {}
    for event in events:
        assert ids.setdefault(event["EventId"], (event["OrderId"], event["Sequence"])) == (
            event["OrderId"],
            event["Sequence"],
        )

    # When staff resend one of them
    shipped = next(e for e in events if e["Status"] == str(OrderStatus.SHIPPED))
    before = sum(1 for e in events if e["EventId"] == shipped["EventId"])
    assert resend(
        store=hooks,
        queue=DeliveryQueue(hooks_env_queue()),
        client_id=client_id,
        subscription_id=subscription.subscription_id,
        event_id=shipped["EventId"],
    )
    # Then the receiver gets it again, with the same id and the same body
    _wait(
        lambda: sum(1 for e, _ in receiver.events() if e["EventId"] == shipped["EventId"]) > before,
        "the resent event",
    )
    copies = [e for e, _ in receiver.events() if e["EventId"] == shipped["EventId"]]
    assert all(copy == shipped for copy in copies)
    # And the attempts are recorded, failures with their error, successes with status 204
    attempts = hooks.attempts(subscription.subscription_id, limit=500)
    assert any(a.get("StatusCode") == 204 for a in attempts)
    assert any("Connection refused" in (a.get("Error") or "") for a in attempts)


def hooks_env_queue() -> str:
    import os

    return os.environ[ENV_DELIVERIES_QUEUE_URL]
