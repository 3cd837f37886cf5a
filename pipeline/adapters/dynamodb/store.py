"""Both tables together: the transactions that move stock and an order's status at once."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from pipeline.adapters.dynamodb.codec import error_code, serialize, sleep_backoff
from pipeline.adapters.dynamodb.inventory import InventoryTable
from pipeline.adapters.dynamodb.orders import OrdersTable
from pipeline.domain import Order, OrderLine
from pipeline.errors import (
    InsufficientStock,
    InvalidTransition,
    OrderNotFound,
    ReservationContention,
    Shortage,
    find_shortages,
)
from pipeline.statuses import OrderStatus

# DynamoDB cancels a transaction that touches an item another transaction is writing; under a
# hot item this happens often and is always safe to retry.
TRANSACTION_ATTEMPTS = 12


class _RowsMoved(Exception):
    """An inventory row was created or deleted between the read and the transaction."""


class DynamoStore(OrdersTable, InventoryTable):
    """The Orders and Inventory tables, and the reservation transactions that span them."""

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
        *,
        set_fields: Mapping[str, Any] | None = None,
        expected: Sequence[OrderStatus] = (OrderStatus.RESERVED,),
        actor: str | None = None,
        attempt: int | None = None,
    ) -> Order:
        """Give back the reserved stock of every line and move the order from one of
        `expected` (RESERVED; staff also release a MANUAL_INTERVENTION order) to `target`, in
        one transaction (also writing `set_fields` on the order; `actor` names the staff member
        in its history). The status guard makes a second release impossible.

        Stock goes back only to rows that exist: a row staff deleted is never re-created (it
        would have no price, and orders could buy it). The units of such lines are written on
        the order as `StockNotReturned`, so every unit stays accounted for. The transaction
        checks the rows are still present (or still absent) as read; if one appeared or went
        meanwhile, it is read again and retried.
        """
        for try_number in range(TRANSACTION_ATTEMPTS):
            present = self.inventory_get_many(line.item_name for line in lines)
            actions: list[dict[str, Any]] = []
            lost: list[dict[str, Any]] = []
            for line in lines:
                key = {"ItemName": {"S": line.item_name}}
                if line.item_name in present:
                    actions.append(
                        {
                            "Update": {
                                "TableName": self.inventory_table,
                                "Key": key,
                                "UpdateExpression": "SET Stock = if_not_exists(Stock, :zero) + :q",
                                "ConditionExpression": "attribute_exists(ItemName)",
                                "ExpressionAttributeValues": {
                                    ":q": {"N": str(line.quantity)},
                                    ":zero": {"N": "0"},
                                },
                            }
                        }
                    )
                else:
                    lost.append({"ItemName": line.item_name, "Quantity": line.quantity})
                    actions.append(
                        {
                            "ConditionCheck": {
                                "TableName": self.inventory_table,
                                "Key": key,
                                "ConditionExpression": "attribute_not_exists(ItemName)",
                            }
                        }
                    )
            move = self._transition_update(
                order_id,
                target,
                reason,
                now,
                expected=expected,
                set_fields=set_fields,
                actor=actor,
                attempt=attempt,
            )
            if lost:
                # Appended, not set: an order released again after a resubmit keeps the first
                # release's record too.
                assert move["UpdateExpression"].startswith("SET ")
                move["UpdateExpression"] = (
                    "SET #snr = list_append(if_not_exists(#snr, :snr0), :snr), "
                    + move["UpdateExpression"][4:]
                )
                move["ExpressionAttributeNames"]["#snr"] = "StockNotReturned"
                move["ExpressionAttributeValues"].update(serialize({":snr": lost, ":snr0": []}))
            actions.append({"Update": move})
            try:
                return self._transact_order(actions, order_id, target, None, rows_as_read=True)
            except _RowsMoved:
                sleep_backoff(try_number)
        raise ReservationContention(
            f"order {order_id}: giving its stock back kept colliding with item changes; retry later"
        )

    def _transact_order(
        self,
        actions: list[dict[str, Any]],
        order_id: str,
        target: OrderStatus,
        reserving: Sequence[OrderLine] | None,
        written: Order | None = None,
        *,
        rows_as_read: bool = False,
    ) -> Order:
        """Run a transaction whose last action moves the order; retry collisions with backoff.

        A failed order guard becomes InvalidTransition (with the real status); when `reserving`,
        a failed stock guard becomes InsufficientStock naming every short line; with
        `rows_as_read`, a failed inventory guard raises _RowsMoved (the caller reads again).
        """
        order_index = len(actions) - 1
        for attempt in range(TRANSACTION_ATTEMPTS):
            try:
                # One token per try: the SDK's own retries of this call reuse it, so a retry
                # after a success that lost its answer succeeds again instead of finding the
                # order moved on; a new try after a cancellation is a new request.
                self.client.transact_write_items(
                    TransactItems=actions, ClientRequestToken=str(uuid.uuid4())
                )
            except ClientError as exc:
                code = error_code(exc)
                if code in ("TransactionInProgressException", "ThrottlingException"):
                    sleep_backoff(attempt)
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
                if rows_as_read and "ConditionalCheckFailed" in codes:
                    raise _RowsMoved from exc
                sleep_backoff(attempt)
                continue
            return written if written is not None else self.order_get(order_id)
        raise ReservationContention(
            f"order {order_id}: the move to {target} kept colliding with other writes; retry later"
        )
