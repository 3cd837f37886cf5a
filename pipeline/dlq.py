"""Dead letters: peeking at, replaying and discarding the messages a queue gave up on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pipeline.errors import InvalidOrder, MessageNotFound
from pipeline.fulfilment import parse_fulfilment_message
from pipeline.ports import MessageQueue, OrderStore, QueueMessage


@dataclass(frozen=True)
class ReplayResult:
    """What a DLQ replay did."""

    moved: int
    failed: int
    skipped: int


def dlq_replay(
    *,
    dlq: MessageQueue,
    target: MessageQueue,
    limit: int | None = None,
    accept: Callable[[QueueMessage], bool] | None = None,
    progress: Callable[[int, QueueMessage], None] | None = None,
    report: Callable[[ReplayResult], None] | None = None,
    visibility: int = 60,
) -> ReplayResult:
    """Move messages from the DLQ back to the Orders queue: send first, delete after, so a
    crash in between duplicates a message (harmless: one workflow per order) but never loses it.

    `progress` hears of each message moved; `report` gets the running totals after every
    message looked at. Messages received but not moved (skipped, failed to send, or past
    `limit`) are made visible again at the end, so a partial replay hides nothing for long.
    """
    moved = failed = skipped = 0
    held: list[QueueMessage] = []
    seen: set[str] = set()
    looped = False
    while not looped and (limit is None or moved < limit):
        # Every message received stays hidden for `visibility` seconds, so the loop ends when
        # each one has been looked at once, even those that stay behind.
        batch = dlq.receive(max_messages=10, wait_seconds=0, visibility=visibility)
        if not batch:
            break
        for message in batch:
            if message.message_id in seen:
                # A message left behind is visible again (the run outlasted its visibility
                # timeout): every message has been looked at, so stop rather than go round.
                looped = True
                held.append(message)
                continue
            seen.add(message.message_id)
            if limit is not None and moved >= limit:
                held.append(message)
                continue
            if accept is not None and not accept(message):
                skipped += 1
                held.append(message)
            else:
                try:
                    target.send_raw(message.body)
                except Exception:
                    # The message stays in the DLQ, visible again once the loop is over.
                    failed += 1
                    held.append(message)
                else:
                    dlq.delete(message)
                    moved += 1
                    if progress:
                        progress(moved, message)
            if report:
                report(ReplayResult(moved, failed, skipped))
    if held:
        # Best effort: a message SQS does not release shows again after `visibility` anyway.
        with contextlib.suppress(Exception):
            dlq.release(held)
    return ReplayResult(moved, failed, skipped)


@dataclass(frozen=True)
class DeadLetter:
    """A message seen in the DLQ, with the order it names and that order's current status."""

    message_id: str
    body: str
    receive_count: int
    sent_at: datetime | None
    first_received_at: datetime | None
    order_id: str | None = None
    attempt: int | None = None
    order_status: str | None = None  # None: no OrderId, no such order, or not looked up
    lookup_error: str | None = None


def _epoch_ms(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(int(raw) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def dlq_peek(
    *,
    dlq: MessageQueue,
    store: OrderStore | None = None,
    max_messages: int = 50,
    visibility: int = 30,
) -> list[DeadLetter]:
    """Look at up to `max_messages` DLQ messages without removing them.

    SQS has no real peek: each message is received (hidden for `visibility` seconds, so one
    look sees each message once) and then made visible again at once. Its receive count goes
    up by one; the DLQ has no redrive, so that changes nothing. With a `store`, each message's
    order is looked up; a lookup failure is reported on the message, not raised.
    """
    received: list[QueueMessage] = []
    seen: dict[str, QueueMessage] = {}
    try:
        while len(seen) < max_messages:
            want = min(10, max_messages - len(seen))
            batch = dlq.receive(max_messages=want, wait_seconds=0, visibility=visibility)
            if not batch:
                break
            received.extend(batch)
            if any(message.message_id in seen for message in batch):
                break  # one came round again (a slow look): every message has been seen
            for message in batch:
                seen[message.message_id] = message
    finally:
        if received:
            dlq.release(received)
    letters = []
    store_error: str | None = None
    for message in seen.values():
        order_id = attempt = status = error = None
        # A body that is not a fulfilment request is shown as it is, without an order.
        with contextlib.suppress(InvalidOrder):
            order_id, attempt = parse_fulfilment_message(message.body)
        if order_id is not None and store is not None:
            if store_error is None:
                try:
                    order = store.order_find(order_id, consistent=False)
                    status = str(order.status) if order else None
                    error = None if order else "no such order"
                except Exception as exc:  # the page still lists the messages
                    store_error = f"{type(exc).__name__}: {exc}"
            error = store_error or error
        letters.append(
            DeadLetter(
                message_id=message.message_id,
                body=message.body,
                receive_count=message.receive_count,
                sent_at=_epoch_ms(message.attributes.get("SentTimestamp")),
                first_received_at=_epoch_ms(
                    message.attributes.get("ApproximateFirstReceiveTimestamp")
                ),
                order_id=order_id,
                attempt=attempt,
                order_status=status,
                lookup_error=error,
            )
        )
    return letters


def dlq_discard(*, dlq: MessageQueue, message_id: str, visibility: int = 30) -> QueueMessage:
    """Delete one DLQ message by its id and return it (for the audit log).

    A receipt handle from an earlier look may be stale, so the message is received afresh;
    the others received on the way are made visible again. MessageNotFound if it is not there.
    """
    passed: list[QueueMessage] = []
    found: QueueMessage | None = None
    seen: set[str] = set()
    try:
        while found is None:
            batch = dlq.receive(max_messages=10, wait_seconds=0, visibility=visibility)
            if not batch or any(message.message_id in seen for message in batch):
                passed.extend(batch)
                break  # empty, or come round again: it is not there
            for message in batch:
                seen.add(message.message_id)
                if found is None and message.message_id == message_id:
                    found = message
                else:
                    passed.append(message)
        if found is None:
            raise MessageNotFound(message_id)
        dlq.delete(found)
        return found
    finally:
        if passed:
            dlq.release(passed)
