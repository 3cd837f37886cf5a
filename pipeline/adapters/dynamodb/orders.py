"""The Orders table: conditional puts, guarded status transitions and the index listings."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamodb.codec import (
    TableAdapter,
    deserialize,
    error_code,
    put_unless_present,
    serialize,
)
from pipeline.domain import (
    CUSTOMER_PREFIX_LENGTH,
    WRITE_ID,
    Order,
    StatusChange,
    customer_search_key,
)
from pipeline.errors import InvalidTransition, OrderAlreadyExists, OrderNotFound
from pipeline.ports import Page
from pipeline.statuses import OrderStatus, sources_of

# Index reads one listing page may make before it answers with what it has (and a cursor).
MAX_LISTING_READS = 10


class OrdersTable(TableAdapter):
    """The Orders table's reads and single-item writes."""

    def order_put_new(self, order: Order) -> None:
        """Write a new order; never overwrite one with the same id (OrderAlreadyExists).

        The SDK retries a put whose answer was lost (a timeout, a 5xx after the write); the
        retry then finds the order the first try wrote. Each call marks its item with a
        WriteId of its own, and the SDK resends the very same request, so a stored item with
        this call's WriteId is this write: success. Anything else under the id is a conflict,
        even an identical order from a racing request in the same millisecond (two API
        workers handling one Idempotency-Key: only one of them may answer as the original).
        """
        write_id = uuid.uuid4().hex
        item = {**order.as_item(), WRITE_ID: write_id}
        stored = put_unless_present(self.client, self.orders_table, item, "OrderId")
        if stored is not None and stored.get(WRITE_ID) != {"S": write_id}:
            raise OrderAlreadyExists(order.order_id)

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

    def orders_find(self, order_ids: Sequence[str], *, consistent: bool = True) -> dict[str, Order]:
        """The orders found, by id, in BatchGetItem calls of 100 keys."""
        items = self.batch_get(self.orders_table, "OrderId", order_ids, consistent=consistent)
        return {order.order_id: order for order in map(Order.from_item, items)}

    def _guarded_update(
        self,
        order_id: str,
        *,
        allowed: Sequence[OrderStatus],
        sets: Sequence[str] = (),
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        set_fields: Mapping[str, Any] | None = None,
        remove_fields: Sequence[str] = (),
        increment: Mapping[str, int] | None = None,
        attempt: int | None = None,
    ) -> dict[str, Any]:
        """An Update action on the order, conditional on its status being one of `allowed`
        (and, given `attempt`, on its Attempt: orders written before it existed count as 0)."""
        names = {"#s": "Status", **(names or {})}
        values = dict(values or {})
        sets = list(sets)
        for i, (field, value) in enumerate((set_fields or {}).items()):
            names[f"#f{i}"] = field
            values[f":f{i}"] = value
            sets.append(f"#f{i} = :f{i}")
        clauses = ["SET " + ", ".join(sets)] if sets else []
        adds = []
        for i, (field, delta) in enumerate((increment or {}).items()):
            names[f"#a{i}"] = field
            values[f":a{i}"] = delta
            adds.append(f"#a{i} :a{i}")
        if adds:
            clauses.append("ADD " + ", ".join(adds))
        removes = []
        for i, field in enumerate(remove_fields):
            names[f"#d{i}"] = field
            removes.append(f"#d{i}")
        if removes:
            clauses.append("REMOVE " + ", ".join(removes))
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
            "UpdateExpression": " ".join(clauses),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize(values),
        }

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
        actor: str | None = None,
    ) -> dict[str, Any]:
        """The Update action that moves an order to `target` and appends to its history
        (naming `actor`, the staff member, if given), guarded by its current status (see
        _guarded_update)."""
        allowed = sorted(sources_of(target) if expected is None else set(expected))
        if not allowed:
            raise InvalidTransition(order_id, None, str(target))
        entry = StatusChange(target, now, reason, actor).as_item()
        return self._guarded_update(
            order_id,
            allowed=allowed,
            sets=[
                "#s = :to",
                "#r = :r",
                "#u = :u",
                "#h = list_append(if_not_exists(#h, :none), :h)",
            ],
            names={"#r": "StatusReason", "#u": "LastUpdated", "#h": "StatusHistory"},
            values={
                ":to": str(target),
                ":r": reason,
                ":u": now,
                ":h": [entry],
                ":none": [],
            },
            set_fields=set_fields,
            remove_fields=remove_fields,
            increment=increment,
            attempt=attempt,
        )

    def _run_update(self, order_id: str, update: Mapping[str, Any], target: str | None) -> Order:
        """Apply a guarded update; the order as written, or OrderNotFound / InvalidTransition
        naming the status the order really has (`target` None: a write that keeps it)."""
        try:
            response = self.client.update_item(
                **update,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            old = exc.response.get("Item")
            if not old:
                raise OrderNotFound(order_id) from exc
            status = deserialize(old).get("Status")
            raise InvalidTransition(order_id, status, target or f"{status} (update)") from exc
        return Order.from_item(deserialize(response["Attributes"]))

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
        """Move the order to `target` if its status allows; return the order as written.
        `actor` is the staff member making the change, written into the history entry.

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
            actor=actor,
            attempt=attempt,
        )
        return self._run_update(order_id, update, str(target))

    def order_set_fields(
        self,
        order_id: str,
        fields: Mapping[str, Any],
        *,
        expected: Iterable[OrderStatus],
        remove_fields: Sequence[str] = (),
        attempt: int | None = None,
    ) -> Order:
        """Write `fields` on the order (no status change) if its status is one of `expected`
        (and, given `attempt`, it is on that attempt); return the order as written.
        OrderNotFound, or InvalidTransition with the real status.
        """
        update = self._guarded_update(
            order_id,
            allowed=sorted(set(expected)),
            set_fields=fields,
            remove_fields=remove_fields,
            attempt=attempt,
        )
        return self._run_update(order_id, update, None)

    def order_set_fields_if_unchanged(
        self,
        order_id: str,
        fields: Mapping[str, Any],
        *,
        expected: Iterable[OrderStatus],
        unchanged: Mapping[str, Any],
    ) -> Order:
        """Write `fields` on the order (no status change) if its status is one of `expected`
        and each attribute of `unchanged` still holds the value given (None: absent); return
        the order as written. OrderNotFound, or InvalidTransition with the real status.
        """
        update = self._guarded_update(order_id, allowed=sorted(set(expected)), set_fields=fields)
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        clauses = [update["ConditionExpression"]]
        for i, (name, value) in enumerate(unchanged.items()):
            names[f"#c{i}"] = name
            if value is None:
                clauses.append(f"attribute_not_exists(#c{i})")
            else:
                # DynamoDB's = compares maps and lists whole, so a map read earlier can be
                # the condition that nobody wrote it since.
                values[f":c{i}"] = value
                clauses.append(f"#c{i} = :c{i}")
        update["ConditionExpression"] = " AND ".join(clauses)
        update["ExpressionAttributeNames"] = {**update["ExpressionAttributeNames"], **names}
        update["ExpressionAttributeValues"] = {
            **update["ExpressionAttributeValues"],
            **serialize(values),
        }
        return self._run_update(order_id, update, None)

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
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

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
        """Orders in one status, newest first (or oldest first), through the StatusIndex; with
        `placed_before` (`placed_after`), only those whose OrderDate (the index's sort key) is
        at or before (at or after) it."""
        kwargs: dict[str, Any] = {
            "TableName": self.orders_table,
            "IndexName": "StatusIndex",
            "KeyConditionExpression": "#s = :s",
            "ExpressionAttributeNames": {"#s": "Status"},
            "ExpressionAttributeValues": {":s": {"S": str(status)}},
            "ScanIndexForward": oldest_first,
            "Limit": limit,
        }
        # A key condition, not a filter: the query reads only the orders in the range.
        kwargs["KeyConditionExpression"] += _date_range(
            kwargs["ExpressionAttributeValues"], placed_after, placed_before
        )
        if cursor:
            kwargs["ExclusiveStartKey"] = serialize(cursor)
        response = self.client.query(**kwargs)
        return self._page(response)

    def orders_by_customer_prefix(
        self,
        prefix: str,
        *,
        status: OrderStatus | None = None,
        placed_after: str | None = None,
        placed_before: str | None = None,
        limit: int = 50,
        cursor: dict[str, Any] | None = None,
        max_reads: int = 5,
        oldest_first: bool = False,
    ) -> Page:
        """Orders whose customer name starts with `prefix` (compared as customer_search_key
        does: case, accents and spacing ignored), newest first, through the
        CustomerPrefixIndex, optionally in one status and placed within a date range.

        The prefix's first CUSTOMER_PREFIX_LENGTH characters pick the index partition and the
        dates bound its sort key; the rest of the prefix and the status are filters on what
        that reads. A filter can leave a query page short, so up to `max_reads` queries fill
        one page; the cursor then says where the next page starts (None: no more orders).
        Raises ValueError for a prefix shorter than the partition key.
        """
        key = customer_search_key(prefix)
        if len(key) < CUSTOMER_PREFIX_LENGTH:
            raise ValueError(
                f"type at least {CUSTOMER_PREFIX_LENGTH} characters of the customer's name"
            )
        values: dict[str, Any] = {":p": {"S": key[:CUSTOMER_PREFIX_LENGTH]}}
        condition = "CustomerPrefix = :p" + _date_range(values, placed_after, placed_before)
        filters = []
        names: dict[str, str] = {}
        if len(key) > CUSTOMER_PREFIX_LENGTH:
            filters.append("begins_with(CustomerKey, :k)")
            values[":k"] = {"S": key}
        if status is not None:
            filters.append("#s = :s")
            names["#s"] = "Status"
            values[":s"] = {"S": str(status)}
        kwargs: dict[str, Any] = {
            "TableName": self.orders_table,
            "IndexName": "CustomerPrefixIndex",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": oldest_first,
        }
        if filters:
            kwargs["FilterExpression"] = " AND ".join(filters)
        if names:
            kwargs["ExpressionAttributeNames"] = names
        items: list[Order] = []
        start = serialize(cursor) if cursor else None
        for _ in range(max_reads):
            if start:
                kwargs["ExclusiveStartKey"] = start
            kwargs["Limit"] = limit - len(items)
            response = self.client.query(**kwargs)
            items.extend(Order.from_item(deserialize(i)) for i in response.get("Items", []))
            start = response.get("LastEvaluatedKey")
            if not start or len(items) >= limit:
                break
        return Page(items, deserialize(start) if start else None)

    def orders_backfill_search_keys(self, *, page_size: int = 200) -> tuple[int, int]:
        """Write CustomerKey and CustomerPrefix on every order written before they existed,
        so the CustomerPrefixIndex finds it; return (orders read, orders written).

        A one-off migration, so a Scan (filtered to the orders without the attributes); each
        write is conditional on the attribute still being absent, so it never overwrites
        what a new write of the order put there, and running it twice writes nothing more.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.orders_table,
            "FilterExpression": "attribute_not_exists(CustomerPrefix)",
            "ProjectionExpression": "OrderId, CustomerName",
            "Limit": page_size,
        }
        read = written = 0
        while True:
            response = self.client.scan(**kwargs)
            read += response.get("ScannedCount", 0)
            for raw in response.get("Items", []):
                item = deserialize(raw)
                key = customer_search_key(str(item.get("CustomerName", "")))
                if not key:
                    continue
                try:
                    self.client.update_item(
                        TableName=self.orders_table,
                        Key={"OrderId": {"S": item["OrderId"]}},
                        UpdateExpression="SET CustomerKey = :k, CustomerPrefix = :p",
                        ConditionExpression="attribute_exists(OrderId) AND "
                        "attribute_not_exists(CustomerPrefix)",
                        ExpressionAttributeValues={
                            ":k": {"S": key},
                            ":p": {"S": key[:CUSTOMER_PREFIX_LENGTH]},
                        },
                    )
                except ClientError as exc:
                    if error_code(exc) != "ConditionalCheckFailedException":
                        raise
                    continue  # written meanwhile (or deleted): nothing to do
                written += 1
            last = response.get("LastEvaluatedKey")
            if not last:
                return read, written
            kwargs["ExclusiveStartKey"] = last

    def orders_by_client(
        self,
        client_id: str,
        *,
        limit: int = 50,
        cursor: dict[str, Any] | None = None,
        status: OrderStatus | None = None,
        placed_from: str | None = None,
        placed_to: str | None = None,
    ) -> Page:
        """One API key's orders, newest first, through the ClientIndex: the date range is a key
        condition (only those orders are read), the status a filter on what was read. A filtered
        page can hold fewer than `limit` orders and still have a cursor; it reads on until it
        has `limit` or the index ends, so a client never gets an empty page before the last."""
        if placed_from is not None and placed_to is not None and placed_from > placed_to:
            return Page([], None)  # an empty range (DynamoDB refuses BETWEEN on one)
        names: dict[str, str] = {"#c": "ClientId"}
        values: dict[str, Any] = {":c": {"S": client_id}}
        condition = "#c = :c"
        if placed_from is not None and placed_to is not None:
            condition += " AND #d BETWEEN :from AND :to"
        elif placed_from is not None:
            condition += " AND #d >= :from"
        elif placed_to is not None:
            condition += " AND #d <= :to"
        if placed_from is not None or placed_to is not None:
            names["#d"] = "OrderDate"
        if placed_from is not None:
            values[":from"] = {"S": placed_from}
        if placed_to is not None:
            values[":to"] = {"S": placed_to}
        kwargs: dict[str, Any] = {
            "TableName": self.orders_table,
            "IndexName": "ClientIndex",
            "KeyConditionExpression": condition,
            "ScanIndexForward": False,
        }
        if status is not None:
            names["#s"] = "Status"
            values[":s"] = {"S": str(status)}
            kwargs["FilterExpression"] = "#s = :s"
        kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = values
        # Each read evaluates a whole page's worth, so a rare status costs few round trips; a
        # read that brings more than the page needs is cut at the page's last order, whose own
        # key (the index's and the table's) is where the next page starts.
        kwargs["Limit"] = max(limit, 50)
        start = serialize(cursor) if cursor else None
        items: list[Order] = []
        for _ in range(MAX_LISTING_READS):
            if start:
                kwargs["ExclusiveStartKey"] = start
            response = self.client.query(**kwargs)
            items += [Order.from_item(deserialize(i)) for i in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if len(items) > limit:
                items = items[:limit]
                last = items[-1]
                key = {
                    "OrderId": last.order_id,
                    "ClientId": client_id,
                    "OrderDate": last.order_date,
                }
                return Page(items, key)
            if not start or len(items) == limit:
                break
        return Page(items, deserialize(start) if start else None)

    @staticmethod
    def _page(response: Mapping[str, Any]) -> Page:
        items = [Order.from_item(deserialize(i)) for i in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return Page(items, deserialize(last) if last else None)

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


def _date_range(values: dict[str, Any], after: str | None, before: str | None) -> str:
    """The OrderDate part of a key condition (adding its values), or "" for no bound;
    ValueError for a range that ends before it starts (DynamoDB would refuse the query)."""
    if after is not None and before is not None and after > before:
        raise ValueError("the date range ends before it starts")
    if after is not None:
        values[":after"] = {"S": after}
    if before is not None:
        values[":before"] = {"S": before}
    if after is not None and before is not None:
        return " AND OrderDate BETWEEN :after AND :before"
    if after is not None:
        return " AND OrderDate >= :after"
    if before is not None:
        return " AND OrderDate <= :before"
    return ""
