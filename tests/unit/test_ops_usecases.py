"""The use cases and store methods added for the operations portal, on in-memory fakes:
inventory rules, DLQ peek / replay / discard / purge, stream-failure re-drive, and the capped
order count."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.streams import StreamRangeGone
from pipeline.dlq import (
    SWEEP_FALLBACK,
    Checkpoint,
    MemoryLedger,
    MessageOutcome,
    ReplayResult,
    Scope,
    TokenBucket,
    dlq_discard,
    dlq_peek,
    dlq_purge,
    dlq_replay,
    parse_stream_failure,
    stream_failures_replay,
)
from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.errors import (
    InsufficientStock,
    InvalidInventoryItem,
    InventoryItemExists,
    InventoryItemNotFound,
    MessageNotFound,
)
from pipeline.inventory import inventory_adjust_stock, inventory_create, inventory_update_details
from pipeline.local.event_sources import Checkpoints, MappingSpec, StreamPoller
from pipeline.ports import QueueMessage
from pipeline.statuses import OrderStatus
from tests.fakes import FakeQueue, FakeStore


def order_body(order_id: str, attempt: int = 1) -> str:
    """A fulfilment request as the Orders queue carries it."""
    return json.dumps({"OrderId": order_id, "Attempt": attempt})


class LoggingLedger(MemoryLedger):
    """A ledger that writes each checkpoint with outcomes into a queue's log."""

    def __init__(self, log: list[str]):
        super().__init__()
        self.log = log

    def record(self, outcomes: Sequence[MessageOutcome]) -> Checkpoint:
        if outcomes:
            self.log.append("record " + " ".join(f"{o.message_id}={o.outcome}" for o in outcomes))
        return super().record(outcomes)


def copy_queue(queue: FakeQueue) -> FakeQueue:
    """An independent copy of a queue, its clock and messages included."""
    return copy.deepcopy(queue)


# -- Inventory rules --------------------------------------------------------------------------


def test_an_item_is_created_with_its_price_kept_exact():
    # Given an empty inventory
    store = FakeStore()

    # When staff create an item from form text
    item = inventory_create(
        store=store, item_name="  Desk Lamp ", stock=3, price="19.9", description=" LED "
    )

    # Then the name and description are trimmed and the price is a two-place Decimal
    assert item == InventoryItem("Desk Lamp", 3, Decimal("19.90"), "LED")
    assert str(item.price) == "19.90"
    assert store.inventory["Desk Lamp"] == item


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"item_name": "bad/name"}, "ItemName", "may hold letters"),
        ({"item_name": ""}, "ItemName", "must not be empty"),
        ({"stock": -1}, "Stock", "0 or more"),
        ({"stock": True}, "Stock", "whole number"),
        ({"stock": "5"}, "Stock", "whole number"),
        ({"price": "19.999"}, "Price", "at most 2 decimal places"),
        ({"price": Decimal("-0.01")}, "Price", "0 or more"),
        ({"price": 19.99}, "Price", "decimal number"),  # a float: never
        ({"price": "NaN"}, "Price", "decimal number"),
        ({"price": "Infinity"}, "Price", "decimal number"),
        ({"price": "abc"}, "Price", "decimal number"),
        ({"price": False}, "Price", "decimal number"),
        ({"description": "x" * 501}, "Description", "at most 500"),
        ({"description": "bell\x07"}, "Description", "control characters"),
    ],
)
def test_invalid_items_are_refused_before_anything_is_written(
    fields: dict[str, Any], field: str, message: str
):
    # Given a valid item but for one field
    store = FakeStore()
    data = {"item_name": "lamp", "stock": 1, "price": "1.00", "description": "", **fields}

    # When it is created
    with pytest.raises(InvalidInventoryItem) as raised:
        inventory_create(store=store, **data)

    # Then the error names the field, and nothing was written
    assert message in raised.value.errors[field]
    assert store.writes == []


def test_every_bad_field_is_named_at_once():
    with pytest.raises(InvalidInventoryItem) as raised:
        inventory_create(store=FakeStore(), item_name="", stock=-1, price="x")
    assert set(raised.value.errors) == {"ItemName", "Stock", "Price"}


def test_a_price_with_trailing_zeros_beyond_two_places_is_still_two_places():
    item = inventory_create(store=FakeStore(), item_name="pen", stock=1, price="1.500")
    assert item.price == Decimal("1.50")


def test_creating_an_existing_item_is_refused():
    store = FakeStore(inventory=[InventoryItem("pen", 5, Decimal("1.00"))])
    with pytest.raises(InventoryItemExists):
        inventory_create(store=store, item_name="pen", stock=1, price="2.00")
    assert store.inventory["pen"].stock == 5


@pytest.mark.parametrize("delta", [0, True, 1.5, "3", 10**10])
def test_an_adjustment_must_be_a_non_zero_whole_number(delta: object):
    store = FakeStore(inventory=[InventoryItem("pen", 5, Decimal("1.00"))])
    with pytest.raises(InvalidInventoryItem):
        inventory_adjust_stock(store=store, item_name="pen", delta=delta)
    assert store.writes == []


def test_adjusting_an_unknown_item_says_it_does_not_exist():
    with pytest.raises(InventoryItemNotFound):
        inventory_adjust_stock(store=FakeStore(), item_name="ghost", delta=1)


def test_an_adjustment_below_zero_is_insufficient_stock():
    store = FakeStore(inventory=[InventoryItem("pen", 2, Decimal("1.00"))])
    with pytest.raises(InsufficientStock):
        inventory_adjust_stock(store=store, item_name="pen", delta=-3)
    assert store.inventory["pen"].stock == 2


def test_editing_details_validates_the_price_and_leaves_stock_to_the_store():
    store = FakeStore(inventory=[InventoryItem("pen", 2, Decimal("1.00"))])
    with pytest.raises(InvalidInventoryItem):
        inventory_update_details(store=store, item_name="pen", price="-1", description="")
    item = inventory_update_details(store=store, item_name="pen", price="3", description="Blue")
    assert item == InventoryItem("pen", 2, Decimal("3.00"), "Blue")


# -- DLQ: shared helpers ----------------------------------------------------------------------


def _order(order_id: str, status: OrderStatus, attempt: int = 1) -> Order:
    """An order in `status`, on its `attempt`-th reservation."""
    new = Order.new(customer_name="Ada", lines=[OrderLine("pen", 1)], order_id=order_id)
    return replace(new, status=status, attempt=attempt)


def reserved(*order_ids: str) -> list[Order]:
    """RESERVED orders on their first attempt: what a replay sends back."""
    return [_order(order_id, OrderStatus.RESERVED) for order_id in order_ids]


def replay(dlq: FakeQueue, target: FakeQueue, store: FakeStore, **options: Any) -> ReplayResult:
    """dlq_replay on the fakes, on the DLQ's clock (its long polls and the rate's waits)."""
    options = {"clock": lambda: dlq.now, "sleep": dlq.advance, "wait_seconds": 1, **options}
    return dlq_replay(dlq=dlq, target=target, store=store, **options)


def counts(result: ReplayResult) -> tuple[int, int, int, int, int]:
    return result.sent, result.skipped, result.left, result.failed, result.passed


# -- DLQ peek ---------------------------------------------------------------------------------


def test_peek_shows_each_message_once_with_its_order_and_releases_them_all():
    # Given a DLQ with three fulfilment requests (one for a missing order) and a stray body
    dlq = FakeQueue([order_body("o-1"), order_body("o-gone", 2), order_body("o-3"), "garbage"])
    store = FakeStore([_order("o-1", OrderStatus.RESERVED), _order("o-3", OrderStatus.SHIPPED)])
    dlq.advance(1)  # first looked at a second after they arrived

    # When it is peeked
    letters = dlq_peek(dlq=dlq, store=store)

    # Then each message appears once, with its order, that order's status and what a replay
    # would do with it now
    assert [(x.message_id, x.order_id, x.attempt) for x in letters] == [
        ("m1", "o-1", 1),
        ("m2", "o-gone", 2),
        ("m3", "o-3", 1),
        ("m4", None, None),
    ]
    assert (letters[0].order_status, letters[0].replay_verdict) == ("RESERVED", "sent")
    assert letters[1].order_status is None and letters[1].lookup_error == "no such order"
    assert (letters[2].replay_verdict, letters[2].replay_reason) == (
        "skipped",
        "the order is SHIPPED now",
    )
    assert letters[0].receive_count == 1
    assert letters[0].first_received_at.isoformat() == "2026-01-01T00:00:01+00:00"
    # And every message is visible again at once
    assert dlq.visible == ["m1", "m2", "m3", "m4"]


def test_peek_does_not_take_an_empty_receive_for_an_empty_queue_while_the_depth_disagrees():
    # Given a DLQ with two messages whose first two receives come back empty (as a short poll
    # that asked the wrong servers can)
    dlq = FakeQueue([order_body("a"), order_body("b")])
    dlq.false_empty_receives = 2

    # When it is peeked
    letters = dlq_peek(dlq=dlq)

    # Then both are listed after all
    assert [x.message_id for x in letters] == ["m1", "m2"]


def test_peek_stops_at_its_maximum_and_still_releases_what_it_received():
    dlq = FakeQueue([order_body(f"o-{n}") for n in range(25)])
    letters = dlq_peek(dlq=dlq, max_messages=12)
    assert len(letters) == 12
    assert len(dlq.visible) == 25


def test_peek_reports_a_store_failure_on_the_messages_and_asks_only_once():
    # Given an Orders table that cannot be reached
    dlq = FakeQueue([order_body("o-1"), order_body("o-2")])
    store = FakeStore()
    store.fail_reads = ConnectionError("DynamoDB unreachable")

    # When the DLQ is peeked
    letters = dlq_peek(dlq=dlq, store=store)

    # Then the messages list, each with the error, after a single failed lookup
    assert all("DynamoDB unreachable" in (x.lookup_error or "") for x in letters)
    assert len(store.order_reads) == 1


def test_peek_shows_the_batch_a_stream_failure_record_describes():
    # Given the stream-failure queue with one on-failure record
    queue = FakeQueue([failure_record(start="100", end="120", size=3)])

    # When it is peeked
    (letter,) = dlq_peek(dlq=queue)

    # Then the batch is read from it, and no order is named
    assert letter.order_id is None
    assert letter.stream_batch is not None
    assert (letter.stream_batch.start, letter.stream_batch.end) == ("100", "120")
    assert letter.stream_batch.batch_size == 3


# -- DLQ replay: what is sent, skipped, left --------------------------------------------------


def test_replay_sends_each_message_records_it_and_deletes_it_after():
    # Given two messages for reserved orders, and one log for both queues and the ledger
    dlq, target = FakeQueue([order_body("a"), order_body("b")]), FakeQueue()
    dlq.log = target.log
    ledger = LoggingLedger(dlq.log)

    # When they are replayed
    result = replay(dlq, target, FakeStore(reserved("a", "b")), ledger=ledger)

    # Then both were sent, then recorded, and only then deleted
    assert counts(result) == (2, 0, 0, 0, 0)
    assert target.log == [
        f"send {order_body('a')}",
        f"send {order_body('b')}",
        "record m1=sent m2=sent",
        "delete m1",
        "delete m2",
    ]
    assert dlq.messages == {}


def test_messages_whose_order_moved_on_are_skipped_deleted_and_the_reason_kept():
    # Given messages for a reserved order, a cancelled one, a shipped one, one reserved again
    # since (attempt 2), one that does not exist, and a body that is no fulfilment request
    orders = [
        _order("ok", OrderStatus.RESERVED),
        _order("cancelled", OrderStatus.CANCELLED),
        _order("shipped", OrderStatus.SHIPPED),
        _order("newer", OrderStatus.RESERVED, attempt=2),
    ]
    bodies = [
        order_body("ok"),
        order_body("cancelled"),
        order_body("shipped"),
        order_body("newer", 1),
        order_body("ghost"),
        "not json",
    ]
    dlq, target, ledger = FakeQueue(bodies), FakeQueue(), MemoryLedger()

    # When the DLQ is replayed
    result = replay(dlq, target, FakeStore(orders), ledger=ledger)

    # Then only the reserved order's message is sent; the moved-on ones are deleted unsent
    # with their reasons; the two that cannot be judged stay in the DLQ
    assert counts(result) == (1, 3, 2, 0, 0)
    assert [m.body for m in target.sent] == [order_body("ok")]
    reasons = {e.message_id: (e.outcome, e.reason) for e in ledger.entries.values()}
    assert reasons["m2"] == ("skipped", "the order is CANCELLED now")
    assert reasons["m3"] == ("skipped", "the order is SHIPPED now")
    assert reasons["m4"] == (
        "skipped",
        "the order is on attempt 2; this message is for attempt 1",
    )
    assert reasons["m5"] == ("left", "no such order")
    assert reasons["m6"][0] == "left" and reasons["m6"][1].startswith("not a fulfilment request")
    assert ledger.entries["m2"].body == order_body("cancelled")  # what was deleted is kept
    assert dlq.visible == ["m5", "m6"]


def test_a_message_that_fails_to_send_stays_in_the_dlq_and_is_visible_again():
    # Given a target queue that refuses every message
    dlq, target = FakeQueue([order_body("a"), order_body("b")]), FakeQueue(fail_sends=True)

    # When a replay runs
    result = replay(dlq, target, FakeStore(reserved("a", "b")))

    # Then nothing moved and nothing is lost: both are in the DLQ, visible
    assert counts(result) == (0, 0, 0, 2, 0)
    assert dlq.visible == ["m1", "m2"]


def test_an_entry_sqs_refuses_in_a_batch_fails_alone():
    # Given three messages, one of which SQS refuses to take back
    dlq, target = FakeQueue([order_body("a"), order_body("b"), order_body("c")]), FakeQueue()
    target.refuse_bodies = {order_body("b")}

    # When a replay runs
    result = replay(dlq, target, FakeStore(reserved("a", "b", "c")))

    # Then the other two went and the refused one is still in the DLQ
    assert counts(result) == (2, 0, 0, 1, 0)
    assert list(dlq.messages) == ["m2"]


def test_a_store_that_cannot_be_read_fails_the_messages_and_keeps_them():
    dlq, store = FakeQueue([order_body("a")]), FakeStore(reserved("a"))
    store.fail_reads = ConnectionError("DynamoDB unreachable")
    result = replay(dlq, FakeQueue(), store)
    assert counts(result) == (0, 0, 0, 1, 0)
    assert dlq.visible == ["m1"]


# -- DLQ replay: empty receives, holding, settling --------------------------------------------


def test_an_empty_receive_is_not_taken_as_empty_while_the_depth_says_otherwise():
    # Given five messages, and receives that come back empty three times before any message
    # (the old replay stopped at the first one and reported success)
    dlq, target = FakeQueue([order_body(str(n)) for n in range(5)]), FakeQueue()
    dlq.false_empty_receives = 3

    # When a replay runs
    result = replay(dlq, target, FakeStore(reserved(*[str(n) for n in range(5)])))

    # Then all five were sent: the depth kept it polling
    assert counts(result) == (5, 0, 0, 0, 0)
    assert result.unreceived == 0
    assert dlq.messages == {}


def test_a_replay_says_how_many_messages_it_could_not_receive_if_receives_stay_empty():
    # Given two messages that no receive returns, for longer than the replay waits
    dlq = FakeQueue([order_body("a"), order_body("b")])
    dlq.false_empty_receives = 100

    # When a replay runs with three empty receives allowed
    result = replay(dlq, FakeQueue(), FakeStore(reserved("a", "b")), max_empty_receives=3)

    # Then it stops, and says the depth still shows both
    assert counts(result) == (0, 0, 0, 0, 0)
    assert result.unreceived == 2
    assert dlq.receives == 4


def test_a_replay_that_outlasts_the_visibility_timeout_looks_at_each_message_once():
    # Given a DLQ whose kept messages reappear at once (as they would in a long run), and a
    # selection that leaves most of them behind
    dlq, target = FakeQueue([order_body(str(n)) for n in range(4)]), FakeQueue()
    original = dlq.receive

    def receive_with_timeouts(**kwargs: Any) -> list[QueueMessage]:
        dlq.advance(3600)  # every earlier visibility timeout has run out
        return original(**kwargs)

    dlq.receive = receive_with_timeouts  # type: ignore[method-assign]

    # When the replay runs over all of them
    result = replay(dlq, target, FakeStore(reserved("0")))

    # Then it looked at each message once: one sent, three left (no such order), none twice
    assert counts(result) == (1, 0, 3, 0, 0)
    assert [m.body for m in target.sent] == [order_body("0")]


def test_messages_kept_stay_hidden_until_the_end_and_are_released_together():
    # Given twelve messages of which only the last is replayable
    bodies = [order_body(f"gone-{n}") for n in range(11)] + [order_body("ok")]
    dlq, target = FakeQueue(bodies), FakeQueue()

    # When a replay runs
    result = replay(dlq, target, FakeStore(reserved("ok")))

    # Then the eleven left were each looked at once (not handed out again and again) and are
    # all visible again at the end
    assert counts(result) == (1, 0, 11, 0, 0)
    assert set(dlq.receive_counts.values()) == {1}
    assert len(dlq.visible) == 11


def test_a_replay_waits_for_messages_hidden_by_someone_else_within_its_settle_time():
    # Given two messages, one of them hidden for 10 s by another reader (a dead worker)
    dlq, target = FakeQueue([order_body("a"), order_body("b")]), FakeQueue()
    dlq.receive(max_messages=1, visibility=10)
    store = FakeStore(reserved("a", "b"))

    # When a replay runs without settle time, then another with 15 s of it
    first = replay(dlq, target, store)
    second = replay(dlq, target, store, settle_seconds=15)

    # Then the first sends the visible one and says one was in flight elsewhere; the second
    # waits for it and sends it
    assert (first.sent, first.in_flight_elsewhere) == (1, 1)
    assert (second.sent, second.in_flight_elsewhere) == (1, 0)
    assert sorted(m.body for m in target.sent) == [order_body("a"), order_body("b")]


# -- DLQ replay: scope, limit, cancel, resume -------------------------------------------------


def test_a_selection_sends_only_those_and_stops_once_they_are_done():
    # Given five messages, the second one selected
    dlq, target = FakeQueue([order_body(str(n)) for n in range(5)]), FakeQueue()
    store = FakeStore(reserved(*[str(n) for n in range(5)]))

    # When the selection is replayed
    result = replay(dlq, target, store, scope=Scope(message_ids=frozenset({"m2"})))

    # Then only it was sent; the others are passed over and visible in the DLQ
    assert counts(result)[0] == 1
    assert [m.body for m in target.sent] == [order_body("1")]
    assert dlq.visible == ["m1", "m3", "m4", "m5"]


def test_filters_pick_messages_by_order_age_and_receive_count():
    # Given three messages sent at 0 s, 100 s and 200 s, the first received twice already
    dlq = FakeQueue([order_body("old")])
    dlq.advance(100)
    dlq.send_raw(order_body("mid"))
    dlq.advance(100)
    dlq.send_raw(order_body("new"))
    dlq.release(dlq.receive(max_messages=1, visibility=30))  # "old" handed out once
    store = FakeStore(reserved("old", "mid", "new"))

    def sent_by(scope: Scope) -> list[str]:
        target = FakeQueue()
        replay(copy_queue(dlq), target, store, scope=scope)
        return [json.loads(m.body)["OrderId"] for m in target.sent]

    # Then each filter sends exactly what it names
    assert sent_by(Scope(order_id="mid")) == ["mid"]
    assert sent_by(Scope(min_age_seconds=150)) == ["old"]
    assert sent_by(Scope(max_age_seconds=150)) == ["mid", "new"]
    assert sent_by(Scope(min_receives=2)) == ["old"]
    assert sent_by(Scope(max_receives=1, min_age_seconds=50)) == ["mid"]


def test_a_limit_stops_after_that_many_sent_and_leaves_the_rest_untouched():
    # Given five replayable messages
    dlq, target = FakeQueue([order_body(str(n)) for n in range(5)]), FakeQueue()

    # When at most two are replayed
    result = replay(dlq, target, FakeStore(reserved(*[str(n) for n in range(5)])), limit=2)

    # Then two were sent, and the other three are visible, not counted
    assert counts(result) == (2, 0, 0, 0, 0)
    assert dlq.visible == ["m3", "m4", "m5"]


def test_a_cancelled_replay_stops_between_batches_and_releases_what_it_kept():
    # Given 25 messages (a bad first one kept), and a ledger that says "stop" at its third
    # checkpoint (the start, then one per batch)
    bodies = ["garbage"] + [order_body(str(n)) for n in range(24)]
    dlq, target = FakeQueue(bodies), FakeQueue()
    ledger = MemoryLedger(stop_after=3)

    # When the replay runs
    result = replay(dlq, target, FakeStore(reserved(*[str(n) for n in range(24)])), ledger=ledger)

    # Then it stopped after two batches: 19 sent, the kept one and the rest visible
    assert result.cancelled
    assert counts(result) == (19, 0, 1, 0, 0)
    assert len(target.sent) == 19
    assert len(dlq.visible) == 6


class Died(BaseException):
    """The worker's process went away (nothing after this runs, not even cleanup)."""


def test_a_replay_resumed_after_its_worker_died_finishes_with_exact_counts():
    # Given 30 messages: 20 replayable, 5 for cancelled orders, 5 unreadable, interleaved
    bodies, orders = [], []
    for n in range(30):
        if n % 6 == 4:
            bodies.append(order_body(f"c{n}"))
            orders.append(_order(f"c{n}", OrderStatus.CANCELLED))
        elif n % 6 == 5:
            bodies.append(f"junk {n}")
        else:
            bodies.append(order_body(f"r{n}"))
            orders.extend(reserved(f"r{n}"))
    dlq, target, store = FakeQueue(bodies), FakeQueue(), FakeStore(orders)
    ledger = MemoryLedger()
    real_record = ledger.record
    real_release = dlq.release
    calls = 0

    def record_then_die(outcomes: Any) -> Checkpoint:
        nonlocal calls
        calls += 1
        checkpoint = real_record(outcomes)
        if calls == 3:  # after the second batch was sent and recorded, before its delete
            dlq.release = lambda messages: 0  # type: ignore[method-assign]  # no cleanup
            raise Died()
        return checkpoint

    ledger.record = record_then_die  # type: ignore[method-assign]

    # When the worker dies mid-job
    with pytest.raises(Died):
        replay(dlq, target, store, ledger=ledger, visibility=60)
    sent_before = len(target.sent)

    # And the job is resumed on the same ledger, waiting out the dead run's hidden messages
    ledger.record = real_record  # type: ignore[method-assign]
    dlq.release = real_release  # type: ignore[method-assign]
    result = replay(dlq, target, store, ledger=ledger, visibility=60, settle_seconds=90)

    # Then the counts are exact: 20 sent, 5 skipped, 5 left, and each replayable message was
    # sent once (the second batch was recorded before the death, so it was not sent again)
    assert sent_before == 14  # the two batches of 10 before the death held 14 replayable ones
    assert counts(result) == (20, 5, 5, 0, 0)
    assert sorted(m.body for m in target.sent) == sorted(b for b in bodies if '"r' in b)
    assert sorted(dlq.messages.values()) == sorted(b for b in bodies if b.startswith("junk"))


# -- DLQ replay: the rate ---------------------------------------------------------------------


def test_a_token_bucket_holds_the_average_and_allows_one_burst():
    # Given a bucket of 20 a second on a clock that only moves when it sleeps
    now = [0.0]
    bucket = TokenBucket(20, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))

    # When 10 tokens are taken at once, then 100 one by one
    burst = bucket.take(10)
    for _ in range(100):
        bucket.take(1)

    # Then the burst cost nothing and the hundred took five seconds
    assert burst == 0.0
    assert now[0] == pytest.approx(5.0)


def test_a_replay_sends_at_its_rate():
    # Given 200 replayable messages and a rate of 25 a second, every send timed
    names = [f"o-{n}" for n in range(200)]
    dlq, target = FakeQueue([order_body(n) for n in names]), FakeQueue()
    times: list[float] = []
    send = target.send_raw_batch

    def timed(bodies: Any) -> list[str | None]:
        times.extend([dlq.now] * len(bodies))
        return send(bodies)

    target.send_raw_batch = timed  # type: ignore[method-assign]

    # When they are replayed
    result = replay(dlq, target, FakeStore(reserved(*names)), rate=25)

    # Then the 190 after the first burst of 10 took 190 / 25 seconds, and no second saw more
    # than the rate and one burst
    assert result.sent == 200
    assert times[-1] - times[0] == pytest.approx(190 / 25, rel=0.01)
    assert max(sum(1 for t in times if s <= t < s + 1) for s in times) <= 25 + 10


@pytest.mark.parametrize("rate", [0, -1, 501])
def test_a_rate_outside_what_sqs_allows_is_refused(rate: float):
    with pytest.raises(ValueError, match="rate"):
        replay(FakeQueue(), FakeQueue(), FakeStore(), rate=rate)


# -- Stream failures --------------------------------------------------------------------------

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/Orders/stream/2026-01-01T00:00:00.000"


def failure_record(
    *, start: str = "100", end: str = "102", size: int = 3, shard: str = "shardId-1"
) -> str:
    """An on-failure record as AWS documents it for DynamoDB stream sources."""
    return json.dumps(
        {
            "requestContext": {
                "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:OrderProcessing",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 6,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": "2026-01-01T00:38:06.021Z",
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": start,
                "endSequenceNumber": end,
                "approximateArrivalOfFirstRecord": "2026-01-01T00:38:04Z",
                "approximateArrivalOfLastRecord": "2026-01-01T00:38:05Z",
                "batchSize": size,
                "streamArn": STREAM_ARN,
            },
        }
    )


def stream_record(sequence: int, order_id: str, event: str = "INSERT", status: str = "PENDING"):
    """A stream record of an order write, as GetRecords returns it."""
    return {
        "eventName": event,
        "dynamodb": {
            "SequenceNumber": f"{sequence:021d}",
            "Keys": {"OrderId": {"S": order_id}},
            "NewImage": {"OrderId": {"S": order_id}, "Status": {"S": status}},
        },
    }


class ShardRecords:
    """A stream that holds some shards' records (the StreamReader the use case reads through)."""

    def __init__(self, records: dict[str, list[dict[str, Any]]], error: Exception | None = None):
        self.records, self.error, self.reads = records, error, []

    def read_range(self, *, stream_arn: str, shard_id: str, start: str, end: str) -> list:
        self.reads.append((shard_id, start, end))
        if self.error is not None:
            raise self.error
        if shard_id not in self.records:
            raise StreamRangeGone("ResourceNotFoundException: Shard does not exist")
        held = self.records[shard_id]
        return [r for r in held if int(start) <= int(r["dynamodb"]["SequenceNumber"]) <= int(end)]


def pending(order_id: str, item: str = "pen") -> Order:
    return Order.new(customer_name="Ada", lines=[OrderLine(item, 1)], order_id=order_id)


def redrive(queue: FakeQueue, streams: ShardRecords, store: FakeStore, orders: FakeQueue, **kw):
    options = {"clock": lambda: queue.now, "sleep": queue.advance, "wait_seconds": 1, **kw}
    return stream_failures_replay(
        queue=queue, streams=streams, store=store, orders_queue=orders, **options
    )


def test_the_local_runtimes_failure_record_is_read_as_aws_writes_it():
    # Given the record the local stream poller sends for a batch it gave up on
    sent: list[str] = []

    class Sqs:
        def send_message(self, *, QueueUrl: str, MessageBody: str) -> None:
            sent.append(MessageBody)

    spec = MappingSpec(
        "OrdersStream", "OrderProcessing", "arn:fn", STREAM_ARN, 10, on_failure_arn="arn:q"
    )
    poller = StreamPoller(
        spec,
        streams=None,
        sqs=Sqs(),
        invoke=lambda event: None,
        region="us-east-1",
        checkpoints=Checkpoints(None),
        stop=threading.Event(),
        queue_url_of=lambda arn: "http://127.0.0.1/q",
    )
    batch = [
        {"dynamodb": {"SequenceNumber": seq, "ApproximateCreationDateTime": 1767225600}}
        for seq in ("000000000000000000007", "000000000000000000009")
    ]
    poller._send_failure("shardId-7", batch, "RetryAttemptsExhausted", 6)

    # When it is parsed, and so is AWS's documented example
    local = parse_stream_failure(sent[0])
    documented = parse_stream_failure(failure_record(start="800", end="801", size=2))

    # Then both name the shard, the range, the size and the stream
    assert (local.shard_id, local.start, local.end, local.batch_size, local.stream_arn) == (
        "shardId-7",
        "000000000000000000007",
        "000000000000000000009",
        2,
        STREAM_ARN,
    )
    assert local.condition == documented.condition == "RetryAttemptsExhausted"
    assert (documented.start, documented.end, documented.batch_size) == ("800", "801", 2)


@pytest.mark.parametrize(
    "body", ["not json", "{}", '{"DDBStreamBatchInfo": {"shardId": "s"}}', order_body("o-1")]
)
def test_a_body_that_is_no_failure_record_is_refused(body: str):
    with pytest.raises(ValueError):
        parse_stream_failure(body)


def test_a_failed_batch_is_re_driven_for_the_orders_still_pending():
    # Given a failed batch of three orders: two still PENDING (one of them for an item in
    # stock, one for an unknown item), one that moved on; and a record of a later write in the
    # same range that is not the batch's (the pipeline's own RESERVED write of another order)
    store = FakeStore(
        [pending("p1"), pending("p2", item="ghost"), _order("done", OrderStatus.SHIPPED)],
        [InventoryItem("pen", 5, Decimal("2.00"))],
    )
    streams = ShardRecords(
        {
            "shardId-1": [
                stream_record(100, "p1"),
                stream_record(101, "done"),
                stream_record(102, "other", event="MODIFY", status="RESERVED"),
                stream_record(103, "p2"),
            ]
        }
    )
    queue, orders, ledger = (
        FakeQueue([failure_record(end="103", size=3)]),
        FakeQueue(),
        MemoryLedger(),
    )

    # When the stream-failure queue is replayed
    result = redrive(queue, streams, store, orders, ledger=ledger)

    # Then the batch was read back, p1 reserved and sent on, p2 rejected, the shipped one left
    assert streams.reads == [("shardId-1", "100", "103")]
    assert counts(result) == (1, 0, 0, 0, 0)
    assert store.order("p1").status == OrderStatus.RESERVED
    assert store.inventory["pen"].stock == 4
    assert [m.json()["OrderId"] for m in orders.sent] == ["p1"]
    assert store.order("p2").status == OrderStatus.REJECTED
    entry = ledger.entries["m1"]
    assert entry.detail["source"] == "stream"
    assert entry.detail["orders"] == {
        "p1": "reserved, sent to the Orders queue",
        "done": "moved on: SHIPPED",
        "p2": f"rejected: {store.order('p2').status_reason}",
    }
    assert entry.reason == "re-driven from the stream: 2 order(s) re-run"
    # And the failure record is gone from its queue
    assert queue.messages == {}


def test_a_batch_the_stream_no_longer_holds_is_left_for_the_pending_sweep():
    # Given a record for a shard the stream no longer has
    queue, ledger = FakeQueue([failure_record(shard="shardId-gone")]), MemoryLedger()

    # When it is replayed
    result = redrive(queue, ShardRecords({}), FakeStore(), FakeQueue(), ledger=ledger)

    # Then it stays in the queue, saying the PENDING sweep will take its orders
    assert counts(result) == (0, 0, 1, 0, 0)
    assert ledger.entries["m1"].reason == SWEEP_FALLBACK
    assert ledger.entries["m1"].detail["source"] == "sweep"
    assert "Shard does not exist" in ledger.entries["m1"].detail["why"]
    assert queue.visible == ["m1"]


def test_a_batch_whose_orders_all_moved_on_is_skipped_and_one_the_stream_cannot_serve_fails():
    # Given two records: one whose only order shipped, one on a stream that errors
    store = FakeStore([_order("done", OrderStatus.SHIPPED)])
    streams = ShardRecords({"shardId-1": [stream_record(100, "done")]})
    queue = FakeQueue([failure_record(end="100", size=1)])

    # When it is replayed, then a second record replayed while the stream errors
    first = redrive(queue, streams, store, FakeQueue())
    queue.send_raw(failure_record())
    second = redrive(queue, ShardRecords({}, error=ConnectionError("down")), store, FakeQueue())

    # Then the first was skipped (deleted), the second failed and stays
    assert counts(first) == (0, 1, 0, 0, 0)
    assert counts(second) == (0, 0, 0, 1, 0)
    assert list(queue.messages) == ["m2"]


def test_a_batch_read_only_in_part_says_the_sweep_takes_the_rest():
    # Given a batch of three of which the stream still returns one record
    store = FakeStore([pending("p1")], [InventoryItem("pen", 5, Decimal("2.00"))])
    streams = ShardRecords({"shardId-1": [stream_record(100, "p1")]})
    ledger = MemoryLedger()

    # When it is replayed
    redrive(FakeQueue([failure_record(size=3)]), streams, store, FakeQueue(), ledger=ledger)

    # Then the one order was re-driven, and the reason says the sweep takes the rest
    assert ledger.entries["m1"].detail["source"] == "stream+sweep"
    assert ledger.entries["m1"].reason.endswith(
        "read 1 of 3 records, the PENDING sweep takes the rest"
    )


# -- DLQ discard and purge --------------------------------------------------------------------


def test_discard_deletes_the_one_message_by_id_and_releases_the_others():
    dlq = FakeQueue([order_body("a"), order_body("b"), order_body("c")])
    gone = dlq_discard(dlq=dlq, message_id="m2")
    assert gone.body == order_body("b")
    assert list(dlq.messages) == ["m1", "m3"]
    assert dlq.visible == ["m1", "m3"]


def test_discard_finds_its_message_after_an_empty_receive():
    dlq = FakeQueue([order_body("a"), order_body("b")])
    dlq.false_empty_receives = 1
    assert dlq_discard(dlq=dlq, message_id="m2").body == order_body("b")
    assert list(dlq.messages) == ["m1"]


def test_discarding_a_message_that_is_not_there_changes_nothing():
    dlq = FakeQueue([order_body("a")])
    with pytest.raises(MessageNotFound):
        dlq_discard(dlq=dlq, message_id="nope")
    assert dlq.visible == ["m1"]


def test_purge_empties_the_queue_and_says_about_how_many_there_were():
    dlq = FakeQueue([order_body("a"), order_body("b")])
    dlq.receive(max_messages=1, visibility=30)
    assert dlq_purge(queue=dlq) == 2
    assert dlq.messages == {}


# -- Order counts per status ------------------------------------------------------------------


class PagedCounts:
    """A DynamoDB client whose COUNT query answers in pages of `per_page`."""

    def __init__(self, total: int, per_page: int):
        self.total, self.per_page, self.calls = total, per_page, 0

    def query(self, **kwargs: Any) -> dict[str, Any]:
        assert kwargs["Select"] == "COUNT" and kwargs["IndexName"] == "StatusIndex"
        self.calls += 1
        start = int(kwargs.get("ExclusiveStartKey", {}).get("n", {}).get("N", "0"))
        count = min(self.per_page, self.total - start)
        page: dict[str, Any] = {"Count": count}
        if start + count < self.total:
            page["LastEvaluatedKey"] = {"n": {"N": str(start + count)}}
        return page


def test_order_counts_add_up_every_page():
    client = PagedCounts(total=2500, per_page=1000)
    store = DynamoStore("orders", "inventory", client=client)
    assert store.orders_count_by_status(OrderStatus.SHIPPED, cap=10_000) == (2500, False)
    assert client.calls == 3


def test_order_counts_stop_at_the_cap_and_say_so():
    client = PagedCounts(total=1_000_000, per_page=1000)
    store = DynamoStore("orders", "inventory", client=client)
    assert store.orders_count_by_status(OrderStatus.SHIPPED, cap=3000) == (3000, True)
    assert client.calls == 3
