"""What the staff pages and commands read: orders, inventory, queues, metrics, audit, jobs.

Selectors only read. Each builds the pipeline's adapters from the environment when called (a
page always reads the stack as it is configured now) and raises when a read fails: a page
wraps it in `parts.attempt` to show the error beside whatever else it could read.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import QuerySet

from operations.models import AuditLogEntry, ReplayJob, ReplayJobMessage
from orders_api.models import ClientAPIKey
from pipeline import aws, wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.config import MissingSetting
from pipeline.dlq import DeadLetter, dlq_peek
from pipeline.domain import InventoryItem, Order, execution_name
from pipeline.observability import alarm_states, metrics_summary
from pipeline.ports import Page
from pipeline.statuses import OrderStatus

# -- Orders ---------------------------------------------------------------------------------------


def order_by_id(order_id: str) -> Order | None:
    """The order, or None."""
    return wiring.dynamo_store().order_find(order_id)


def orders_in_status(status: OrderStatus, *, limit: int, cursor: dict[str, Any] | None) -> Page:
    """A page of the orders in one status, newest first (the StatusIndex)."""
    return wiring.dynamo_store().orders_by_status(status, limit=limit, cursor=cursor)


def orders_search(
    *,
    customer_prefix: str = "",
    status: OrderStatus | None = None,
    placed_after: str | None = None,
    placed_before: str | None = None,
    oldest_first: bool = False,
    limit: int,
    cursor: dict[str, Any] | None,
) -> Page:
    """A page of orders, newest (or oldest) first, never a scan: by customer name prefix
    (CustomerPrefixIndex, the status a filter) or else by status (StatusIndex), each within
    the date range given. ValueError for a prefix too short or a range that ends first."""
    store = wiring.dynamo_store()
    if customer_prefix:
        return store.orders_by_customer_prefix(
            customer_prefix,
            status=status,
            placed_after=placed_after,
            placed_before=placed_before,
            oldest_first=oldest_first,
            limit=limit,
            cursor=cursor,
        )
    if status is None:
        raise ValueError("choose a status or search a customer name: no index lists every order")
    return store.orders_by_status(
        status,
        placed_after=placed_after,
        placed_before=placed_before,
        oldest_first=oldest_first,
        limit=limit,
        cursor=cursor,
    )


def api_key_for_client(client_id: str) -> str | None:
    """The name of the API key whose orders carry `client_id` (its prefix), or None."""
    key = ClientAPIKey.objects.filter(prefix=client_id).only("name", "revoked").first()
    if key is None:
        return None
    return f"{key.name} (revoked)" if key.revoked else key.name


def order_counts_by_status(*, cap: int) -> list[dict[str, Any]]:
    """Orders per status through the StatusIndex, each count stopping near `cap`."""
    store = wiring.dynamo_store()
    rows = []
    for status in OrderStatus:
        count, capped = store.orders_count_by_status(status, cap=cap)
        rows.append({"status": str(status), "count": count, "capped": capped})
    return rows


@dataclass(frozen=True)
class WorkflowRun:
    """One run of an order attempt's fulfilment workflow: its execution, if it ever started."""

    attempt: int
    name: str
    described: dict[str, Any] | None  # None: never started
    run: int = 1


# Runs of an earlier attempt are not recorded on the order (WorkflowRun is the current
# attempt's): they are looked for one by one, up to this many.
MAX_PROBED_RUNS = 5


def order_workflow_runs(order: Order) -> list[WorkflowRun]:
    """Each attempt's executions (every workflow run of it: a sweeper's restart or a staff
    retry of shipping is a run of its own), as Step Functions describes them."""
    workflow = wiring.fulfilment_workflow()
    runs = []
    for number in range(1, max(order.attempt, 1) + 1):
        current = number == order.attempt
        last = order.workflow_run if current else MAX_PROBED_RUNS
        for run in range(1, last + 1):
            name = execution_name(order.order_id, number, run)
            described = workflow.describe(name)
            if described is None and run > 1 and not current:
                break
            runs.append(WorkflowRun(number, name, described, run))
    return runs


def execution_events(execution_arn: str, *, limit: int = 200) -> list[dict[str, Any]]:
    """An execution's history events, oldest first (at most `limit`)."""
    answer = aws.client("stepfunctions").get_execution_history(
        executionArn=execution_arn, maxResults=min(limit, 1000)
    )
    return list(answer.get("events", []))[:limit]


# -- Inventory ------------------------------------------------------------------------------------


def inventory_item(name: str) -> InventoryItem | None:
    """One item, or None."""
    return wiring.dynamo_store().inventory_get(name)


# -- Tables and queues ----------------------------------------------------------------------------


def orders_table_count(*, exact: bool) -> dict[str, Any]:
    """{table, items, exact} of the Orders table: DescribeTable's estimate, or a COUNT scan."""
    store = wiring.dynamo_store()
    return store.table_item_count(store.orders_table, exact=exact)


def inventory_table_count(*, exact: bool) -> dict[str, Any]:
    """{table, items, exact} of the Inventory table, as orders_table_count."""
    store = wiring.dynamo_store()
    return store.table_item_count(store.inventory_table, exact=exact)


def orders_queue_depth() -> dict[str, int]:
    """The Orders queue's visible, in-flight and delayed message counts."""
    return wiring.orders_queue().depth()


def dlq_depth() -> dict[str, int]:
    """The dead-letter queue's visible, in-flight and delayed message counts."""
    return wiring.dead_letter_queue().depth()


def stream_failure_queue_depth() -> dict[str, int]:
    """The stream-failure queue's visible, in-flight and delayed message counts."""
    return wiring.stream_failure_queue().depth()


def webhook_dlq_depth() -> dict[str, int]:
    """The webhook deliveries' dead-letter queue's visible, in-flight and delayed counts."""
    return wiring.webhook_dead_letter_queue().depth()


# -- Dead-letter queues (the Orders DLQ and the stream-failure queue) -----------------------------


class ListingRefused(RuntimeError):
    """Messages are not listed now: the message says why."""


def queue_for(queue: str) -> SqsQueue:
    """The SQS queue a ReplayJob.Queue value names."""
    if queue == ReplayJob.Queue.STREAM_FAILURES:
        return wiring.stream_failure_queue()
    if queue == ReplayJob.Queue.ORDERS_DLQ:
        return wiring.dead_letter_queue()
    if queue == ReplayJob.Queue.WEBHOOK_DLQ:
        return wiring.webhook_dead_letter_queue()
    raise ValueError(f"no such dead-letter queue: {queue}")


def queue_depth(queue: str) -> dict[str, int]:
    """A dead-letter queue's visible, in-flight and delayed message counts (receives nothing)."""
    return queue_for(queue).depth()


def queue_oldest_age(queue: str, *, minutes: int = 15) -> int | None:
    """The age in seconds of the queue's oldest message, from SQS's ApproximateAgeOfOldestMessage
    metric (its latest value in the last `minutes`), or None when CloudWatch has none."""
    now = datetime.now(UTC)
    answer = aws.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/SQS",
        MetricName="ApproximateAgeOfOldestMessage",
        Dimensions=[{"Name": "QueueName", "Value": queue_for(queue).name}],
        StartTime=now - timedelta(minutes=minutes),
        EndTime=now,
        Period=60,
        Statistics=["Maximum"],
    )
    points = sorted(answer.get("Datapoints", []), key=lambda point: point["Timestamp"])
    return int(points[-1]["Maximum"]) if points else None


def unfinished_replay_job(queue: str) -> ReplayJob | None:
    """The queue's queued, running or cancelling replay job, if there is one."""
    return ReplayJob.objects.filter(queue=queue, state__in=ReplayJob.UNFINISHED).first()


def dead_letters(
    *, max_messages: int, visibility: int = 30, queue: str = ReplayJob.Queue.ORDERS_DLQ
) -> list[DeadLetter]:
    """Up to `max_messages` messages of a dead-letter queue, left in it, each fulfilment
    request with its order's status. Each is received once (its receive count goes up by one)
    and released at once.

    ListingRefused while a replay of the queue is unfinished: the messages a listing holds for
    a moment would be hidden from it, and it could take the queue for done without them.
    """
    job = unfinished_replay_job(queue)
    if job is not None:
        raise ListingRefused(
            f"A replay of this queue is {job.get_state_display()}: messages are not listed "
            "while it runs, so that none is hidden from it. Wait for it, or cancel it."
        )
    store = None
    # Without the Orders table the messages still show, only their orders' status does not.
    with contextlib.suppress(MissingSetting):
        store = wiring.dynamo_store()
    return dlq_peek(
        dlq=queue_for(queue),
        store=store if queue == ReplayJob.Queue.ORDERS_DLQ else None,
        max_messages=max_messages,
        visibility=visibility,
    )


# -- CloudWatch -----------------------------------------------------------------------------------


def alarms() -> list[dict[str, str]]:
    """Every alarm's name, state and reason."""
    return alarm_states(aws.client("cloudwatch"))


def pipeline_metrics(*, minutes: int) -> dict[str, Any]:
    """The pipeline's counters and success ratios over the last `minutes`."""
    return metrics_summary(aws.client("cloudwatch"), minutes=minutes)


# -- The portal's own records ---------------------------------------------------------------------


def order_audit(order_id: str, *, limit: int = 50) -> QuerySet[AuditLogEntry]:
    """The latest audit entries about one order."""
    return AuditLogEntry.objects.filter(order_id=order_id)[:limit]


def recent_replay_jobs(*, limit: int = 10, queue: str | None = None) -> QuerySet[ReplayJob]:
    """The latest replay jobs (of one queue, if given)."""
    jobs = ReplayJob.objects.all()
    if queue is not None:
        jobs = jobs.filter(queue=queue)
    return jobs[:limit]


def replay_job(job_id: Any) -> ReplayJob | None:
    """One replay job, or None."""
    return ReplayJob.objects.filter(pk=job_id).first()


def replay_job_messages(
    job: ReplayJob, *, outcomes: tuple[str, ...] = (), limit: int = 200
) -> QuerySet[ReplayJobMessage]:
    """What a job did with its messages (those with one of `outcomes`, if given), in order."""
    rows = job.messages.all()
    if outcomes:
        rows = rows.filter(outcome__in=outcomes)
    return rows[:limit]
