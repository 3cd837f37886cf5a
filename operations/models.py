"""What the portal keeps of staff operations in SQL (the audit log, DLQ replay jobs, background
jobs), and the unmanaged models of the data in DynamoDB and SQS (operations/data_models.py)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from operations.data_models import InventoryItem, Order, OrdersDeadLetter, StreamFailure

__all__ = [
    "AuditLogEntry",
    "BackgroundJob",
    "InventoryItem",
    "Order",
    "OrdersDeadLetter",
    "ReplayJob",
    "ReplayJobMessage",
    "StreamFailure",
]


class AuditLogEntry(models.Model):
    """One staff action (or a scheduled one) on orders, inventory or the DLQ, and its outcome.

    Append-only: a row is written before the change as an intent (PENDING) and completed once
    (SUCCEEDED, REFUSED or FAILED); after that nothing may change or delete it. A PostgreSQL
    trigger (migration 0005) enforces it, whatever code or SQL tries; the admin offers no way.
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
        DLQ_REPLAY_CANCEL = "dlq_replay_cancel", "Cancel a DLQ replay"
        DLQ_REPLAY_RESUME = "dlq_replay_resume", "Resume a DLQ replay"
        DLQ_DELETE = "dlq_discard", "Delete DLQ message"
        DLQ_PURGE = "dlq_purge", "Purge a dead-letter queue"
        ORDER_REFUND = "order_refund", "Refund order"
        ORDER_RETRY_SHIPPING = "order_retry_shipping", "Retry shipping"
        INVENTORY_IMPORT = "inventory_import", "Import inventory CSV"

    class Outcome(models.TextChoices):
        PENDING = "pending", "pending"  # written before the change; completed after it
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
    # What the action is about, for the object's history page: the model ("operations.order")
    # and its key.
    object_type = models.CharField(max_length=100, blank=True, db_index=True)
    object_id = models.CharField(max_length=200, blank=True, db_index=True)
    # The object's values before the change and those the change writes (null: not known, as
    # for entries written before these columns existed).
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-at", "-id")
        verbose_name = "audit log entry"
        verbose_name_plural = "audit log"
        default_permissions = ("view",)

    def __str__(self) -> str:
        target = self.order_id or self.item_name or ""
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {target} {self.outcome}"


class ReplayJob(models.Model):
    """A replay of a dead-letter queue run by a Celery worker; the page polls this row.

    The row is the job's heartbeat: the worker writes it after every batch (`updated_at`), and
    a RUNNING job whose row has not been written for OPS_REPLAY_STALE_SECONDS has lost its
    worker (`is_stale`) and may be resumed. Each run claims the job with a new `lease`; a
    worker whose lease was replaced (the job resumed elsewhere, or cancelled while stale)
    stops at its next batch. The counts are those of the job's messages
    (ReplayJobMessage), one outcome per message however many runs looked at it.
    """

    class Queue(models.TextChoices):
        ORDERS_DLQ = "orders-dlq", "Orders dead-letter queue"
        STREAM_FAILURES = "stream-failures", "Stream-failure queue"
        # One API key's (or one endpoint's) dead-lettered webhook deliveries: started from the
        # key's webhooks page, scoped by the job's filters client_id and subscription_id.
        WEBHOOK_DLQ = "webhook-dlq", "Webhook deliveries dead-letter queue"

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        CANCELLING = "cancelling", "cancelling"  # asked to stop: the worker stops between batches
        CANCELLED = "cancelled", "cancelled"
        SUCCEEDED = "succeeded", "finished"
        FAILED = "failed", "failed"

    # States of a job that may still change the queue: one such job per queue at a time.
    UNFINISHED = (State.QUEUED, State.RUNNING, State.CANCELLING)
    FINISHED = (State.CANCELLED, State.SUCCEEDED, State.FAILED)

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
    queue = models.CharField(max_length=20, choices=Queue.choices, default=Queue.ORDERS_DLQ)
    # Empty: every message in the queue (that the filters let through); else only these ids.
    message_ids = models.JSONField(default=list, blank=True)
    # {order_id, min_age_seconds, max_age_seconds, min_receives, max_receives}: each optional.
    filters = models.JSONField(default=dict, blank=True)
    limit = models.PositiveIntegerField(null=True, blank=True)
    rate = models.FloatField(default=100.0, help_text="Messages sent per second, at most.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    total = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages waiting in the queue when the job started."
    )
    sent = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    left = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    passed = models.PositiveIntegerField(default=0)
    # How the last run ended: visible messages receives did not return, messages hidden by
    # someone else.
    unreceived = models.PositiveIntegerField(default=0)
    in_flight_elsewhere = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    lease = models.CharField(max_length=64, blank=True)
    runs = models.PositiveIntegerField(default=0)
    # Until when messages this job received may stay hidden (a resumed run waits that long).
    hidden_until = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "DLQ replay job"
        # Started from the dead-letter queues' pages (replay_deadletters), never edited.
        default_permissions = ("view",)
        constraints = [
            # Two replays of one queue would hide messages from each other and both miscount.
            models.UniqueConstraint(
                fields=["queue"],
                condition=models.Q(state__in=["queued", "running", "cancelling"]),
                name="one_unfinished_replay_per_queue",
            )
        ]

    def __str__(self) -> str:
        return f"replay {self.id} of {self.queue} ({self.state})"

    @property
    def done(self) -> bool:
        """The job will not change any more (unless resumed, if it failed)."""
        return self.state in self.FINISHED

    @property
    def is_stale(self) -> bool:
        """A running job whose worker stopped writing its row: it died, or hangs."""
        if self.state not in (self.State.RUNNING, self.State.CANCELLING):
            return False
        quiet = timezone.now() - self.updated_at
        return quiet.total_seconds() > settings.OPS_REPLAY_STALE_SECONDS

    @property
    def resumable(self) -> bool:
        """A stale running job, or one that failed, can be run again from where it stopped (a
        stale cancelling one is cancelled instead)."""
        return self.state == self.State.FAILED or (
            self.state == self.State.RUNNING and self.is_stale
        )

    @property
    def moved(self) -> int:
        """Messages sent back (the admin's column, named before skips were counted apart)."""
        return self.sent

    @property
    def looked_at(self) -> int:
        """Messages handled so far, whatever became of them."""
        return self.sent + self.skipped + self.left + self.failed + self.passed

    @property
    def selected_count(self) -> int:
        """How many messages the operator picked (0: all of them)."""
        return len(self.message_ids or [])

    @property
    def is_stream_failures(self) -> bool:
        """A re-drive of failed stream batches, not a resend of fulfilment requests."""
        return self.queue == self.Queue.STREAM_FAILURES

    @property
    def is_webhooks(self) -> bool:
        """A replay of dead-lettered webhook deliveries (one key's, or one endpoint's)."""
        return self.queue == self.Queue.WEBHOOK_DLQ

    def as_progress(self) -> dict[str, object]:
        """The JSON the job page polls."""
        return {
            "id": str(self.id),
            "queue": self.queue,
            "state": self.state,
            "done": self.done,
            "stale": self.is_stale,
            "total": self.total,
            "sent": self.sent,
            "moved": self.sent,  # what the page polled before skips were counted apart
            "skipped": self.skipped,
            "left": self.left,
            "failed": self.failed,
            "passed": self.passed,
            "rate": self.rate,
            "runs": self.runs,
            "error": self.error,
        }


class ReplayJobMessage(models.Model):
    """One message a replay job looked at and what became of it (its latest outcome).

    The job's ledger: a resumed run reads it to finish the delete of a message sent or skipped
    before the worker died instead of sending it again, and the counts on the job are these
    rows counted once each. Skipped and left messages keep their body: a skipped one is gone
    from the queue, and this is where it can still be read.
    """

    class Outcome(models.TextChoices):
        SENT = "sent", "sent"
        SKIPPED = "skipped", "skipped"
        LEFT = "left", "left"
        FAILED = "failed", "failed"
        PASSED = "passed", "not in scope"

    job = models.ForeignKey(ReplayJob, on_delete=models.CASCADE, related_name="messages")
    message_id = models.CharField(max_length=100)
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    order_id = models.CharField(max_length=100, blank=True)
    body = models.TextField(blank=True)
    detail = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ("at", "id")
        verbose_name = "DLQ replay message"
        constraints = [
            models.UniqueConstraint(fields=["job", "message_id"], name="one_outcome_per_message")
        ]

    def __str__(self) -> str:
        return f"{self.message_id}: {self.outcome}"


class BackgroundJob(models.Model):
    """A piece of staff-requested work run by a Celery worker, not inside the request: a sweeper
    run, a re-queue of stranded orders, an inventory import. The page polls this row.

    The worker writes the row as it goes (`progress`, `updated_at`): a RUNNING job whose row
    has not been written for OPS_JOB_STALE_SECONDS lost its worker (`is_stale`) and may be run
    again, which is safe because every kind of job is (its writes are conditional).
    """

    class Kind(models.TextChoices):
        SWEEP_PENDING = "sweep_pending", "Sweep stranded PENDING orders"
        SWEEP_RESERVED = "sweep_reserved", "Sweep stranded RESERVED orders"
        SWEEP_PAID = "sweep_paid", "Sweep stranded PAID orders"
        REQUEUE_STRANDED = "requeue_stranded", "Re-queue stranded RESERVED orders"
        INVENTORY_IMPORT = "inventory_import", "Import inventory from CSV"

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "finished"
        FAILED = "failed", "failed"

    UNFINISHED = (State.QUEUED, State.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20, choices=Kind.choices, db_index=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
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
    # What the job works on (an uploaded file's rows, a cap): each kind reads its own keys.
    params = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    progress = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(null=True, blank=True)
    result = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True)
    celery_task_id = models.CharField(max_length=64, blank=True)
    runs = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created_at",)
        verbose_name = "background job"
        constraints = [
            # One run of a kind at a time: two imports of one file, or two sweeps of one status,
            # would only race each other (safely, but to no purpose).
            models.UniqueConstraint(
                fields=["kind"],
                condition=models.Q(state__in=["queued", "running"]),
                name="one_unfinished_job_per_kind",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.state})"

    @property
    def done(self) -> bool:
        """The job will not change any more."""
        return self.state not in self.UNFINISHED

    @property
    def is_stale(self) -> bool:
        """A queued or running job whose worker stopped writing its row: it died, or hangs."""
        if self.done:
            return False
        age = (timezone.now() - self.updated_at).total_seconds()
        return age > settings.OPS_JOB_STALE_SECONDS

    @property
    def percent(self) -> int | None:
        """How far the job is, when its total is known."""
        if not self.total:
            return 100 if self.done else None
        return min(100, round(100 * self.progress / self.total))


class StaffPreferences(models.Model):
    """A staff member's own settings for the portal: the time zone its dates are shown in
    (empty: the portal's TIME_ZONE). Each member sets their own on /ops/preferences/."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="portal_preferences",
    )
    time_zone = models.CharField(
        max_length=64, blank=True, help_text="An IANA time zone name, such as Europe/Paris."
    )

    class Meta:
        verbose_name_plural = "staff preferences"
        # Nobody edits another member's preferences: no admin page, no permissions.
        default_permissions = ()

    def __str__(self) -> str:
        return f"preferences of {self.user_id}"
