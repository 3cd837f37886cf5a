"""Sweepers: orders stranded in PENDING, RESERVED or PAID are moved on, safe to run twice."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pipeline.domain import Order, execution_name, utc_now
from pipeline.errors import InvalidTransition
from pipeline.fulfilment import fulfilment_request, order_flag_for_review, payment_compensate
from pipeline.ports import (
    MessageQueue,
    OrderStore,
    PaymentGateway,
    ReservationStore,
    Workflow,
)
from pipeline.reservation import inventory_reserve
from pipeline.statuses import OrderStatus

# An execution in one of these may still move the order on; any other (SUCCEEDED, FAILED,
# TIMED_OUT, ABORTED) is over, and an order still RESERVED or PAID after it is stranded.
LIVE_EXECUTION_STATUSES = frozenset({"RUNNING", "PENDING_REDRIVE"})
# StatusIndex orders read per Query; a run reads at most `max_orders` in all.
PAGE_SIZE = 100

DEFAULT_PENDING_MIN_AGE = 120.0
DEFAULT_RUN_MIN_AGE = 300.0
DEFAULT_MAX_RUNS = 3
DEFAULT_MAX_RESENDS = 3
DEFAULT_MAX_ORDERS = 100


class SweepAction(StrEnum):
    """What a sweeper did to a stranded order."""

    # PENDING: reserved (and sent to the queue) or rejected, as the stream's handler would.
    REDRIVEN = "redriven"
    # RESERVED / PAID: the current run never started; its message was sent again.
    REQUEUED = "requeued"
    # RESERVED: its run died; the next run was asked for.
    RESTARTED = "restarted"
    # RESERVED: out of runs or re-sends; stock back, any charge refunded (PAYMENT_FAILED).
    RELEASED = "released"
    # PAID: its run died after the payment; the next run was asked for, to ship.
    RESUMED = "resumed"
    # PAID: out of runs or re-sends; MANUAL_INTERVENTION, for staff.
    FLAGGED = "flagged"


@dataclass(frozen=True)
class SweptOrder:
    """One order a sweeper moved on: what it did, and the status the order has now."""

    order_id: str
    action: SweepAction
    message: str
    status: OrderStatus
    run: int | None = None  # the workflow run asked for (requeued, restarted, resumed)


@dataclass
class SweepReport:
    """What one sweeper run found and did (the task's metrics and audit come from it)."""

    status: OrderStatus
    examined: int = 0  # orders read from the StatusIndex
    found: list[str] = field(default_factory=list)  # stranded: old enough, no live workflow
    done: list[SweptOrder] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # left for the next run
    more: bool = False  # stopped at `max_orders`: older orders may still wait

    def ids(self, action: SweepAction) -> list[str]:
        """The orders this run did `action` to."""
        return [swept.order_id for swept in self.done if swept.action == action]

    def as_json(self) -> dict[str, Any]:
        """The report as a task result (JSON)."""
        return {
            "status": str(self.status),
            "examined": self.examined,
            "found": list(self.found),
            "done": {action.value: self.ids(action) for action in SweepAction if self.ids(action)},
            "failed": dict(self.failed),
            "more": self.more,
        }


def sweep_stranded_pending(
    *,
    store: ReservationStore,
    queue: MessageQueue,
    min_age_seconds: float = DEFAULT_PENDING_MIN_AGE,
    max_orders: int = DEFAULT_MAX_ORDERS,
    now: str | None = None,
) -> SweepReport:
    """Reserve (or reject) PENDING orders whose stream record never arrived, as OrderProcessing
    would: the mapping gave up on the batch, the stream's 24 hours passed, or nothing ran.

    An order counts as stranded once it has been PENDING for `min_age_seconds`. Reserving is
    conditional on the order still being PENDING, so a second run, another sweeper at the same
    time or the late stream record finds it handled and does nothing; only the call that
    reserved it sends it to the Orders queue (a lost send leaves it RESERVED without a
    workflow, which sweep_stranded_reserved re-sends).
    """
    now = now or utc_now()
    cutoff = _before(now, min_age_seconds)
    report = SweepReport(OrderStatus.PENDING)
    _check_cap(max_orders)
    for order in _old_orders(store, OrderStatus.PENDING, cutoff, max_orders, report):
        report.found.append(order.order_id)
        try:
            # The index's image saves a read; a stale one is caught by the reservation's
            # condition and read again.
            outcome = inventory_reserve(store=store, order_id=order.order_id, now=now, order=order)
            if outcome.reserved_now:
                fulfilment_request(queue=queue, order=outcome.order)
                message = "Reserved by the sweeper (its stream record never arrived); sent on"
            elif outcome.rejected_now:
                message = f"Rejected by the sweeper: {outcome.order.status_reason}"
            else:
                continue  # the stream or another sweeper got there first
            report.done.append(
                SweptOrder(order.order_id, SweepAction.REDRIVEN, message, outcome.order.status)
            )
        except Exception as exc:  # one order's failure must not stop the sweep of the others
            report.failed[order.order_id] = _describe(exc)
    return report


def sweep_stranded_reserved(
    *,
    store: ReservationStore,
    workflow: Workflow,
    queue: MessageQueue,
    gateway: PaymentGateway,
    min_age_seconds: float = DEFAULT_RUN_MIN_AGE,
    max_runs: int = DEFAULT_MAX_RUNS,
    max_resends: int = DEFAULT_MAX_RESENDS,
    max_orders: int = DEFAULT_MAX_ORDERS,
    now: str | None = None,
) -> SweepReport:
    """Move on RESERVED orders that hold stock with no live workflow.

    An order is stranded once nothing happened to it for `min_age_seconds` and its current
    run's execution is missing (its queue message was lost) or over (failed, timed out,
    aborted, or succeeded without moving it). A missing run's message is sent again, up to
    `max_resends` times; a run that is over is followed by a new run (its own execution name,
    the same attempt and so the same payment key: a charge already made is found, never
    repeated), up to `max_runs` runs in all. After either cap the order is released:
    payment_compensate gives its stock back and refunds any charge (PAYMENT_FAILED).

    Each step is a conditional write (a compare-and-set of the order's WorkflowRun, or the
    release's guarded transaction), so a second run or a concurrent sweeper does nothing more.
    """
    now = now or utc_now()

    def give_up(order: Order, why: str) -> SweptOrder | None:
        reason = f"Released by the sweeper: {why}"
        outcome = payment_compensate(
            store=store, gateway=gateway, order_id=order.order_id, reason=reason, now=now
        )
        if not outcome.changed:
            return None  # paid or released meanwhile
        return SweptOrder(order.order_id, SweepAction.RELEASED, reason, outcome.order.status)

    return _sweep_runs(
        status=OrderStatus.RESERVED,
        new_run=SweepAction.RESTARTED,
        give_up=give_up,
        store=store,
        workflow=workflow,
        queue=queue,
        min_age_seconds=min_age_seconds,
        max_runs=max_runs,
        max_resends=max_resends,
        max_orders=max_orders,
        now=now,
    )


def sweep_stranded_paid(
    *,
    store: OrderStore,
    workflow: Workflow,
    queue: MessageQueue,
    min_age_seconds: float = DEFAULT_RUN_MIN_AGE,
    max_runs: int = DEFAULT_MAX_RUNS,
    max_resends: int = DEFAULT_MAX_RESENDS,
    max_orders: int = DEFAULT_MAX_ORDERS,
    now: str | None = None,
) -> SweepReport:
    """Resume shipping of PAID orders whose workflow died after the payment.

    The same rules as sweep_stranded_reserved: a new run (its payment step finds the order
    PAID and returns without charging, then it ships), or the current run's message again if it
    never started; after `max_runs` runs or `max_resends` re-sends the order goes to
    MANUAL_INTERVENTION, where staff see it (it is paid: only a person may refund or ship it).
    """
    now = now or utc_now()

    def give_up(order: Order, why: str) -> SweptOrder | None:
        reason = f"Shipping could not be resumed by the sweeper: {why}"
        # InvalidTransition (it moved on meanwhile) is the caller's to catch.
        flagged = order_flag_for_review(
            store=store, order_id=order.order_id, reason=reason, now=now
        )
        if not flagged.changed:
            return None  # shipped or flagged meanwhile
        return SweptOrder(order.order_id, SweepAction.FLAGGED, reason, flagged.order.status)

    return _sweep_runs(
        status=OrderStatus.PAID,
        new_run=SweepAction.RESUMED,
        give_up=give_up,
        store=store,
        workflow=workflow,
        queue=queue,
        min_age_seconds=min_age_seconds,
        max_runs=max_runs,
        max_resends=max_resends,
        max_orders=max_orders,
        now=now,
    )


GiveUp = Callable[[Order, str], SweptOrder | None]


def _sweep_runs(
    *,
    status: OrderStatus,
    new_run: SweepAction,
    give_up: GiveUp,
    store: OrderStore,
    workflow: Workflow,
    queue: MessageQueue,
    min_age_seconds: float,
    max_runs: int,
    max_resends: int,
    max_orders: int,
    now: str,
) -> SweepReport:
    """The RESERVED and PAID sweepers: they differ in the new run's name and in giving up."""
    cutoff = _before(now, min_age_seconds)
    report = SweepReport(status)
    _check_cap(max_orders)
    for seen in _old_orders(store, status, cutoff, max_orders, report):
        run = seen.workflow_run
        execution = workflow.describe(execution_name(seen.order_id, seen.attempt, run))
        state = execution.get("status") if execution else None
        if state in LIVE_EXECUTION_STATUSES:
            continue
        try:
            # The index is read eventually consistently: act on the order as it is now, and
            # only if nobody (the workflow, another sweeper) moved it since it was listed.
            order = store.order_get(seen.order_id)
            if (order.status, order.attempt, order.workflow_run) != (status, seen.attempt, run):
                continue
            report.found.append(seen.order_id)
            swept = _move_on(
                order, state, new_run, give_up, store, queue, max_runs, max_resends, now
            )
        except InvalidTransition:
            continue  # a concurrent sweeper (or the workflow) changed it first
        except Exception as exc:  # one order's failure must not stop the sweep of the others
            if seen.order_id not in report.found:
                report.found.append(seen.order_id)
            report.failed[seen.order_id] = _describe(exc)
            continue
        if swept is not None:
            report.done.append(swept)
    return report


def _move_on(
    order: Order,
    state: str | None,
    new_run: SweepAction,
    give_up: GiveUp,
    store: OrderStore,
    queue: MessageQueue,
    max_runs: int,
    max_resends: int,
    now: str,
) -> SweptOrder | None:
    """Re-send the current run, start the next one, or give up; None if nothing changed."""
    run = order.workflow_run
    if state is None:
        resends = order.workflow_run_resends
        if resends >= max_resends:
            return give_up(order, f"workflow run {run} never started after {resends} re-send(s)")
        claimed = _claim(store, order, run=run, resends=resends + 1, now=now, why="never started")
        fulfilment_request(queue=queue, order=claimed, run=run)
        message = f"Workflow run {run} never started: its message sent again ({resends + 1})"
        return SweptOrder(order.order_id, SweepAction.REQUEUED, message, order.status, run)
    if run >= max_runs:
        return give_up(order, f"workflow run {run} of {max_runs} {state}")
    claimed = _claim(store, order, run=run + 1, resends=0, now=now, why=f"run {run} {state}")
    fulfilment_request(queue=queue, order=claimed, run=run + 1)
    message = f"Workflow run {run} {state}: run {run + 1} sent to the Orders queue"
    return SweptOrder(order.order_id, new_run, message, order.status, run + 1)


def _claim(store: OrderStore, order: Order, *, run: int, resends: int, now: str, why: str) -> Order:
    """Record on the order that this sweeper asks for `run`, if nobody did since it was read:
    of two sweepers that read the same order, one writes and the other gets InvalidTransition.
    """
    unchanged: dict[str, Any] = {"WorkflowRun": order.extra.get("WorkflowRun")}
    if order.attempt:
        # A new reservation (a staff resubmission) between the read and this write is a new
        # attempt, whose runs are not this sweeper's business.
        unchanged["Attempt"] = order.attempt
    record: Mapping[str, Any] = {
        "Attempt": order.attempt,
        "Run": run,
        "At": now,
        "Resends": resends,
        "Reason": why,
    }
    return store.order_set_fields_if_unchanged(
        order.order_id,
        {"WorkflowRun": record},
        expected=[order.status],
        unchanged=unchanged,
    )


def _old_orders(
    store: OrderStore, status: OrderStatus, cutoff: str, max_orders: int, report: SweepReport
) -> Iterator[Order]:
    """Orders in `status` with nothing done to them since `cutoff`, newest first, at most
    `max_orders` read; `report` counts them and says whether the cap cut the run short."""
    cursor: dict[str, Any] | None = None
    still_since = _seconds(cutoff)
    while True:
        limit = min(PAGE_SIZE, max_orders - report.examined)
        # OrderDate bounds the Query (an order placed after the cutoff cannot be stranded); its
        # last activity may be later still (a resubmission, a sweeper's request), checked here.
        page = store.orders_by_status(status, limit=limit, cursor=cursor, placed_before=cutoff)
        for order in page.items:
            report.examined += 1
            if _last_activity(order) <= still_since:
                yield order
        if not page.cursor:
            return
        if report.examined >= max_orders:
            report.more = True
            return
        cursor = page.cursor


def _last_activity(order: Order) -> float:
    """When the order last moved or a sweeper last asked for its workflow (epoch seconds)."""
    stamps = [order.last_updated or order.order_date, order.workflow_run_at, order.requeued_at]
    return max(_seconds(stamp) for stamp in stamps if stamp)


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _before(now: str, seconds: float) -> str:
    """`now` less `seconds`, written as utc_now writes times (so it compares as text too)."""
    moment = datetime.fromisoformat(now.replace("Z", "+00:00")) - timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _check_cap(max_orders: int) -> None:
    if max_orders < 1:
        raise ValueError(f"max_orders must be at least 1, not {max_orders}")


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]
