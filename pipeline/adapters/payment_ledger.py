"""The mock gateway's own record of charges: what a real gateway keeps on its side.

A real payment gateway remembers each idempotency key and answers a repeated request with the
first answer; the mock needs the same memory to be idempotent across Lambda invocations, so it
keeps one row per transaction (the transaction id is derived from the idempotency key). Tests
read it to prove that no order was charged twice and that every charge of a failed order was
refunded.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from pipeline import aws
from pipeline.adapters.dynamodb.codec import deserialize, put_unless_present


class Ledger(Protocol):
    """Where the mock gateway keeps its answers, one entry per transaction id."""

    def get(self, transaction_id: str) -> dict[str, Any] | None:
        """The entry, or None."""
        ...

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Store `entry` unless one with its TransactionId exists; return the stored one."""
        ...

    def mark_refunded(self, transaction_id: str, refund_id: str, at: str) -> dict[str, Any]:
        """Note the refund (once: a second call keeps the first); return the entry."""
        ...


class InMemoryLedger:
    """A ledger in this process (unit tests, and a local gateway without a table)."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def get(self, transaction_id: str) -> dict[str, Any] | None:
        """The entry, or None."""
        with self._lock:
            found = self.entries.get(transaction_id)
            return dict(found) if found else None

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Store `entry` unless one with its TransactionId exists; return the stored one."""
        with self._lock:
            stored = self.entries.setdefault(entry["TransactionId"], dict(entry))
            return dict(stored)

    def mark_refunded(self, transaction_id: str, refund_id: str, at: str) -> dict[str, Any]:
        """Note the refund once; return the entry."""
        with self._lock:
            entry = self.entries[transaction_id]
            entry.setdefault("RefundId", refund_id)
            entry.setdefault("RefundedAt", at)
            return dict(entry)


class DynamoLedger:
    """A ledger in a DynamoDB table keyed by TransactionId (PaymentLedgerTable)."""

    def __init__(self, table: str, client: Any | None = None):
        self.table = table
        self._client = client

    @property
    def client(self) -> Any:
        """The DynamoDB client given, or the shared one."""
        return self._client or aws.client("dynamodb")

    def get(self, transaction_id: str) -> dict[str, Any] | None:
        """The entry (strongly consistent), or None."""
        response = self.client.get_item(
            TableName=self.table,
            Key={"TransactionId": {"S": transaction_id}},
            ConsistentRead=True,
        )
        item = response.get("Item")
        return deserialize(item) if item else None

    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Store `entry` unless one with its TransactionId exists; return the stored one."""
        stored = put_unless_present(self.client, self.table, entry, "TransactionId")
        return dict(entry) if stored is None else deserialize(stored)

    def mark_refunded(self, transaction_id: str, refund_id: str, at: str) -> dict[str, Any]:
        """Note the refund once (if_not_exists keeps the first); return the entry."""
        response = self.client.update_item(
            TableName=self.table,
            Key={"TransactionId": {"S": transaction_id}},
            UpdateExpression="SET RefundId = if_not_exists(RefundId, :r), "
            "RefundedAt = if_not_exists(RefundedAt, :at)",
            ConditionExpression="attribute_exists(TransactionId)",
            ExpressionAttributeValues={":r": {"S": refund_id}, ":at": {"S": at}},
            ReturnValues="ALL_NEW",
        )
        return deserialize(response["Attributes"])
