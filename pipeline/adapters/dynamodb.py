"""The Orders and Inventory tables: conditional writes and the reservation transactions."""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from pipeline import aws
from pipeline.domain import Order, OrderLine
from pipeline.errors import (
    InsufficientStock,
    InvalidTransition,
    InventoryItemNotFound,
    OrderAlreadyExists,
    OrderNotFound,
    ReservationContention,
    Shortage,
    find_shortages,
)
from pipeline.statuses import OrderStatus, sources_of

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# DynamoDB cancels a transaction that touches an item another transaction is writing; under a
# hot item this happens often and is always safe to retry.
TRANSACTION_ATTEMPTS = 12
_BACKOFF_BASE_S = 0.005
_BACKOFF_CAP_S = 0.4


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """A plain dict in DynamoDB's attribute-value form."""
    return {k: _serializer.serialize(v) for k, v in item.items()}


def deserialize(item: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute-value dict as plain Python (numbers as Decimal)."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def _sleep_backoff(attempt: int) -> None:
    # Full jitter: spreads the retries of transactions that collided on the same item.
    time.sleep(random.uniform(0, min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2**attempt)))


@dataclass(frozen=True)
class InventoryItem:
    """A row of the Inventory table."""

    item_name: str
    stock: int
    price: Decimal
    description: str = ""

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> InventoryItem:
        """Read a stored row."""
        return cls(
            item_name=item["ItemName"],
            stock=int(item.get("Stock", 0)),
            price=Decimal(str(item.get("Price", "0"))),
            description=item.get("Description", ""),
        )

    def as_item(self) -> dict[str, Any]:
        """The stored shape (seed attribute names)."""
        return {
            "ItemName": self.item_name,
            "Stock": self.stock,
            "Price": self.price,
            "Description": self.description,
        }


@dataclass(frozen=True)
class Page:
    """One page of a listing and the cursor to the next, if any."""

    items: list[Any]
    cursor: dict[str, Any] | None


class DynamoStore:
    """Both tables of the pipeline; transactions that span them live here."""

    def __init__(self, orders_table: str, inventory_table: str, client: Any | None = None):
        self.orders_table = orders_table
        self.inventory_table = inventory_table
        self._client = client

    @property
    def client(self) -> Any:
        """The DynamoDB client given, or the shared one."""
        return self._client or aws.client("dynamodb")

    # -- Orders ---------------------------------------------------------------------------------

    def order_put_new(self, order: Order) -> None:
        """Write a new order; never overwrite one with the same id."""
        try:
            self.client.put_item(
                TableName=self.orders_table,
                Item=serialize(order.as_item()),
                ConditionExpression="attribute_not_exists(OrderId)",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise OrderAlreadyExists(order.order_id) from exc
            raise

    def order_find(self, order_id: str, *, consistent: bool = True) -> Order | None:
        """The order, or None."""
        response = self.client.get_item(
            TableName=self.orders_table,
            Key={"OrderId": {"S": order_id}},
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return Order.from_item(deserialize(item)) if item else None

    def order_get(self, order_id: str, *, consistent: bool = True) -> Order:
        """The order, or OrderNotFound."""
        order = self.order_find(order_id, consistent=consistent)
        if order is None:
            raise OrderNotFound(order_id)
        return order

    def _transition_update(
        self,
        order_id: str,
        target: OrderStatus,
        reason: str,
        now: str,
        *,
        expected: Iterable[OrderStatus] | None = None,
        set_fields: Mapping[str, Any] | None = None,
        remove_fields: Sequence[str] = (),
        increment: Mapping[str, int] | None = None,
        attempt: int | None = None,
    ) -> dict[str, Any]:
        """The Update action that moves an order to `target`, guarded by its current status
        (and, given `attempt`, by its Attempt: orders written before it existed count as 0)."""
        allowed = sorted(sources_of(target) if expected is None else set(expected))
        if not allowed:
            raise InvalidTransition(order_id, None, str(target))
        names = {"#s": "Status", "#r": "StatusReason", "#u": "LastUpdated", "#h": "StatusHistory"}
        values: dict[str, Any] = {
            ":to": str(target),
            ":r": reason,
            ":u": now,
            ":h": [{"Status": str(target), "At": now, "Reason": reason}],
            ":empty": [],
        }
        sets = ["#s = :to", "#r = :r", "#u = :u", "#h = list_append(if_not_exists(#h, :empty), :h)"]
        for i, (field, value) in enumerate((set_fields or {}).items()):
            names[f"#f{i}"] = field
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        expression = "SET " + ", ".join(sets)
        adds = []
        for i, (field, delta) in enumerate((increment or {}).items()):
            names[f"#a{i}"] = field
            values[f":a{i}"] = delta
            adds.append(f"#a{i} :a{i}")
        if adds:
            expression += " ADD " + ", ".join(adds)
        removes = []
        for i, field in enumerate(remove_fields):
            names[f"#d{i}"] = field
            removes.append(f"#d{i}")
        if removes:
            expression += " REMOVE " + ", ".join(removes)
        placeholders = []
        for i, status in enumerate(allowed):
            values[f":e{i}"] = str(status)
            placeholders.append(f":e{i}")
        condition = f"attribute_exists(OrderId) AND #s IN ({', '.join(placeholders)})"
        if attempt is not None:
            names["#att"] = "Attempt"
            values[":att"] = attempt
            condition += " AND (#att = :att" + (
                " OR attribute_not_exists(#att))" if attempt == 0 else ")"
            )
        return {
            "TableName": self.orders_table,
            "Key": {"OrderId": {"S": order_id}},
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
        }

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
    ) -> Order:
        """Move the order to `target` if its status allows; return the order as written.

        Raises OrderNotFound, or InvalidTransition naming the status the order really has.
        """
        update = self._transition_update(
            order_id,
            target,
            reason,
            now,
            expected=expected,
            set_fields=set_fields,
            remove_fields=remove_fields,
        )
        try:
            response = self.client.update_item(
                **update,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            if not old:
                raise OrderNotFound(order_id) from exc
            raise InvalidTransition(order_id, deserialize(old).get("Status"), str(target)) from exc
        return Order.from_item(deserialize(response["Attributes"]))

    def order_count_requeue(self, order_id: str, now: str) -> None:
        """Note that a RESERVED order was re-sent to the queue (no status change)."""
        try:
            self.client.update_item(
                TableName=self.orders_table,
                Key={"OrderId": {"S": order_id}},
                UpdateExpression="ADD RequeueCount :one SET RequeuedAt = :now",
                ConditionExpression="#s = :reserved",
                ExpressionAttributeNames={"#s": "Status"},
                ExpressionAttributeValues={
                    ":one": {"N": "1"},
                    ":now": {"S": now},
                    ":reserved": {"S": str(OrderStatus.RESERVED)},
                },
            )
        except ClientError as exc:
            # It moved on meanwhile (its workflow started): nothing to count.
            if _code(exc) != "ConditionalCheckFailedException":
                raise

    def table_item_count(self, table: str, *, exact: bool = False) -> dict[str, Any]:
        """{table, items, exact}: DescribeTable's estimate (AWS refreshes it about every six
        hours), or with `exact` a COUNT scan, which reads the whole table."""
        if not exact:
            described = self.client.describe_table(TableName=table)["Table"]
            return {"table": table, "items": described.get("ItemCount", 0), "exact": False}
        total = 0
        kwargs: dict[str, Any] = {"TableName": table, "Select": "COUNT"}
        while True:
            page = self.client.scan(**kwargs)
            total += page["Count"]
            if "LastEvaluatedKey" not in page:
                return {"table": table, "items": total, "exact": True}
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def orders_by_status(
        self, status: OrderStatus, *, limit: int = 50, cursor: dict[str, Any] | None = None
    ) -> Page:
        """Orders in one status, newest first, through the StatusIndex."""
        kwargs: dict[str, Any] = {
            "TableName": self.orders_table,
            "IndexName": "StatusIndex",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "Status"},
            "ExpressionAttributeValues": {":s": {"S": str(status)}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = serialize(cursor)
        response = self.client.query(**kwargs)
        return self._page(response)

    def orders_by_customer(
        self, customer_name: str, *, limit: int = 50, cursor: dict[str, Any] | None = None
    ) -> Page:
        """A customer's orders, newest first, through the CustomerIndex."""
        kwargs: dict[str, Any] = {
            "TableName": self.orders_table,
            "IndexName": "CustomerIndex",
            "KeyConditionExpression": "CustomerName = :c",
            "ExpressionAttributeValues": {":c": {"S": customer_name}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if cursor:
            kwargs["ExclusiveStartKey"] = serialize(cursor)
        return self._page(self.client.query(**kwargs))

    @staticmethod
    def _page(response: Mapping[str, Any]) -> Page:
        items = [Order.from_item(deserialize(i)) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return Page(items, deserialize(last) if last else None)

    # -- Inventory ------------------------------------------------------------------------------

    def inventory_get_many(
        self, names: Iterable[str], *, consistent: bool = True
    ) -> dict[str, InventoryItem]:
        """The inventory rows that exist among `names` (missing names are simply absent)."""
        wanted = list(dict.fromkeys(names))
        found: dict[str, InventoryItem] = {}
        for start in range(0, len(wanted), 100):  # BatchGetItem takes 100 keys at most
            keys = [{"ItemName": {"S": n}} for n in wanted[start : start + 100]]
            request: dict[str, Any] = {
                self.inventory_table: {"Keys": keys, "ConsistentRead": consistent}
            }
            attempt = 0
            while request:
                response = self.client.batch_get_item(RequestItems=request)
                for raw in response.get("Responses", {}).get(self.inventory_table, []):
                    row = InventoryItem.from_item(deserialize(raw))
                    found[row.item_name] = row
                request = response.get("UnprocessedKeys") or {}
                if request:
                    _sleep_backoff(attempt)
                    attempt += 1
        return found

    def inventory_get(self, name: str) -> InventoryItem | None:
        """One inventory row, or None."""
        response = self.client.get_item(
            TableName=self.inventory_table, Key={"ItemName": {"S": name}}, ConsistentRead=True
        )
        item = response.get("Item")
        return InventoryItem.from_item(deserialize(item)) if item else None

    def inventory_put(self, item: InventoryItem) -> None:
        """Create or replace an inventory row."""
        self.client.put_item(TableName=self.inventory_table, Item=serialize(item.as_item()))

    def inventory_put_if_absent(self, item: InventoryItem) -> bool:
        """Create the row unless it exists; say whether it was created."""
        try:
            self.client.put_item(
                TableName=self.inventory_table,
                Item=serialize(item.as_item()),
                ConditionExpression="attribute_not_exists(ItemName)",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def inventory_adjust(self, name: str, delta: int) -> InventoryItem:
        """Add `delta` to an item's stock atomically; never below zero (InsufficientStock)."""
        try:
            response = self.client.update_item(
                TableName=self.inventory_table,
                Key={"ItemName": {"S": name}},
                UpdateExpression="ADD Stock :d",
                ConditionExpression="attribute_exists(ItemName) AND Stock >= :floor",
                ExpressionAttributeValues={
                    ":d": {"N": str(delta)},
                    ":floor": {"N": str(max(0, -delta))},
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            available = int(deserialize(old)["Stock"]) if old else None
            raise InsufficientStock([Shortage(name, -delta, available)]) from exc
        return InventoryItem.from_item(deserialize(response["Attributes"]))

    def inventory_delete(self, name: str) -> None:
        """Remove an inventory row."""
        self.client.delete_item(TableName=self.inventory_table, Key={"ItemName": {"S": name}})

    def inventory_scan(self) -> Iterator[InventoryItem]:
        """Every inventory row."""
        kwargs: dict[str, Any] = {"TableName": self.inventory_table}
        while True:
            response = self.client.scan(**kwargs)
            for raw in response.get("Items", []):
                yield InventoryItem.from_item(deserialize(raw))
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- Reservation transactions ---------------------------------------------------------------

    def shortages(self, lines: Sequence[OrderLine]) -> list[Shortage]:
        """Every line that the current stock cannot cover (strongly consistent read)."""
        rows = self.inventory_get_many(line.item_name for line in lines)
        return find_shortages(
            ((line.item_name, line.quantity) for line in lines),
            {name: row.stock for name, row in rows.items()},
        )

    def reserve(self, order: Order, reservation: Mapping[str, Any], reason: str, now: str) -> Order:
        """Decrement stock for every line and move the order PENDING -> RESERVED, in one
        transaction: all of it happens or none of it does. Returns the order as written.

        `order` is the order as the caller read it (from the table, or a stream image): the
        write also requires its Attempt, so a stale copy (the order went round to PENDING
        again meanwhile) fails like a wrong status and is never reserved on old data.

        Raises InsufficientStock naming every short or unknown line, InvalidTransition when the
        order is no longer that PENDING order, ReservationContention when collisions never stop.
        """
        order_id, lines = order.order_id, order.lines
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.inventory_table,
                    "Key": {"ItemName": {"S": line.item_name}},
                    "UpdateExpression": "SET Stock = Stock - :q",
                    "ConditionExpression": "attribute_exists(ItemName) AND Stock >= :q",
                    "ExpressionAttributeValues": {":q": {"N": str(line.quantity)}},
                }
            }
            for line in lines
        ]
        actions.append(
            {
                "Update": self._transition_update(
                    order_id,
                    OrderStatus.RESERVED,
                    reason,
                    now,
                    expected=[OrderStatus.PENDING],
                    set_fields={"Reservation": reservation},
                    remove_fields=["Rejection"],
                    increment={"Attempt": 1},
                    attempt=order.attempt,
                )
            }
        )
        # What the transaction wrote, built here: a read after it would only return the same.
        written = replace(
            order.with_status(OrderStatus.RESERVED, reason, now),
            reservation=dict(reservation),
            attempt=order.attempt + 1,
            rejection=(),
        )
        return self._transact_order(actions, order_id, OrderStatus.RESERVED, lines, written)

    def release(
        self,
        order_id: str,
        lines: Sequence[OrderLine],
        target: OrderStatus,
        reason: str,
        now: str,
    ) -> Order:
        """Give back the reserved stock of every line and move the order RESERVED -> `target`,
        in one transaction. The status guard makes a second release impossible.
        """
        actions: list[dict[str, Any]] = [
            {
                "Update": {
                    "TableName": self.inventory_table,
                    "Key": {"ItemName": {"S": line.item_name}},
                    # if_not_exists: stock given back to an item staff deleted meanwhile is kept.
                    "UpdateExpression": "SET Stock = if_not_exists(Stock, :zero) + :q",
                    "ExpressionAttributeValues": {
                        ":q": {"N": str(line.quantity)},
                        ":zero": {"N": "0"},
                    },
                }
            }
            for line in lines
        ]
        actions.append(
            {
                "Update": self._transition_update(
                    order_id, target, reason, now, expected=[OrderStatus.RESERVED]
                )
            }
        )
        return self._transact_order(actions, order_id, target, None)

    def _transact_order(
        self,
        actions: list[dict[str, Any]],
        order_id: str,
        target: OrderStatus,
        reserving: Sequence[OrderLine] | None,
        written: Order | None = None,
    ) -> Order:
        """Run a transaction whose last action moves the order; retry collisions with backoff.

        A failed order guard becomes InvalidTransition (with the real status); when `reserving`,
        a failed stock guard becomes InsufficientStock naming every short line.
        """
        order_index = len(actions) - 1
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=actions)
            except ClientError as exc:
                code = _code(exc)
                if code in ("TransactionInProgressException", "ThrottlingException"):
                    _sleep_backoff(attempt)
                    continue
                if code != "TransactionCanceledException":
                    raise
                codes = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
                if len(codes) > order_index and codes[order_index] == "ConditionalCheckFailed":
                    current = self.order_find(order_id)
                    if current is None:
                        raise OrderNotFound(order_id) from exc
                    raise InvalidTransition(order_id, current.status, str(target)) from exc
                if reserving is not None and "ConditionalCheckFailed" in codes:
                    short = self.shortages(reserving)
                    if short:
                        raise InsufficientStock(short) from exc
                    # Stock came back between the transaction and the re-read: try again.
                _sleep_backoff(attempt)
                continue
            return written if written is not None else self.order_get(order_id)
        raise ReservationContention(
            f"order {order_id}: the move to {target} kept colliding with other writes; retry later"
        )

    # -- Staff operations (the portal's dashboard and inventory pages) --------------------------

    def orders_count_by_status(self, status: OrderStatus, *, cap: int = 10_000) -> tuple[int, bool]:
        """How many orders are in `status` (a COUNT query on the StatusIndex), counting at most
        about `cap`; the flag says the count stopped at the cap (so the real number is larger).
        """
        kwargs: dict[str, Any] = {
            "TableName": self.orders_table,
            "IndexName": "StatusIndex",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "Status"},
            "ExpressionAttributeValues": {":s": {"S": str(status)}},
            "Select": "COUNT",
        }
        total = 0
        while True:
            response = self.client.query(**kwargs)
            total += response["Count"]
            last = response.get("LastEvaluatedKey")
            if not last:
                return total, False
            if total >= cap:
                # A busy status can hold millions of orders: each page is a read, so stop here.
                return total, True
            kwargs["ExclusiveStartKey"] = last

    def inventory_update_details(
        self, name: str, *, price: Decimal, description: str
    ) -> InventoryItem:
        """Set an item's price and description; Stock is not part of the write, so concurrent
        reservations and adjustments are never overwritten. InventoryItemNotFound if absent.
        """
        try:
            response = self.client.update_item(
                TableName=self.inventory_table,
                Key={"ItemName": {"S": name}},
                UpdateExpression="SET Price = :p, Description = :d",
                ConditionExpression="attribute_exists(ItemName)",
                ExpressionAttributeValues=serialize({":p": price, ":d": description}),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise InventoryItemNotFound(name) from exc
            raise
        return InventoryItem.from_item(deserialize(response["Attributes"]))

    def inventory_delete_existing(self, name: str) -> InventoryItem:
        """Remove an inventory row and return it as it was; InventoryItemNotFound if absent."""
        try:
            response = self.client.delete_item(
                TableName=self.inventory_table,
                Key={"ItemName": {"S": name}},
                ConditionExpression="attribute_exists(ItemName)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) == "ConditionalCheckFailedException":
                raise InventoryItemNotFound(name) from exc
            raise
        return InventoryItem.from_item(deserialize(response["Attributes"]))
