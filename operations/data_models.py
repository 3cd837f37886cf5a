"""Unmanaged models for data that lives in DynamoDB and SQS, so the admin can list it natively.

No SQL table stands behind these models (managed = False): they give the admin a registry
entry, a content type and permissions, and their instances are built from what a source read
(operations/admin/data.py). They are never saved.
"""

from __future__ import annotations

from typing import Any

from django.db import models

from pipeline.domain import InventoryItem as DomainItem
from pipeline.domain import Order as DomainOrder


class InventoryItem(models.Model):
    """A row of the Inventory table."""

    item_name = models.CharField(max_length=100, primary_key=True)
    stock = models.IntegerField()
    price = models.DecimalField(max_digits=12, decimal_places=2)
    description = models.TextField(blank=True)

    class Meta:
        managed = False
        db_table = "dynamodb_inventory"
        verbose_name = "inventory item"
        ordering = ("item_name",)
        permissions = [("import_inventory", "Can import inventory from CSV")]

    def __str__(self) -> str:
        return self.item_name

    @classmethod
    def from_domain(cls, item: DomainItem) -> InventoryItem:
        """The admin's row for an item the store read."""
        return cls(
            item_name=item.item_name,
            stock=item.stock,
            price=item.price,
            description=item.description,
        )


class Order(models.Model):
    """A row of the Orders table (its main fields; the rest is on `domain`)."""

    order_id = models.CharField(max_length=100, primary_key=True)
    customer_name = models.CharField(max_length=200)
    status = models.CharField(max_length=20)
    order_date = models.CharField(max_length=40)
    last_updated = models.CharField(max_length=40)
    status_reason = models.TextField(blank=True)
    attempt = models.IntegerField(default=0)

    class Meta:
        managed = False
        db_table = "dynamodb_orders"
        default_permissions = ("view",)
        permissions = [
            ("cancel_order", "Can cancel an order"),
            ("resubmit_order", "Can resubmit an order"),
            ("retry_shipping_order", "Can retry an order's shipping"),
            ("refund_order", "Can refund an order"),
            ("mark_shipped_order", "Can mark an order shipped by hand"),
            ("requeue_stranded_orders", "Can re-queue stranded orders"),
            ("run_sweeper", "Can run a stranded-order sweeper"),
        ]

    def __str__(self) -> str:
        return self.order_id

    @classmethod
    def from_domain(cls, order: DomainOrder) -> Order:
        """The admin's row for an order the store read (the full order kept on `domain`)."""
        row = cls(
            order_id=order.order_id,
            customer_name=order.customer_name,
            status=str(order.status),
            order_date=order.order_date,
            last_updated=order.last_updated,
            status_reason=order.status_reason,
            attempt=order.attempt,
        )
        row.domain = order
        return row


DEAD_LETTER_PERMISSIONS = [
    ("replay_deadletters", "Can replay dead letters"),
    ("delete_deadletter", "Can delete a dead letter"),
    ("purge_deadletterqueue", "Can purge a dead-letter queue"),
]


class DeadLetterMessage(models.Model):
    """A message of a dead-letter queue, as one look received it."""

    message_id = models.CharField(max_length=100, primary_key=True)
    body = models.TextField()
    receive_count = models.IntegerField(default=0)
    sent_at = models.DateTimeField(null=True)
    first_received_at = models.DateTimeField(null=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.message_id

    @classmethod
    def from_dead_letter(cls, letter: Any) -> DeadLetterMessage:
        """The admin's row for a pipeline.dlq.DeadLetter (kept on `letter`)."""
        row = cls(
            message_id=letter.message_id,
            body=letter.body,
            receive_count=letter.receive_count,
            sent_at=letter.sent_at,
            first_received_at=letter.first_received_at,
        )
        row.letter = letter
        return row


class OrdersDeadLetter(DeadLetterMessage):
    """A fulfilment request the Orders queue gave up on (SQS: the Orders DLQ)."""

    class Meta:
        managed = False
        db_table = "sqs_orders_dlq"
        verbose_name = "Orders DLQ message"
        default_permissions = ("view",)
        permissions = DEAD_LETTER_PERMISSIONS


class StreamFailure(DeadLetterMessage):
    """A stream batch the Orders stream mapping gave up on (SQS: the stream-failure queue)."""

    class Meta:
        managed = False
        db_table = "sqs_stream_failures"
        verbose_name = "stream-failure message"
        default_permissions = ("view",)
        permissions = DEAD_LETTER_PERMISSIONS
