"""Dead letters: looking at, replaying, discarding and purging what a queue gave up on.

Two queues hold them. The Orders dead-letter queue holds fulfilment requests ({OrderId,
Attempt}) that SQSProcessor failed three times; replay sends each back to the Orders queue.
The stream-failure queue holds the Orders stream mapping's on-failure records (Lambda's
DDBStreamBatchInfo: a shard and a sequence range, not the records); replay reads that range
back from the stream and re-runs the reservation of the orders in it that are still PENDING.

One loop (`replay_queue`) serves both, and it is built so that its counts can be trusted:

- It long-polls, and an empty receive ends it only once the queue's depth agrees: SQS can
  answer a receive with nothing while messages wait.
- Each message leaves the queue only after its outcome is recorded in the ledger, and a sent
  message only after it was sent: send (or re-drive), record, delete. A worker that dies
  between the two leaves the message in the queue, and the resumed run finds its outcome in
  the ledger and only deletes it; a message sent but not yet recorded is sent again, which
  starts no second workflow (the execution name is derived from the order and attempt).
- Messages whose order has moved on (no longer RESERVED, or a newer Attempt) are *skipped*:
  deleted from the queue without being sent, with the reason in the ledger, because sending
  them could only fail again or do nothing, and leaving them would keep the DLQ alarm on for
  good. Messages that cannot be judged (not a fulfilment request, no such order, a stream
  range no longer held) are *left* in the queue, with the reason; a send that fails is
  *failed* and left too. Messages outside the replay's scope are *passed* over.
- Messages it keeps (left, failed, passed) stay hidden until the run ends, so one run looks at
  each message once; they are released together at the end (or come back by themselves after
  the visibility timeout if the worker died).
- A token bucket holds the messages sent per second to the rate asked for.
- The ledger is also the heartbeat: after every batch it records outcomes and answers whether
  to go on (a cancelled job says no).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pipeline.adapters.streams import StreamRangeGone
from pipeline.domain import Order
from pipeline.errors import InvalidOrder, MessageNotFound
from pipeline.fulfilment import fulfilment_request, parse_fulfilment_message
from pipeline.ports import MessageQueue, OrderStore, QueueMessage, ReservationStore
from pipeline.reservation import inventory_reserve
from pipeline.statuses import OrderStatus

log = logging.getLogger(__name__)

# SQS's own DLQ redrive (StartMessageMoveTask) moves at most 500 messages a second; a replay
# never goes faster. The default stays well under it: every message sent back becomes a
# StartExecution, whose refill rate is 150 to 300 a second depending on the region, and a
# replay that throttles the workflow would only fill the DLQ again.
MAX_RATE = 500.0
DEFAULT_RATE = 100.0
# What the stream-failure replay says when it cannot read a batch back.
SWEEP_FALLBACK = "the stream no longer holds this batch: the PENDING sweep will take its orders"


class Outcome(StrEnum):
    """What a replay did with one message."""

    SENT = "sent"  # sent back (or its stream batch re-driven), then deleted
    SKIPPED = "skipped"  # its order has moved on: deleted without sending, reason recorded
    LEFT = "left"  # in scope but could not be judged: stays in the queue, reason recorded
    FAILED = "failed"  # sending (or re-driving) failed: stays in the queue
    PASSED = "passed"  # outside the replay's scope: stays in the queue


# Outcomes after which the message is gone from the queue: a later run only finishes the delete.
DELETED = frozenset({Outcome.SENT, Outcome.SKIPPED})


@dataclass(frozen=True)
class MessageOutcome:
    """One message's outcome, as the ledger keeps it."""

    message_id: str
    outcome: Outcome
    reason: str = ""
    order_id: str | None = None
    body: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Checkpoint:
    """The ledger's answer after a batch: the totals so far and whether to go on."""

    totals: Mapping[str, int]
    proceed: bool = True


class ReplayLedger(Protocol):
    """Where a replay records each message's outcome (a job's rows, or memory)."""

    def outcomes(self, message_ids: Sequence[str]) -> Mapping[str, str]:
        """The outcome recorded for each of these ids that has one."""
        ...

    def record(self, outcomes: Sequence[MessageOutcome]) -> Checkpoint:
        """Keep these outcomes (a message's latest replaces its earlier one); answer the
        totals and whether to go on. Called after every batch, with or without outcomes."""
        ...


class MemoryLedger:
    """A ledger in memory, for a replay with no job row (and for tests).

    `stop_after`: answer "stop" once this many checkpoints were made (a cancel, in a test).
    """

    def __init__(self, *, stop_after: int | None = None):
        self.entries: dict[str, MessageOutcome] = {}
        self.checkpoints = 0
        self.stop_after = stop_after

    def outcomes(self, message_ids: Sequence[str]) -> Mapping[str, str]:
        """The outcome recorded for each of these ids that has one."""
        return {i: self.entries[i].outcome for i in message_ids if i in self.entries}

    def record(self, outcomes: Sequence[MessageOutcome]) -> Checkpoint:
        """Keep the outcomes; stop once `stop_after` checkpoints were made."""
        for outcome in outcomes:
            self.entries[outcome.message_id] = outcome
        self.checkpoints += 1
        proceed = self.stop_after is None or self.checkpoints < self.stop_after
        return Checkpoint(self.totals(), proceed)

    def totals(self) -> dict[str, int]:
        """Messages per outcome."""
        return dict(Counter(str(e.outcome) for e in self.entries.values()))


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did: messages per outcome, and how it ended."""

    sent: int = 0
    skipped: int = 0
    left: int = 0
    failed: int = 0
    passed: int = 0
    cancelled: bool = False
    # The depth still showed this many visible messages that receives did not return.
    unreceived: int = 0
    # Messages someone else held hidden (another look, a dead worker's batch) at the end.
    in_flight_elsewhere: int = 0
    # `should_stop` said so before the queue was done: a new run on the same ledger goes on.
    stopped: bool = False

    @classmethod
    def of(cls, totals: Mapping[str, int], **how: Any) -> ReplayResult:
        """From a ledger's totals."""
        return cls(**{str(o): int(totals.get(str(o), 0)) for o in Outcome}, **how)


class TokenBucket:
    """At most `rate` tokens a second, with bursts of `burst` (default: one receive's worth,
    at most 10). `take(n)` waits until n tokens are there, so a loop that takes one per
    message sent sends at `rate` on average however fast it could go."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if rate <= 0:
            raise ValueError("rate must be more than 0 messages per second")
        self.rate = rate
        self.capacity = burst if burst is not None else max(1.0, min(10.0, rate))
        self.tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self.waited = 0.0

    def take(self, n: int = 1) -> float:
        """Take `n` tokens, waiting for them if need be; return the seconds waited."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now
        # Going into debt and sleeping it off keeps the average exact: the next take refills
        # from before the sleep, so the debt is paid by the time it counts again.
        self.tokens -= n
        if self.tokens >= 0:
            return 0.0
        wait = -self.tokens / self.rate
        self._sleep(wait)
        self.waited += wait
        return wait


def _epoch_s(raw: str | None) -> float | None:
    try:
        return int(raw) / 1000 if raw else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Scope:
    """Which messages a replay is about: selected ids, or those matching every filter given.

    Age is counted from when the message was first sent (SQS keeps that time through the
    redrive to the DLQ); the receive count is SQS's, this receive included.
    """

    message_ids: frozenset[str] = frozenset()
    order_id: str | None = None
    min_age_seconds: float | None = None
    max_age_seconds: float | None = None
    min_receives: int | None = None
    max_receives: int | None = None

    def includes(self, message: QueueMessage, *, now: float, order_id: str | None) -> bool:
        """Whether the replay is about this message."""
        if self.message_ids and message.message_id not in self.message_ids:
            return False
        if self.order_id is not None and order_id != self.order_id:
            return False
        sent = _epoch_s(message.attributes.get("SentTimestamp"))
        age = None if sent is None else now - sent
        if self.min_age_seconds is not None and (age is None or age < self.min_age_seconds):
            return False
        if self.max_age_seconds is not None and (age is None or age > self.max_age_seconds):
            return False
        if self.min_receives is not None and message.receive_count < self.min_receives:
            return False
        return self.max_receives is None or message.receive_count <= self.max_receives


# A batch handler does the work for the messages in scope (send, or re-drive) at the bucket's
# rate and says what became of each; the loop records, deletes and keeps.
BatchHandler = Callable[[Sequence[QueueMessage], TokenBucket], list[MessageOutcome]]


def replay_queue(
    *,
    source: MessageQueue,
    handle: BatchHandler,
    ledger: ReplayLedger | None = None,
    scope: Scope | None = None,
    order_of: Callable[[QueueMessage], str | None] = lambda message: None,
    limit: int | None = None,
    rate: float = DEFAULT_RATE,
    visibility: int = 60,
    wait_seconds: int = 3,
    settle_seconds: float = 0.0,
    max_empty_receives: int = 5,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    should_stop: Callable[[], bool] | None = None,
) -> ReplayResult:
    """Look at every message of `source` once and let `handle` deal with those in `scope`.

    `limit` stops once that many were sent (this run and earlier runs on the same ledger).
    `rate` is in messages sent per second (at most MAX_RATE). Received messages stay hidden
    for `visibility` seconds; `wait_seconds` is the long poll. An empty receive is believed
    only when the depth shows nothing visible; up to `max_empty_receives` empty receives in a
    row are tried while it does. Messages hidden by someone else (in flight beyond those this
    run keeps) are waited for until `settle_seconds` after the start: a resumed run passes how
    long its dead predecessor's messages may stay hidden. `should_stop`, asked before each
    receive, ends the run early with `stopped` set (a Lambda invocation's time running out:
    the job continues in a new run on the same ledger).
    """
    if not 0 < rate <= MAX_RATE:
        raise ValueError(f"rate must be more than 0 and at most {MAX_RATE:g} messages a second")
    scope = scope or Scope()
    ledger = ledger or MemoryLedger()
    bucket = TokenBucket(rate, clock=clock, sleep=sleep)
    per_receive = max(1, min(10, int(bucket.capacity)))
    started = clock()
    checkpoint = ledger.record([])
    totals = checkpoint.totals
    selected = set(scope.message_ids)
    finished_selected = {i for i, o in ledger.outcomes(sorted(selected)).items() if o in DELETED}
    held: dict[str, QueueMessage] = {}  # kept hidden until the end, then released
    in_hand: dict[str, QueueMessage] = {}  # received, not yet deleted or held
    seen: set[str] = set()
    empty_receives = 0
    unreceived = elsewhere = 0
    cancelled = not checkpoint.proceed
    stopped = False
    try:
        while not cancelled:
            if limit is not None and totals.get(Outcome.SENT, 0) >= limit:
                break
            if should_stop is not None and should_stop():
                stopped = True
                break
            if selected and selected <= finished_selected:
                break
            batch = source.receive(
                max_messages=per_receive, wait_seconds=wait_seconds, visibility=visibility
            )
            if not batch:
                depth = source.depth()
                unreceived = depth["visible"]
                elsewhere = max(0, depth["in_flight"] - len(held))
                waiting = unreceived > 0 and empty_receives < max_empty_receives
                settling = unreceived == 0 and elsewhere > 0 and clock() - started < settle_seconds
                if not (waiting or settling):
                    break
                empty_receives += 1 if waiting else 0
                if wait_seconds == 0:
                    sleep(1.0)  # a short poll returns at once: do not spin on the queue
                checkpoint = ledger.record([])  # the heartbeat, and the chance to cancel
                cancelled = not checkpoint.proceed
                continue
            empty_receives = 0
            unreceived = elsewhere = 0
            fresh: list[QueueMessage] = []
            for message in batch:
                if message.message_id in seen:
                    # Its hold ran out during a long run: keep it (with its new receipt handle).
                    held[message.message_id] = message
                else:
                    seen.add(message.message_id)
                    fresh.append(message)
                    in_hand[message.message_id] = message
            if not fresh:
                # Only messages whose hold ran out came back: the run outlasts the visibility
                # timeout. Once the queue holds no more than this run keeps, it has seen them all.
                depth = source.depth()
                if depth["visible"] + depth["in_flight"] + depth["delayed"] <= len(held):
                    break
            outcomes, finish = _triage(fresh, ledger, scope, order_of, clock())
            judged = {o.message_id for o in outcomes} | {m.message_id for m in finish}
            candidates = [m for m in fresh if m.message_id not in judged]
            if limit is not None:
                room = max(0, limit - totals.get(Outcome.SENT, 0))
                for extra in candidates[room:]:
                    # Not looked at: released now, so it is neither counted nor kept.
                    seen.discard(extra.message_id)
                    source.release([in_hand.pop(extra.message_id)])
                candidates = candidates[:room]
            if candidates:
                outcomes += handle(candidates, bucket)
            # Recorded before anything is deleted: a run that dies after the delete loses no
            # count, and one that dies before it finds the outcome on resume.
            checkpoint = ledger.record(outcomes)
            totals = checkpoint.totals
            gone = [*finish, *(in_hand[o.message_id] for o in outcomes if o.outcome in DELETED)]
            if gone:
                source.delete_batch(gone)
            for message in gone:
                in_hand.pop(message.message_id, None)
            for outcome in outcomes:
                if outcome.outcome not in DELETED:
                    held[outcome.message_id] = in_hand.pop(outcome.message_id)
            if selected:
                finished_selected |= selected & (
                    {o.message_id for o in outcomes if o.outcome != Outcome.PASSED}
                    | {m.message_id for m in finish}
                )
            cancelled = not checkpoint.proceed
    finally:
        keep = [*held.values(), *in_hand.values()]
        if keep:
            # Best effort: a message SQS does not release shows again after `visibility`.
            with contextlib.suppress(Exception):
                source.release(keep)
    return ReplayResult.of(
        totals,
        cancelled=cancelled,
        unreceived=unreceived,
        in_flight_elsewhere=elsewhere,
        stopped=stopped,
    )


def _triage(
    fresh: Sequence[QueueMessage],
    ledger: ReplayLedger,
    scope: Scope,
    order_of: Callable[[QueueMessage], str | None],
    now: float,
) -> tuple[list[MessageOutcome], list[QueueMessage]]:
    """Outcomes known without any work (out of scope), and the messages an earlier run of the
    same ledger sent or skipped already: those only need deleting."""
    known = ledger.outcomes([m.message_id for m in fresh]) if fresh else {}
    outcomes: list[MessageOutcome] = []
    finish: list[QueueMessage] = []
    for message in fresh:
        if known.get(message.message_id) in DELETED:
            finish.append(message)
        elif not scope.includes(message, now=now, order_id=order_of(message)):
            outcomes.append(
                MessageOutcome(message.message_id, Outcome.PASSED, "not in this replay's scope")
            )
    return outcomes, finish


# -- The Orders DLQ: fulfilment requests ---------------------------------------------------------


def fulfilment_order_of(message: QueueMessage) -> str | None:
    """The order a fulfilment request names, or None if it is not one."""
    try:
        return parse_fulfilment_message(message.body)[0]
    except InvalidOrder:
        return None


def judge_fulfilment(order: Order | None, attempt: int) -> tuple[Outcome, str]:
    """What a replay does with a fulfilment request for `order` (as it is now) and `attempt`:
    send it, skip it (the order has moved on) or leave it (no such order)."""
    if order is None:
        return Outcome.LEFT, "no such order"
    if order.status != OrderStatus.RESERVED:
        return Outcome.SKIPPED, f"the order is {order.status} now"
    if order.attempt > attempt:
        return (
            Outcome.SKIPPED,
            f"the order is on attempt {order.attempt}; this message is for attempt {attempt}",
        )
    return Outcome.SENT, ""


def fulfilment_resend(*, store: OrderStore, target: MessageQueue) -> BatchHandler:
    """The Orders DLQ's handler: look the batch's orders up (one consistent BatchGetItem) and
    send the requests of those still RESERVED at their attempt back to `target`, as they were."""

    def handle(messages: Sequence[QueueMessage], bucket: TokenBucket) -> list[MessageOutcome]:
        outcomes: list[MessageOutcome] = []
        sending: list[tuple[QueueMessage, str]] = []
        requests: list[tuple[QueueMessage, str, int]] = []
        for message in messages:
            try:
                order_id, attempt = parse_fulfilment_message(message.body)
            except InvalidOrder as exc:
                outcomes.append(
                    MessageOutcome(
                        message.message_id,
                        Outcome.LEFT,
                        f"not a fulfilment request ({exc})",
                        body=message.body,
                    )
                )
                continue
            requests.append((message, order_id, attempt))
        # One batch's orders in one read (BatchGetItem), not one GetItem each.
        orders: list[Order | Exception | None]
        try:
            found = store.orders_find([o for _, o, _ in requests]) if requests else {}
            orders = [found.get(order_id) for _, order_id, _ in requests]
        except Exception as exc:  # the table is unreachable: reported on every message
            orders = [exc] * len(requests)
        for (message, order_id, attempt), order in zip(requests, orders, strict=True):
            if isinstance(order, Exception):
                outcomes.append(
                    MessageOutcome(
                        message.message_id,
                        Outcome.FAILED,
                        f"could not read the order ({type(order).__name__}: {order})",
                        order_id,
                    )
                )
                continue
            verdict, reason = judge_fulfilment(order, attempt)
            if verdict == Outcome.SENT:
                sending.append((message, order_id))
            else:
                outcomes.append(
                    MessageOutcome(message.message_id, verdict, reason, order_id, message.body)
                )
        if not sending:
            return outcomes
        bucket.take(len(sending))
        error = "SQS refused the message"
        try:
            new_ids = target.send_raw_batch([message.body for message, _ in sending])
        except Exception as exc:  # the Orders queue is unreachable: every one stays
            new_ids = [None] * len(sending)
            error = f"{type(exc).__name__}: {exc}"
        for (message, order_id), new_id in zip(sending, new_ids, strict=True):
            if new_id is None:
                outcomes.append(MessageOutcome(message.message_id, Outcome.FAILED, error, order_id))
            else:
                outcomes.append(
                    MessageOutcome(
                        message.message_id,
                        Outcome.SENT,
                        "sent to the Orders queue",
                        order_id,
                        detail={"sent_as": new_id},
                    )
                )
        return outcomes

    return handle


def dlq_replay(
    *, dlq: MessageQueue, target: MessageQueue, store: OrderStore, **options: Any
) -> ReplayResult:
    """Replay the Orders DLQ to the Orders queue (`replay_queue`'s options apply)."""
    return replay_queue(
        source=dlq,
        handle=fulfilment_resend(store=store, target=target),
        order_of=fulfilment_order_of,
        **options,
    )


# -- The stream-failure queue: failed stream batches ---------------------------------------------


@dataclass(frozen=True)
class StreamBatch:
    """A stream batch the mapping gave up on, as its on-failure record describes it."""

    stream_arn: str
    shard_id: str
    start: str
    end: str
    batch_size: int
    condition: str = ""
    first_arrival: str = ""
    last_arrival: str = ""

    def as_detail(self) -> dict[str, Any]:
        """The batch as the ledger and the pages show it."""
        return {
            "stream_arn": self.stream_arn,
            "shard_id": self.shard_id,
            "start": self.start,
            "end": self.end,
            "batch_size": self.batch_size,
            "condition": self.condition,
        }


def parse_stream_failure(body: str) -> StreamBatch:
    """The batch an on-failure record describes; ValueError if it is not one.

    The record is Lambda's for stream sources (and what the local runtime's stream poller
    writes): {"requestContext": {"condition", ...}, "DDBStreamBatchInfo": {"shardId",
    "startSequenceNumber", "endSequenceNumber", "approximateArrivalOfFirstRecord",
    "approximateArrivalOfLastRecord", "batchSize", "streamArn"}, ...}.
    """
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc.msg}") from exc
    info = data.get("DDBStreamBatchInfo") if isinstance(data, dict) else None
    if not isinstance(info, dict):
        raise ValueError("no DDBStreamBatchInfo")
    names = ("streamArn", "shardId", "startSequenceNumber", "endSequenceNumber")
    missing = [n for n in names if not isinstance(info.get(n), str) or not info[n]]
    if missing:
        raise ValueError(f"DDBStreamBatchInfo lacks {', '.join(missing)}")
    if not all(info[n].isdigit() for n in ("startSequenceNumber", "endSequenceNumber")):
        raise ValueError("sequence numbers must be digits")
    size = info.get("batchSize")
    context = data.get("requestContext")
    return StreamBatch(
        stream_arn=info["streamArn"],
        shard_id=info["shardId"],
        start=info["startSequenceNumber"],
        end=info["endSequenceNumber"],
        batch_size=size if isinstance(size, int) and not isinstance(size, bool) else 0,
        condition=str(context.get("condition", "")) if isinstance(context, dict) else "",
        first_arrival=str(info.get("approximateArrivalOfFirstRecord", "")),
        last_arrival=str(info.get("approximateArrivalOfLastRecord", "")),
    )


class StreamReader(Protocol):
    """Reads a shard's records back (pipeline.adapters.streams.StreamRecords)."""

    def read_range(
        self, *, stream_arn: str, shard_id: str, start: str, end: str
    ) -> list[dict[str, Any]]:
        """The records from `start` to `end`; StreamRangeGone if the stream no longer has them."""
        ...


def _pending_orders(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """The orders the batch asked OrderProcessing to reserve: records whose new image is a
    PENDING order (the mapping's filter), each order once, in stream order."""
    found: dict[str, None] = {}
    for record in records:
        image = record.get("dynamodb", {}).get("NewImage") or {}
        if record.get("eventName") not in ("INSERT", "MODIFY"):
            continue
        if image.get("Status", {}).get("S") != OrderStatus.PENDING:
            continue
        order_id = image.get("OrderId", {}).get("S")
        if order_id:
            found[order_id] = None
    return list(found)


def stream_batch_redrive(
    *, streams: StreamReader, store: ReservationStore, orders_queue: MessageQueue
) -> BatchHandler:
    """The stream-failure queue's handler: read the failed batch's range back from the stream
    and, for each of its orders still PENDING, do what OrderProcessing does (reserve, then
    send a reserved order to the Orders queue). The rate counts orders re-run.

    A range the stream no longer holds (past its 24 hours, or its shard gone) is left in the
    queue, saying that the PENDING sweep will take those orders; a batch whose orders have all
    moved on is skipped; one re-driven is sent. Re-running is safe: the reservation is
    conditional on the order being PENDING at the attempt read, so it never happens twice.
    """

    def handle(messages: Sequence[QueueMessage], bucket: TokenBucket) -> list[MessageOutcome]:
        return [_redrive_one(message, bucket) for message in messages]

    def _redrive_one(message: QueueMessage, bucket: TokenBucket) -> MessageOutcome:
        try:
            batch = parse_stream_failure(message.body)
        except ValueError as exc:
            return MessageOutcome(
                message.message_id,
                Outcome.LEFT,
                f"not a stream batch failure record ({exc})",
                body=message.body,
            )
        described = batch.as_detail()
        try:
            records = streams.read_range(
                stream_arn=batch.stream_arn,
                shard_id=batch.shard_id,
                start=batch.start,
                end=batch.end,
            )
        except StreamRangeGone as exc:
            return MessageOutcome(
                message.message_id,
                Outcome.LEFT,
                SWEEP_FALLBACK,
                body=message.body,
                detail={"source": "sweep", "why": str(exc), "batch": described},
            )
        except Exception as exc:  # the stream could not be read now: try again later
            return MessageOutcome(
                message.message_id,
                Outcome.FAILED,
                f"could not read the stream ({type(exc).__name__}: {exc})",
                detail={"batch": described},
            )
        if not records:
            return MessageOutcome(
                message.message_id,
                Outcome.LEFT,
                SWEEP_FALLBACK,
                body=message.body,
                detail={"source": "sweep", "why": "no records in the range", "batch": described},
            )
        results: dict[str, str] = {}
        rerun = 0
        try:
            for order_id in _pending_orders(records):
                order = store.order_find(order_id)
                if order is None:
                    results[order_id] = "no such order"
                    continue
                if order.status != OrderStatus.PENDING:
                    results[order_id] = f"moved on: {order.status}"
                    continue
                bucket.take(1)
                outcome = inventory_reserve(store=store, order_id=order_id, order=order)
                rerun += 1
                if outcome.needs_fulfilment:
                    fulfilment_request(queue=orders_queue, order=outcome.order)
                    results[order_id] = "reserved, sent to the Orders queue"
                elif outcome.rejected_now:
                    results[order_id] = f"rejected: {outcome.order.status_reason}"
                else:
                    results[order_id] = f"already {outcome.order.status}"
        except Exception as exc:  # every step is safe to run again: leave it for a later run
            return MessageOutcome(
                message.message_id,
                Outcome.FAILED,
                f"re-drive stopped ({type(exc).__name__}: {exc})",
                detail={"source": "stream", "batch": described, "orders": results},
            )
        partial = len(records) < batch.batch_size
        detail = {
            "source": "stream+sweep" if partial else "stream",
            "records": len(records),
            "batch": described,
            "orders": results,
        }
        note = (
            f"; read {len(records)} of {batch.batch_size} records, the PENDING sweep takes the rest"
            if partial
            else ""
        )
        if rerun:
            return MessageOutcome(
                message.message_id,
                Outcome.SENT,
                f"re-driven from the stream: {rerun} order(s) re-run{note}",
                body=message.body,
                detail=detail,
            )
        return MessageOutcome(
            message.message_id,
            Outcome.SKIPPED,
            f"no order of the batch is PENDING any more{note}",
            body=message.body,
            detail=detail,
        )

    return handle


def stream_failures_replay(
    *,
    queue: MessageQueue,
    streams: StreamReader,
    store: ReservationStore,
    orders_queue: MessageQueue,
    **options: Any,
) -> ReplayResult:
    """Replay the stream-failure queue by re-driving each batch (`replay_queue`'s options)."""
    return replay_queue(
        source=queue,
        handle=stream_batch_redrive(streams=streams, store=store, orders_queue=orders_queue),
        **options,
    )


# -- Looking, discarding, purging ----------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    """A message seen in a dead-letter queue: for the Orders DLQ with the order it names and
    that order's current status, for the stream-failure queue with the batch it describes."""

    message_id: str
    body: str
    receive_count: int
    sent_at: datetime | None
    first_received_at: datetime | None
    order_id: str | None = None
    attempt: int | None = None
    order_status: str | None = None  # None: no OrderId, no such order, or not looked up
    lookup_error: str | None = None
    stream_batch: StreamBatch | None = None
    replay_verdict: str | None = None  # what a replay would do now: sent / skipped / left
    replay_reason: str = ""


def _when(raw: str | None) -> datetime | None:
    seconds = _epoch_s(raw)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _receive_each_once(
    queue: MessageQueue,
    *,
    want: int,
    visibility: int,
    wait_seconds: int,
    max_empty_receives: int,
    stop: Callable[[QueueMessage], bool] = lambda message: False,
) -> tuple[dict[str, QueueMessage], list[QueueMessage]]:
    """Receive until `want` distinct messages were seen, `stop` says so, or the queue is
    empty (an empty receive that the depth agrees with). Return the distinct messages and
    every message received (to release)."""
    seen: dict[str, QueueMessage] = {}
    received: list[QueueMessage] = []
    empty = 0
    while len(seen) < want:
        batch = queue.receive(
            max_messages=min(10, want - len(seen)), wait_seconds=wait_seconds, visibility=visibility
        )
        if not batch:
            if queue.depth()["visible"] == 0 or empty >= max_empty_receives:
                break
            empty += 1
            continue
        empty = 0
        received.extend(batch)
        if any(message.message_id in seen for message in batch):
            break  # one came round again (a slow look): every message has been seen
        for message in batch:
            seen[message.message_id] = message
            if stop(message):
                return seen, received
    return seen, received


def dlq_peek(
    *,
    dlq: MessageQueue,
    store: OrderStore | None = None,
    max_messages: int = 50,
    visibility: int = 30,
    wait_seconds: int = 1,
    max_empty_receives: int = 3,
) -> list[DeadLetter]:
    """Look at up to `max_messages` messages without removing them.

    SQS has no real peek: each message is received (hidden for `visibility` seconds, so one
    look sees each message once) and then made visible again at once. Its receive count goes
    up by one; the DLQs have no redrive of their own, so that changes nothing but the number.
    With a `store`, each fulfilment request's order is looked up and the replay's verdict
    given; a lookup failure is reported on the message, not raised.
    """
    received: list[QueueMessage] = []
    try:
        seen, received = _receive_each_once(
            dlq,
            want=max_messages,
            visibility=visibility,
            wait_seconds=wait_seconds,
            max_empty_receives=max_empty_receives,
        )
    finally:
        if received:
            dlq.release(received)
    letters = []
    store_error: str | None = None
    for message in seen.values():
        order_id = attempt = status = error = verdict = None
        reason = ""
        batch = None
        with contextlib.suppress(ValueError):
            batch = parse_stream_failure(message.body)
        # A body that is neither a fulfilment request nor a failure record shows as it is.
        with contextlib.suppress(InvalidOrder):
            order_id, attempt = parse_fulfilment_message(message.body)
        if order_id is not None and attempt is not None and store is not None:
            if store_error is None:
                try:
                    order = store.order_find(order_id, consistent=False)
                    status = str(order.status) if order else None
                    error = None if order else "no such order"
                    judged, reason = judge_fulfilment(order, attempt)
                    verdict = str(judged)
                except Exception as exc:  # the page still lists the messages
                    store_error = f"{type(exc).__name__}: {exc}"
            error = store_error or error
        letters.append(
            DeadLetter(
                message_id=message.message_id,
                body=message.body,
                receive_count=message.receive_count,
                sent_at=_when(message.attributes.get("SentTimestamp")),
                first_received_at=_when(message.attributes.get("ApproximateFirstReceiveTimestamp")),
                order_id=order_id,
                attempt=attempt,
                order_status=status,
                lookup_error=error,
                stream_batch=batch,
                replay_verdict=verdict,
                replay_reason=reason,
            )
        )
    return letters


def dlq_discard(
    *, dlq: MessageQueue, message_id: str, visibility: int = 30, wait_seconds: int = 1
) -> QueueMessage:
    """Delete one message by its id and return it (for the audit log).

    A receipt handle from an earlier look may be stale, so the message is received afresh;
    the others received on the way are made visible again. MessageNotFound if it is not there.
    """
    received: list[QueueMessage] = []
    try:
        seen, received = _receive_each_once(
            dlq,
            want=1_000_000,
            visibility=visibility,
            wait_seconds=wait_seconds,
            max_empty_receives=3,
            stop=lambda message: message.message_id == message_id,
        )
        found = seen.get(message_id)
        if found is None:
            raise MessageNotFound(message_id)
        dlq.delete(found)
        received = [m for m in received if m.message_id != message_id]
        return found
    finally:
        if received:
            dlq.release(received)


def dlq_purge(*, queue: MessageQueue) -> int:
    """Delete every message of the queue; return about how many there were (its depth)."""
    depth = queue.depth()
    queue.purge()
    return depth["visible"] + depth["in_flight"] + depth["delayed"]
