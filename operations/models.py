"""What the portal keeps of staff operations in SQL: the audit log and the DLQ replay jobs."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditLogEntry(models.Model):
    """One staff action (or a scheduled one) on orders, inventory or the DLQ, and its outcome.

    Rows are only ever added: the admin shows them read-only.
    """

    class Action(models.TextChoices):
        ORDER_RESUBMIT = "order_resubmit", "Resubmit order"
        ORDER_CANCEL = "order_cancel", "Cancel order"
        ORDER_RESOLVE_SHIPPED = "order_resolve_shipped", "Mark order shipped by hand"
        REQUEUE_STRANDED = "fulfilment_requeue_stranded", "Re-queue stranded orders"
        INVENTORY_CREATE = "inventory_create", "Create inventory item"
        INVENTORY_ADJUST = "inventory_adjust_stock", "Adjust stock"
        INVENTORY_UPDATE = "inventory_update_details", "Edit price / description"
        INVENTORY_DELETE = "inventory_remove", "Delete inventory item"
        DLQ_REPLAY = "dlq_replay", "Replay DLQ messages"
        DLQ_DELETE = "dlq_discard", "Delete DLQ message"

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "succeeded"
        REFUSED = "refused", "refused"  # the rules said no (e.g. InvalidTransition): no change
        FAILED = "failed", "failed"  # something broke (AWS unreachable, ...)

    at = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text too: the entry must still say who after the user is deleted.
    actor = models.CharField(max_length=150)
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    order_id = models.CharField(max_length=100, blank=True, db_index=True)
    item_name = models.CharField(max_length=100, blank=True, db_index=True)
    reason = models.TextField(blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, db_index=True)
    message = models.TextField(blank=True, help_text="What the portal told the staff member.")
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ("-at", "-id")
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        target = self.order_id or self.item_name or ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {target} {self.outcome}"


class ReplayJob(models.Model):
    """A DLQ replay run by a Celery worker; the page polls this row for its progress."""

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "finished"
        FAILED = "failed", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    actor = models.CharField(max_length=150)
    reason = models.TextField(blank=True)
    # Empty: every message in the DLQ; otherwise only these message ids.
    message_ids = models.JSONField(default=list, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages waiting in the DLQ when the job started."
    )
    moved = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "DLQ replay job"

    def __str__(self) -> str:
        return f"replay {self.id} ({self.state})"

    @property
    def done(self) -> bool:
        """The job will not change any more."""
        return self.state in (self.State.SUCCEEDED, self.State.FAILED)

    @property
    def looked_at(self) -> int:
        """Messages handled so far, whatever became of them."""
        return self.moved + self.failed + self.skipped

    @property
    def selected_count(self) -> int:
        """How many messages the operator picked (0: all of them)."""
        return len(self.message_ids or [])

    def as_progress(self) -> dict[str, object]:
        """The JSON the job page polls."""
        return {
            "id": str(self.id),
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "moved": self.moved,
            "failed": self.failed,
            "skipped": self.skipped,
            "error": self.error,
        }
