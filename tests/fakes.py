"""In-memory fakes of the ports in pipeline/ports.py, one per port, held to the real adapters.

tests/integration/contracts runs the same cases against each fake and the adapter it stands in
for (DynamoStore on DynamoDB Local, SqsQueue on moto, FulfilmentWorkflow on the local Step
Functions server), so a fake cannot drift from what it fakes. What a fake offers beyond its port
(seeding, failure injection, logs of what was called) is a documented attribute or a method
marked as a test helper; the port methods behave, and raise, as the adapter does.

Payments and shipping have no fake here: the unit tests use the in-memory adapters themselves
(pipeline.adapters.mock_payments / mock_carriers), whose test tokens and postcodes script the
outcomes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamodb import deserialize, serialize
from pipeline.domain import InventoryItem, Order, OrderLine, StatusChange
from pipeline.errors import (
    InsufficientStock,
    InvalidTransition,
    InventoryChangedMeanwhile,
    InventoryItemNotFound,
    OrderAlreadyExists,
    OrderNotFound,
    Shortage,
    find_shortages,
)
from pipeline.ports import Page, QueueMessage, StartResult
from pipeline.statuses import OrderStatus, sources_of


def client_error(code: str, message: str, operation: str) -> ClientError:
    """The ClientError botocore raises when a service answers `code`."""
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _stored(item: Mapping[str, Any]) -> dict[str, Any]:
    # What DynamoDB keeps of an item: numbers come back as Decimal, floats are refused
    # (TypeError, as the adapter's serializer raises), and nothing is shared with the caller.
    return deserialize(serialize(item))


# -- ReservationStore -----------------------------------------------------------------------------


class FakeStore:
    """The Orders and Inventory tables in memory, with DynamoStore's conditional semantics.

    Every port method of `ReservationStore` is here and keeps the adapter's guards: a put never
    overwrites; a transition is conditional on `expected` (else `sources_of(target)`) and
    raises OrderNotFound or InvalidTransition naming the status the order really has (so does
    order_set_fields, guarded by `expected` alone, and order_set_fields_if_unchanged, by
    `expected` and the `unchanged` values); an update that names one attribute twice,
    or nothing at all, is refused with DynamoDB's ValidationException (a ClientError); reserve
    needs the order PENDING *and* its stored Attempt equal to the image's, takes every line's
    stock or none (InsufficientStock naming every short or unknown line) and adds one to
    Attempt; release needs RESERVED and gives stock back (recreating a deleted row, as the
    adapter's if_not_exists does); stock never goes below zero. Items are stored as DynamoDB
    stores them (Decimal numbers), and a page cut at its limit carries a cursor, as a Query does.

    Test helpers (not part of the port):

    - `orders`: order id -> the stored item (attribute names as in the table).
    - `inventory`: item name -> the stored row.
    - `order(order_id)`: the stored order, read without counting as a read.
    - `fail_reserve`: order id -> exception that `reserve` raises for that order, before
      anything changes (e.g. ReservationContention).
    - `fail_reads`: when set, `order_find`, `order_get` and `orders_find` raise it (an
      unreachable table).
    - `order_reads`: the order id of every `order_find` / `order_get` call and each id of an
      `orders_find`, in order.
    - `writes`: every write method called, as "<method> <key>", whether its condition held or
      not (so "nothing was written" is `writes == []`).
    """

    def __init__(self, orders: Iterable[Order] = (), inventory: Iterable[InventoryItem] = ()):
        self.orders: dict[str, dict[str, Any]] = {o.order_id: _stored(o.as_item()) for o in orders}
        self.inventory: dict[str, InventoryItem] = {
            row.item_name: InventoryItem.from_item(_stored(row.as_item())) for row in inventory
        }
        self.fail_reserve: dict[str, Exception] = {}
        self.fail_reads: Exception | None = None
        self.order_reads: list[str] = []
        self.writes: list[str] = []

    def order(self, order_id: str) -> Order:
        """The stored order (test helper; KeyError if there is none)."""
        return Order.from_item(copy.deepcopy(self.orders[order_id]))

    # -- OrderStore -------------------------------------------------------------------------------

    def order_put_new(self, order: Order) -> None:
        """Write a new order; OrderAlreadyExists if the id is taken."""
        self.writes.append(f"order_put_new {order.order_id}")
        if order.order_id in self.orders:
            raise OrderAlreadyExists(order.order_id)
        self.orders[order.order_id] = _stored(order.as_item())

    def order_find(self, order_id: str, *, consistent: bool = True) -> Order | None:
        """The order, or None."""
        self.order_reads.append(order_id)
        if self.fail_reads is not None:
            raise self.fail_reads
        return self.order(order_id) if order_id in self.orders else None

    def orders_find(self, order_ids: Sequence[str], *, consistent: bool = True) -> dict[str, Order]:
        """The orders found, by id (one read recorded per id)."""
        self.order_reads.extend(order_ids)
        if self.fail_reads is not None:
            raise self.fail_reads
        return {i: self.order(i) for i in order_ids if i in self.orders}

    def order_get(self, order_id: str, *, consistent: bool = True) -> Order:
        """The order, or OrderNotFound."""
        order = self.order_find(order_id, consistent=consistent)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def order_transition(
        self,
        order_id: str,
        target: OrderStatus,
        reason: str,
        now: str,
        *,
        expected: Iterable[OrderStatus] | None = None,
        set_fields: Mapping[str, Any] | None = None,
        remove_fields: Sequence[str] = (),
        actor: str | None = None,
        attempt: int | None = None,
    ) -> Order:
        """Move the order to `target` if its status allows; OrderNotFound or InvalidTransition."""
        self.writes.append(f"order_transition {order_id}")
        allowed = {str(s) for s in (sources_of(target) if expected is None else expected)}
        if not allowed:
            raise InvalidTransition(order_id, None, str(target))
        _check_paths(set_fields or {}, remove_fields)
        item = self.orders.get(order_id)
        if item is None:
            raise OrderNotFound(order_id)
        if item["Status"] not in allowed or not _on_attempt(item, attempt):
            raise InvalidTransition(order_id, item["Status"], str(target))
        self._move(
            item,
            target,
            reason,
            now,
            set_fields=set_fields,
            remove_fields=remove_fields,
            actor=actor,
        )
        return self.order(order_id)

    def order_set_fields(
        self,
        order_id: str,
        fields: Mapping[str, Any],
        *,
        expected: Iterable[OrderStatus],
        remove_fields: Sequence[str] = (),
        attempt: int | None = None,
    ) -> Order:
        """Write fields on the order, no status change, if its status is one of `expected`."""
        self.writes.append(f"order_set_fields {order_id}")
        allowed = {str(s) for s in expected}
        if not allowed:
            raise client_error(
                "ValidationException", "Invalid ConditionExpression: IN ()", "UpdateItem"
            )
        if not fields and not remove_fields:
            raise client_error(
                "ValidationException",
                "Invalid UpdateExpression: The expression can not be empty;",
                "UpdateItem",
            )
        _check_paths(fields, remove_fields, fixed=())
        item = self.orders.get(order_id)
        if item is None:
            raise OrderNotFound(order_id)
        if item["Status"] not in allowed or not _on_attempt(item, attempt):
            status = item["Status"]
            raise InvalidTransition(order_id, status, f"{status} (update)")
        item.update(_stored(fields))
        for name in remove_fields:
            item.pop(name, None)
        return self.order(order_id)

    def order_set_fields_if_unchanged(
        self,
        order_id: str,
        fields: Mapping[str, Any],
        *,
        expected: Iterable[OrderStatus],
        unchanged: Mapping[str, Any],
    ) -> Order:
        """Write fields on the order, no status change, if its status is one of `expected` and
        each attribute of `unchanged` still holds the value given (None: absent)."""
        self.writes.append(f"order_set_fields_if_unchanged {order_id}")
        allowed = {str(s) for s in expected}
        if not allowed:
            raise client_error(
                "ValidationException", "Invalid ConditionExpression: IN ()", "UpdateItem"
            )
        if not fields:
            raise client_error(
                "ValidationException",
                "Invalid UpdateExpression: The expression can not be empty;",
                "UpdateItem",
            )
        _check_paths(fields, (), fixed=())
        item = self.orders.get(order_id)
        if item is None:
            raise OrderNotFound(order_id)
        # As the adapter's condition: `=` compares stored values whole (maps and lists too).
        same = all(
            (name not in item) if value is None else item.get(name) == _stored({"v": value})["v"]
            for name, value in unchanged.items()
        )
        if item["Status"] not in allowed or not same:
            status = item["Status"]
            raise InvalidTransition(order_id, status, f"{status} (update)")
        item.update(_stored(fields))
        return self.order(order_id)

    def order_count_requeue(self, order_id: str, now: str) -> None:
        """Note that a RESERVED order was re-sent to the queue (no status change)."""
        self.writes.append(f"order_count_requeue {order_id}")
        item = self.orders.get(order_id)
        if item is None or item.get("Status") != OrderStatus.RESERVED:
            return  # the adapter's condition fails quietly: nothing to count
        item["RequeueCount"] = item.get("RequeueCount", Decimal(0)) + 1
        item["RequeuedAt"] = now

    def orders_by_status(
        self,
        status: OrderStatus,
        *,
        limit: int = 50,
        cursor: dict[str, Any] | None = None,
        placed_before: str | None = None,
        placed_after: str | None = None,
        oldest_first: bool = False,
    ) -> Page:
        """Orders in one status, newest first or oldest first (the StatusIndex); with
        `placed_before` (`placed_after`), only those whose OrderDate is at or before (after) it."""
        return self._query(
            "Status", str(status), limit, cursor, placed_before, placed_after, oldest_first
        )

    def _query(
        self,
        key: str,
        value: str,
        limit: int,
        cursor: dict[str, Any] | None,
        placed_before: str | None = None,
        placed_after: str | None = None,
        oldest_first: bool = False,
    ) -> Page:
        # An index holds the items that have its keys, sorted by OrderDate; read backwards.
        def position(item: Mapping[str, Any]) -> tuple[str, str]:
            return item["OrderDate"], item["OrderId"]

        matching = sorted(
            (
                i
                for i in self.orders.values()
                if i.get(key) == value
                and "OrderDate" in i
                and (placed_before is None or i["OrderDate"] <= placed_before)
                and (placed_after is None or i["OrderDate"] >= placed_after)
            ),
            key=position,
            reverse=not oldest_first,
        )
        if cursor and oldest_first:
            matching = [i for i in matching if position(i) > position(cursor)]
        elif cursor:
            matching = [i for i in matching if position(i) < position(cursor)]
        page = matching[:limit]
        # DynamoDB stops at Limit and returns LastEvaluatedKey even if nothing follows.
        last = page[-1] if len(page) == limit else None
        next_cursor = (
            {"OrderId": last["OrderId"], key: last[key], "OrderDate": last["OrderDate"]}
            if last
            else None
        )
        return Page([Order.from_item(copy.deepcopy(i)) for i in page], next_cursor)

    def _move(
        self,
        item: dict[str, Any],
        target: OrderStatus,
        reason: str,
        now: str,
        *,
        set_fields: Mapping[str, Any] | None = None,
        remove_fields: Sequence[str] = (),
        increment: Mapping[str, int] | None = None,
        actor: str | None = None,
    ) -> None:
        # The adapter's one update: SET status, reason, time, history + fields; ADD; REMOVE.
        item.update(
            _stored(
                {
                    "Status": str(target),
                    "StatusReason": reason,
                    "LastUpdated": now,
                    "StatusHistory": [
                        *item.get("StatusHistory", []),
                        StatusChange(target, now, reason, actor).as_item(),
                    ],
                    **(set_fields or {}),
                }
            )
        )
        for name, delta in (increment or {}).items():
            item[name] = item.get(name, Decimal(0)) + delta
        for name in remove_fields:
            item.pop(name, None)

    # -- InventoryStore ---------------------------------------------------------------------------

    def inventory_get_many(
        self, names: Iterable[str], *, consistent: bool = True
    ) -> dict[str, InventoryItem]:
        """The rows that exist among `names`."""
        return {n: self.inventory[n] for n in dict.fromkeys(names) if n in self.inventory}

    def inventory_get(self, name: str) -> InventoryItem | None:
        """One row, or None."""
        return self.inventory.get(name)

    def inventory_put_if_absent(self, item: InventoryItem) -> bool:
        """Create the row unless it exists; say whether it was created."""
        self.writes.append(f"inventory_put_if_absent {item.item_name}")
        if item.item_name in self.inventory:
            return False
        self.inventory[item.item_name] = InventoryItem.from_item(_stored(item.as_item()))
        return True

    def inventory_adjust(self, name: str, delta: int) -> InventoryItem:
        """Add `delta` to the stock atomically; InsufficientStock below zero or if absent."""
        self.writes.append(f"inventory_adjust {name}")
        row = self.inventory.get(name)
        if row is None or row.stock < max(0, -delta):
            raise InsufficientStock([Shortage(name, -delta, row.stock if row else None)])
        self.inventory[name] = replace(row, stock=row.stock + delta)
        return self.inventory[name]

    def inventory_update_details(
        self, name: str, *, price: Decimal, description: str
    ) -> InventoryItem:
        """Set price and description, never stock; InventoryItemNotFound if absent."""
        self.writes.append(f"inventory_update_details {name}")
        row = self.inventory.get(name)
        if row is None:
            raise InventoryItemNotFound(name)
        stored = _stored({"Price": price, "Description": description})
        self.inventory[name] = InventoryItem.from_item({**row.as_item(), **stored})
        return self.inventory[name]

    def inventory_update_details_if(
        self,
        seen: InventoryItem,
        *,
        price: Decimal,
        description: str,
        low_stock_threshold: int | None,
    ) -> InventoryItem:
        """Set price, description and threshold if all are still as `seen`."""
        self.writes.append(f"inventory_update_details_if {seen.item_name}")
        row = self.inventory.get(seen.item_name)
        if row is None:
            raise InventoryItemNotFound(seen.item_name)
        if (row.price, row.description, row.low_stock_threshold) != (
            seen.price,
            seen.description,
            seen.low_stock_threshold,
        ):
            raise InventoryChangedMeanwhile(seen.item_name, row)
        self.inventory[seen.item_name] = replace(
            row,
            price=_stored({"P": price})["P"],
            description=description,
            low_stock_threshold=low_stock_threshold,
        )
        return self.inventory[seen.item_name]

    def inventory_set_stock_if(self, name: str, *, seen_stock: int, stock: int) -> InventoryItem:
        """Set the stock if it is still `seen_stock`."""
        self.writes.append(f"inventory_set_stock_if {name}")
        row = self.inventory.get(name)
        if row is None:
            raise InventoryItemNotFound(name)
        if row.stock != seen_stock:
            raise InventoryChangedMeanwhile(name, row)
        self.inventory[name] = replace(row, stock=stock)
        return self.inventory[name]

    def inventory_delete_existing(self, name: str) -> InventoryItem:
        """Remove a row and return it as it was; InventoryItemNotFound if absent."""
        self.writes.append(f"inventory_delete_existing {name}")
        if name not in self.inventory:
            raise InventoryItemNotFound(name)
        return self.inventory.pop(name)

    def inventory_scan(self) -> Iterator[InventoryItem]:
        """Every row."""
        yield from list(self.inventory.values())

    # -- ReservationStore -------------------------------------------------------------------------

    def reserve(self, order: Order, reservation: Mapping[str, Any], reason: str, now: str) -> Order:
        """Take every line's stock and move the order PENDING -> RESERVED, all or nothing."""
        self.writes.append(f"reserve {order.order_id}")
        if order.order_id in self.fail_reserve:
            raise self.fail_reserve[order.order_id]
        item = self.orders.get(order.order_id)
        if item is None:
            raise OrderNotFound(order.order_id)
        # The adapter's condition: PENDING, and the Attempt the image was read with (an order
        # written before Attempt existed counts as 0). The order's guard is reported first.
        stored_attempt = item.get("Attempt")
        same_attempt = stored_attempt == order.attempt or (
            stored_attempt is None and order.attempt == 0
        )
        if item["Status"] != OrderStatus.PENDING or not same_attempt:
            raise InvalidTransition(
                order.order_id, OrderStatus(item["Status"]), str(OrderStatus.RESERVED)
            )
        short = find_shortages(
            ((line.item_name, line.quantity) for line in order.lines),
            {name: row.stock for name, row in self.inventory.items()},
        )
        if short:
            raise InsufficientStock(short)
        for line in order.lines:
            row = self.inventory[line.item_name]
            self.inventory[line.item_name] = replace(row, stock=row.stock - line.quantity)
        self._move(
            item,
            OrderStatus.RESERVED,
            reason,
            now,
            set_fields={"Reservation": reservation},
            remove_fields=["Rejection"],
            increment={"Attempt": 1},
        )
        # Like the adapter, the order as written is built from the image, not read back.
        return replace(
            order.with_status(OrderStatus.RESERVED, reason, now),
            reservation=dict(reservation),
            attempt=order.attempt + 1,
            rejection=(),
        )

    def release(
        self,
        order_id: str,
        lines: Sequence[OrderLine],
        target: OrderStatus,
        reason: str,
        now: str,
        *,
        set_fields: Mapping[str, Any] | None = None,
        expected: Sequence[OrderStatus] = (OrderStatus.RESERVED,),
        actor: str | None = None,
        attempt: int | None = None,
    ) -> Order:
        """Give back every line's stock and move the order from `expected` to `target`, once."""
        self.writes.append(f"release {order_id}")
        _check_paths(set_fields or {}, ())
        item = self.orders.get(order_id)
        if item is None:
            raise OrderNotFound(order_id)
        if item["Status"] not in {str(s) for s in expected} or not _on_attempt(item, attempt):
            raise InvalidTransition(order_id, OrderStatus(item["Status"]), str(target))
        lost = []
        for line in lines:
            row = self.inventory.get(line.item_name)
            if row is None:
                # A deleted item is never re-created: its units are recorded on the order.
                lost.append({"ItemName": line.item_name, "Quantity": line.quantity})
                continue
            self.inventory[line.item_name] = replace(row, stock=row.stock + line.quantity)
        if lost:
            before = item.get("StockNotReturned", [])
            item["StockNotReturned"] = [*before, *_stored({"L": lost})["L"]]
        self._move(item, target, reason, now, set_fields=set_fields, actor=actor)
        return self.order(order_id)


_FIXED_PATHS = ("Status", "StatusReason", "LastUpdated", "StatusHistory")


def _on_attempt(item: Mapping[str, Any], attempt: int | None) -> bool:
    # DynamoDB's condition: no attempt given, or the same one (an order without Attempt is on 0).
    if attempt is None:
        return True
    stored = item.get("Attempt")
    return stored == attempt or (stored is None and attempt == 0)


def _check_paths(
    set_fields: Mapping[str, Any],
    remove_fields: Sequence[str],
    *,
    fixed: Sequence[str] = _FIXED_PATHS,
) -> None:
    # DynamoDB refuses an update expression that names one attribute twice.
    names = [*fixed, *set_fields, *remove_fields]
    for name in names:
        if names.count(name) > 1:
            raise client_error(
                "ValidationException",
                f"Invalid UpdateExpression: Two document paths overlap with each other: {name}",
                "UpdateItem",
            )


# -- MessageQueue ---------------------------------------------------------------------------------

# 2026-01-01T00:00:00Z: where a FakeQueue's clock starts.
QUEUE_EPOCH = 1767225600.0
SENDER_ID = "AIDAIT2UOQQY3AUEKVGXU"


@dataclass(frozen=True)
class SentMessage:
    """A message a FakeQueue accepted: its id, body and message attributes (SQS's form)."""

    message_id: str
    body: str
    attributes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def string_attributes(self) -> dict[str, str]:
        """The String attributes as plain name -> value (what send_json was given)."""
        return {name: value["StringValue"] for name, value in self.attributes.items()}


@dataclass
class _Held:
    message_id: str
    body: str
    sent_at: float
    visible_at: float
    receive_count: int = 0
    first_received_at: float | None = None


def _ms(seconds: float) -> str:
    return str(int(seconds * 1000))


class FakeQueue:
    """One SQS standard queue in memory, with SqsQueue's behaviour on moto.

    A received message is hidden for the visibility timeout given (else the queue's,
    `visibility_timeout`, 30 s as SQS's default) and counts one more receive
    (ApproximateReceiveCount); `release` makes messages visible at once and counts only those
    still in the queue; `delete` of a message already gone is accepted, and so is a
    `delete_batch` entry for one (an entry whose receipt handle the queue never issued is not);
    receive asks for 1 to 10 messages or raises ClientError InvalidParameterValue. A long poll
    (`wait_seconds` > 0) that finds nothing visible waits on the queue's clock until a hidden
    message comes back or the wait is over, as SQS waits. `send_raw_batch` accepts any number of
    bodies (the adapter splits them into calls of 10). `purge` empties the queue, once a minute
    (PurgeQueueInProgress otherwise). Messages come out in the order sent. Time passes only when
    a test says so (`advance(seconds)`) or a long poll waits.

    Test helpers (not part of the port):

    - `FakeQueue(bodies)`: a queue that already holds these bodies (not in `sent` or `log`).
    - `fail_sends`: when true, every send raises SQS's NonExistentQueue ClientError.
    - `refuse_bodies`: bodies that send_raw_batch and send_json_batch report as failed entries
      (None), as SQS refuses single entries of a batch.
    - `false_empty_receives`: that many next receives come back empty though messages are
      visible, as a short poll that asked the wrong servers (a long poll still waits its time).
    - `sent`: every message accepted by send_json / send_raw / the batch sends, in order.
    - `log`: the writes in order, as "send <body>", "delete <id>", "release <id>,<id>",
      "purge"; two queues may share one list (`a.log = b.log`) to show the order across both.
    - `receives`: how many receive calls were made.
    - `messages`: id -> body of every message in the queue (visible or in flight).
    - `visible`: the ids that a receive could return now.
    - `receive_counts`: id -> how often each message was handed out.
    - `now`, `advance(seconds)`: the queue's clock (epoch seconds, from 2026-01-01).

    Message ids are "m1", "m2", ... in the order messages entered the queue.
    """

    def __init__(
        self,
        bodies: Iterable[str] = (),
        *,
        fail_sends: bool = False,
        visibility_timeout: int = 30,
        name: str = "fake-queue",
    ):
        self.name = name
        self.visibility_timeout = visibility_timeout
        self.fail_sends = fail_sends
        self.refuse_bodies: set[str] = set()
        self.false_empty_receives = 0
        self.receives = 0
        self.now = QUEUE_EPOCH
        self.sent: list[SentMessage] = []
        self.log: list[str] = []
        self._held: dict[str, _Held] = {}
        self._handles: set[str] = set()
        self._count = 0
        self._purged_at: float | None = None
        for body in bodies:
            self._enqueue(body)

    # -- test helpers -----------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass (test helper): visibility timeouts that end meanwhile run out."""
        self.now += seconds

    @property
    def messages(self) -> dict[str, str]:
        """Id -> body of every message in the queue, visible or in flight (test helper)."""
        return {m.message_id: m.body for m in self._held.values()}

    @property
    def visible(self) -> list[str]:
        """The ids of the messages a receive could return now (test helper)."""
        return [m.message_id for m in self._held.values() if m.visible_at <= self.now]

    @property
    def receive_counts(self) -> dict[str, int]:
        """Id -> how many times each message in the queue was handed out (test helper)."""
        return {m.message_id: m.receive_count for m in self._held.values()}

    def _enqueue(self, body: str) -> str:
        self._count += 1
        message_id = f"m{self._count}"
        self._held[message_id] = _Held(message_id, body, sent_at=self.now, visible_at=self.now)
        return message_id

    def _refuse_if_failing(self, operation: str) -> None:
        if self.fail_sends:
            raise client_error(
                "AWS.SimpleQueueService.NonExistentQueue",
                "The specified queue does not exist.",
                operation,
            )

    def _send(self, body: str, attributes: Mapping[str, Mapping[str, str]]) -> str:
        message_id = self._enqueue(body)
        self.sent.append(SentMessage(message_id, body, dict(attributes)))
        self.log.append(f"send {body}")
        return message_id

    # -- MessageQueue -----------------------------------------------------------------------------

    def send_json(
        self, body: Mapping[str, Any], *, attributes: Mapping[str, str] | None = None
    ) -> str:
        """Send one JSON message; return its id."""
        self._refuse_if_failing("SendMessage")
        wire = {k: {"DataType": "String", "StringValue": v} for k, v in (attributes or {}).items()}
        return self._send(json.dumps(body), wire)

    def send_raw(self, body: str, *, attributes: Mapping[str, Any] | None = None) -> str:
        """Send a body as it is; return the new message id."""
        self._refuse_if_failing("SendMessage")
        return self._send(body, dict(attributes or {}))

    def send_raw_batch(self, bodies: Sequence[str]) -> list[str | None]:
        """Send bodies as they are; return each one's new id, or None where it was refused."""
        if bodies:
            self._refuse_if_failing("SendMessageBatch")
        return [None if body in self.refuse_bodies else self._send(body, {}) for body in bodies]

    def send_json_batch(
        self, messages: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]]
    ) -> list[str | None]:
        """Send JSON bodies with string attributes; each one's new id, or None where refused."""
        if messages:
            self._refuse_if_failing("SendMessageBatch")
        ids: list[str | None] = []
        for body, attributes in messages:
            text = json.dumps(body)
            wire = {k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()}
            ids.append(None if text in self.refuse_bodies else self._send(text, wire))
        return ids

    def receive(
        self, *, max_messages: int = 10, wait_seconds: int = 0, visibility: int | None = None
    ) -> list[QueueMessage]:
        """Up to `max_messages` messages, hidden for the visibility timeout; a long poll waits
        (on the queue's clock) for a hidden message to come back."""
        if not 1 <= max_messages <= 10:
            raise client_error(
                "InvalidParameterValue",
                f"Value {max_messages} for parameter MaxNumberOfMessages is invalid. "
                "Reason: must be between 1 and 10, if provided.",
                "ReceiveMessage",
            )
        self.receives += 1
        if self.false_empty_receives > 0:
            self.false_empty_receives -= 1
            self.advance(wait_seconds)
            return []
        if wait_seconds > 0 and not self.visible:
            # SQS holds a long poll open until a message is visible or the wait is over.
            comes_back = min((m.visible_at for m in self._held.values()), default=None)
            if comes_back is not None and comes_back <= self.now + wait_seconds:
                self.now = comes_back
            else:
                self.advance(wait_seconds)
        timeout = self.visibility_timeout if visibility is None else visibility
        batch = []
        for held in self._held.values():
            if len(batch) == max_messages:
                break
            if held.visible_at > self.now:
                continue
            held.visible_at = self.now + timeout
            held.receive_count += 1
            if held.first_received_at is None:
                held.first_received_at = self.now
            handle = f"rh-{held.message_id}-{held.receive_count}"
            self._handles.add(handle)
            batch.append(
                QueueMessage(
                    held.message_id,
                    handle,
                    held.body,
                    {
                        "SenderId": SENDER_ID,
                        "SentTimestamp": _ms(held.sent_at),
                        "ApproximateReceiveCount": str(held.receive_count),
                        "ApproximateFirstReceiveTimestamp": _ms(held.first_received_at),
                    },
                )
            )
        return batch

    def delete(self, message: QueueMessage) -> None:
        """Remove a handled message."""
        self.log.append(f"delete {message.message_id}")
        self._held.pop(message.message_id, None)

    def delete_batch(self, messages: Sequence[QueueMessage]) -> int:
        """Remove handled messages; return how many were accepted."""
        deleted = 0
        for message in messages:
            if message.receipt_handle in self._handles:
                self.delete(message)
                deleted += 1
        return deleted

    def purge(self) -> None:
        """Delete every message, visible or not; once a minute."""
        if self._purged_at is not None and self.now - self._purged_at < 60:
            raise client_error(
                "AWS.SimpleQueueService.PurgeQueueInProgress",
                f"Only one PurgeQueue operation on {self.name} is allowed every 60 seconds.",
                "PurgeQueue",
            )
        self._purged_at = self.now
        self.log.append("purge")
        self._held.clear()

    def release(self, messages: Iterable[QueueMessage]) -> int:
        """Make received messages visible again at once; return how many were."""
        ids = [m.message_id for m in messages]
        if ids:
            self.log.append(f"release {','.join(ids)}")
        released = 0
        for message_id in ids:
            held = self._held.get(message_id)
            if held is not None:
                held.visible_at = self.now
                released += 1
        return released

    def depth(self) -> dict[str, int]:
        """Visible, in-flight and delayed message counts."""
        visible = len(self.visible)
        return {"visible": visible, "in_flight": len(self._held) - visible, "delayed": 0}


# -- Workflow -------------------------------------------------------------------------------------


class FakeWorkflow:
    """The fulfilment state machine in memory: one execution per name, as Step Functions keeps.

    `start` creates the execution `name` unless one exists (RUNNING or finished): then it
    answers started=False with the same ARN, whatever the payload. `describe` answers in
    DescribeExecution's shape (executionArn, stateMachineArn, name, status, startDate, input
    as JSON text, and stopDate / output once finished), or None for a name never started.

    Test helpers (not part of the port):

    - `FakeWorkflow(existing=[names])`: executions that exist already (RUNNING, input {}).
    - `executions`: name -> the execution as `describe` shows it, in the order started.
    - `calls`: every (name, payload) `start` was called with, including failed calls.
    - `fail_on`: name -> exception that `start` raises for that name (nothing is started).
    - `finish(name, ...)`: end an execution, as its last state would.
    """

    STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:OrderWorkflow-Ab12Cd34"

    def __init__(self, existing: Iterable[str] = (), *, state_machine_arn: str = STATE_MACHINE_ARN):
        self.state_machine_arn = state_machine_arn
        self.executions: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_on: dict[str, Exception] = {}
        for name in existing:
            self._create(name, {})

    def execution_arn(self, name: str) -> str:
        """The ARN an execution with this name has (as FulfilmentWorkflow derives it)."""
        prefix, _, machine = self.state_machine_arn.rpartition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"

    def _create(self, name: str, payload: Mapping[str, Any]) -> None:
        self.executions[name] = {
            "executionArn": self.execution_arn(name),
            "stateMachineArn": self.state_machine_arn,
            "name": name,
            "status": "RUNNING",
            "startDate": datetime.now(UTC),
            "input": json.dumps(payload),
            "inputDetails": {"included": True},
        }

    def finish(
        self, name: str, *, status: str = "SUCCEEDED", output: Mapping[str, Any] | None = None
    ) -> None:
        """End the execution `name` with `status` (test helper); its output defaults to its
        input, as a workflow whose states pass it on."""
        execution = self.executions[name]
        result = json.loads(execution["input"]) if output is None else dict(output)
        execution.update(
            status=status,
            stopDate=datetime.now(UTC),
            output=json.dumps(result),
            outputDetails={"included": True},
        )

    def start(self, name: str, payload: Mapping[str, Any]) -> StartResult:
        """Start the execution `name` unless it exists; never start a second one."""
        self.calls.append((name, dict(payload)))
        if name in self.fail_on:
            raise self.fail_on[name]
        if name in self.executions:
            return StartResult(self.execution_arn(name), started=False)
        self._create(name, payload)
        return StartResult(self.execution_arn(name), started=True)

    def describe(self, name: str) -> dict[str, Any] | None:
        """The execution's status, input and output, or None if it was never started."""
        execution = self.executions.get(name)
        return copy.deepcopy(execution) if execution is not None else None
