"""The ports the use cases type against, and the values that cross them.

Each port is a small `typing.Protocol`: the DynamoDB, SQS and Step Functions adapters and the
mock gateway and carriers implement them in production; tests/fakes.py holds one in-memory fake
per port, and tests/integration/contracts runs the same cases against both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

from pipeline.domain import InventoryItem, Order, OrderLine
from pipeline.statuses import OrderStatus

# -- Values ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor to the next, if any."""

    items: list[Any]
    cursor: dict[str, Any] | None


@dataclass(frozen=True)
class QueueMessage:
    """A message read from a queue, with what is needed to delete it."""

    message_id: str
    receipt_handle: str
    body: str
    attributes: Mapping[str, str]

    @property
    def receive_count(self) -> int:
        """How many times SQS has handed this message out."""
        return int(self.attributes.get("ApproximateReceiveCount", "0"))


@dataclass(frozen=True)
class StartResult:
    """The execution that handles an order attempt and whether this call created it."""

    execution_arn: str
    started: bool


@dataclass(frozen=True)
class Charge:
    """An approved payment."""

    transaction_id: str
    amount: Decimal
    currency: str
    processed_at: str

    def as_item(self) -> dict[str, object]:
        """The stored shape on the order (`Payment`)."""
        return {
            "TransactionId": self.transaction_id,
            "Amount": self.amount,
            "Currency": self.currency,
            "ProcessedAt": self.processed_at,
        }


@dataclass(frozen=True)
class Shipment:
    """A booked shipment."""

    carrier: str
    service: str
    tracking_number: str
    estimated_delivery: str
    shipped_at: str

    def as_item(self) -> dict[str, str]:
        """The stored shape on the order (`Shipment`)."""
        return {
            "Carrier": self.carrier,
            "Service": self.service,
            "TrackingNumber": self.tracking_number,
            "EstimatedDelivery": self.estimated_delivery,
            "ShippedAt": self.shipped_at,
        }


# -- Stores ---------------------------------------------------------------------------------------


class OrderStore(Protocol):
    """The Orders table: conditional writes, reads and the two index listings."""

    def order_put_new(self, order: Order) -> None:
        """Write a new order; OrderAlreadyExists if the id is taken."""
        ...

    def order_find(self, order_id: str, *, consistent: bool = True) -> Order | None:
        """The order, or None."""
        ...

    def order_get(self, order_id: str, *, consistent: bool = True) -> Order:
        """The order, or OrderNotFound."""
        ...

    def orders_find(self, order_ids: Sequence[str], *, consistent: bool = True) -> dict[str, Order]:
        """The orders found, by id (an id with no order is left out), in as few reads as the
        table allows. Raises if the table cannot be read."""
        ...

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
        """Move the order to `target` if its status allows (`actor`: the staff member, written
        into the history entry; `attempt`: only while the order is on that attempt);
        OrderNotFound or InvalidTransition."""
        ...

    def order_set_fields(
        self,
        order_id: str,
        fields: Mapping[str, Any],
        *,
        expected: Iterable[OrderStatus],
        remove_fields: Sequence[str] = (),
        attempt: int | None = None,
    ) -> Order:
        """Write fields on the order, no status change, if its status is one of `expected`
        (and, given `attempt`, the order is on that attempt)."""
        ...

    def order_set_fields_if_unchanged(
        self,
        order_id: str,
        fields: Mapping[str, Any],
        *,
        expected: Iterable[OrderStatus],
        unchanged: Mapping[str, Any],
    ) -> Order:
        """Write fields on the order, no status change, if its status is one of `expected` and
        each attribute of `unchanged` still holds the value given (None: the attribute is
        absent): a compare-and-set, so of two writers that read the same order one wins.
        OrderNotFound, or InvalidTransition with the real status when a condition fails."""
        ...

    def order_count_requeue(self, order_id: str, now: str) -> None:
        """Note that a RESERVED order was re-sent to the queue (no status change)."""
        ...

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
        """Orders in one status, newest first (or oldest first); with `placed_before`
        (`placed_after`), only those whose OrderDate is at or before (after) it (the index's
        sort key: the sweepers' bound, the staff's date range)."""
        ...


class InventoryStore(Protocol):
    """The Inventory table: reads and the staff's guarded writes."""

    def inventory_get_many(
        self, names: Iterable[str], *, consistent: bool = True
    ) -> dict[str, InventoryItem]:
        """The rows that exist among `names`."""
        ...

    def inventory_get(self, name: str) -> InventoryItem | None:
        """One row, or None."""
        ...

    def inventory_put_if_absent(self, item: InventoryItem) -> bool:
        """Create the row unless it exists; say whether it was created."""
        ...

    def inventory_adjust(self, name: str, delta: int) -> InventoryItem:
        """Add `delta` to the stock atomically; InsufficientStock below zero or if absent."""
        ...

    def inventory_update_details(
        self, name: str, *, price: Decimal, description: str
    ) -> InventoryItem:
        """Set price and description, never stock; InventoryItemNotFound if absent."""
        ...

    def inventory_update_details_if(
        self,
        seen: InventoryItem,
        *,
        price: Decimal,
        description: str,
        low_stock_threshold: int | None,
    ) -> InventoryItem:
        """Set price, description and threshold if all are still as `seen`;
        InventoryChangedMeanwhile otherwise, InventoryItemNotFound if absent."""
        ...

    def inventory_set_stock_if(self, name: str, *, seen_stock: int, stock: int) -> InventoryItem:
        """Set the stock if it is still `seen_stock`; InventoryChangedMeanwhile otherwise."""
        ...

    def inventory_delete_existing(self, name: str) -> InventoryItem:
        """Remove a row and return it as it was; InventoryItemNotFound if absent."""
        ...

    def inventory_scan(self) -> Iterator[InventoryItem]:
        """Every row."""
        ...


class ReservationStore(OrderStore, InventoryStore, Protocol):
    """Both tables, and the transactions that move stock and an order's status together."""

    def reserve(self, order: Order, reservation: Mapping[str, Any], reason: str, now: str) -> Order:
        """Take every line's stock and move the order PENDING -> RESERVED, all or nothing."""
        ...

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
        """Give back every line's stock and move the order from `expected` (RESERVED unless
        staff release a MANUAL_INTERVENTION order) to `target`, once (given `attempt`, only
        while the order is on that attempt)."""
        ...


# -- Queues and the workflow ----------------------------------------------------------------------


class MessageQueue(Protocol):
    """An SQS queue: the Orders queue, its dead-letter queue, the stream-failure queue."""

    def send_json(
        self, body: Mapping[str, Any], *, attributes: Mapping[str, str] | None = None
    ) -> str:
        """Send one JSON message; return its id."""
        ...

    def send_raw(self, body: str, *, attributes: Mapping[str, Any] | None = None) -> str:
        """Send a body as it is; return the new message id."""
        ...

    def send_raw_batch(self, bodies: Sequence[str]) -> list[str | None]:
        """Send bodies as they are, in as few calls as SQS allows; return each one's new
        message id, or None where SQS refused that entry. Raises if a whole call fails."""
        ...

    def send_json_batch(
        self, messages: Sequence[tuple[Mapping[str, Any], Mapping[str, str]]]
    ) -> list[str | None]:
        """Send (JSON body, string attributes) pairs in as few calls as SQS allows; return
        each one's id, or None where SQS refused that entry. Raises if a whole call fails."""
        ...

    def receive(
        self, *, max_messages: int = 10, wait_seconds: int = 0, visibility: int | None = None
    ) -> list[QueueMessage]:
        """Up to `max_messages` messages, hidden for the visibility timeout. With
        `wait_seconds` (a long poll) it waits up to that long for a message to be visible; a
        receive may come back empty while messages remain (ask `depth` before believing it)."""
        ...

    def delete(self, message: QueueMessage) -> None:
        """Remove a handled message."""
        ...

    def delete_batch(self, messages: Sequence[QueueMessage]) -> int:
        """Remove handled messages, in as few calls as SQS allows; return how many it
        accepted (a message deleted already counts; a receipt handle never issued does not)."""
        ...

    def purge(self) -> None:
        """Delete every message in the queue, visible or not; SQS allows one purge a minute
        (ClientError PurgeQueueInProgress otherwise)."""
        ...

    def release(self, messages: Iterable[QueueMessage]) -> int:
        """Make received messages visible again at once; return how many were."""
        ...

    def depth(self) -> dict[str, int]:
        """Visible, in-flight and delayed message counts."""
        ...


class Workflow(Protocol):
    """The fulfilment state machine: one execution per name."""

    def start(self, name: str, payload: Mapping[str, Any]) -> StartResult:
        """Start the execution `name` unless it exists; never start a second one."""
        ...

    def describe(self, name: str) -> dict[str, Any] | None:
        """The execution's status, input and output, or None if it was never started."""
        ...


# -- Payment and shipping -------------------------------------------------------------------------


class PaymentGateway(Protocol):
    """Charges an order's total and gives money back."""

    def charge(
        self,
        *,
        amount: Decimal,
        currency: str,
        token: str | None,
        idempotency_key: str,
        attempt: int = 0,
    ) -> Charge:
        """Charge `amount`; PaymentDeclined or PaymentGatewayUnavailable."""
        ...

    def find_charge(self, idempotency_key: str) -> Charge | None:
        """The approved charge made for this key, or None."""
        ...

    def refund(self, transaction_id: str) -> str:
        """Give an approved charge back (once, however often asked); return the refund id."""
        ...


class Carriers(Protocol):
    """Books shipments with a carrier."""

    def book(
        self,
        *,
        total_value: Decimal,
        units: int,
        address: Mapping[str, str] | None,
        today: date | None = None,
    ) -> Shipment:
        """Book a shipment; AddressRejected or CarrierUnavailable."""
        ...
