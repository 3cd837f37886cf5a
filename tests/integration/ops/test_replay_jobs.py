"""Replay jobs under stress: a real Celery worker killed mid-replay and the job resumed by
another, with exact counts; and the replay's rate held to its limit against moto SQS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from operations.models import AuditLogEntry, ReplayJob
from pipeline import wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.domain import Order
from pipeline.statuses import OrderStatus
from portal.celery import app
from tests.integration.ops.celery_procs import start_worker, stop, unique_queue
from tests.integration.ops.conftest import drain
from tests.integration.ops.orders import make_item
from tests.integration.ops.test_celery import worker_env
from tests.integration.ops.test_dlq import (  # noqa: F401 (staff_user: an operator)
    order_in,
    replay,
    request_for,
    staff_user,
)
from tests.integration.ops.test_orders import stranded_order

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.serial,
    pytest.mark.django_db(transaction=True),
]

# Short enough for a test, in the proportions of the defaults: the long poll, how long a
# received message stays hidden, and how long a silent job row takes to count as stale.
REPLAY_ENV = {
    "OPS_REPLAY_WAIT_SECONDS": "1",
    "OPS_REPLAY_VISIBILITY": "4",
    "OPS_REPLAY_STALE_SECONDS": "3",
}


@pytest.fixture(autouse=True)
def replay_settings(settings: Any) -> None:
    """This process reads the same replay settings as the workers it starts."""
    settings.OPS_REPLAY_WAIT_SECONDS = 1
    settings.OPS_REPLAY_VISIBILITY = 4
    settings.OPS_REPLAY_STALE_SECONDS = 3


@pytest.fixture
def made_orders() -> Iterator[list[Order]]:
    """Orders a test writes, deleted afterwards: RESERVED ones left behind would be picked up
    by later tests' stranded-order sweeps and sent through the pipeline."""
    made: list[Order] = []
    yield made
    store = wiring.dynamo_store()
    for order in made:
        store.client.delete_item(
            TableName=store.orders_table, Key={"OrderId": {"S": order.order_id}}
        )


@pytest.fixture
def celery_queue(settings: Any) -> Iterator[str]:
    """This test's Celery queue; tasks sent from here go to Redis, not run in-process."""
    name = unique_queue()
    settings.CELERY_TASK_DEFAULT_QUEUE = name
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield name
    finally:
        app.conf.task_always_eager = eager
        redis.Redis.from_url(django_settings.CELERY_BROKER_URL).delete(name)


def wait_for(job: ReplayJob, done: Any, what: str, timeout: float = 60) -> ReplayJob:
    deadline = time.monotonic() + timeout
    while not done(job):
        if time.monotonic() > deadline:
            raise AssertionError(f"job never {what}: {job.as_progress()}")
        time.sleep(0.1)
        job.refresh_from_db()
    return job


def test_a_replay_whose_worker_is_killed_is_stale_and_a_resumed_run_finishes_it_exactly(
    staff: Client,
    dlq: SqsQueue,
    scratch_queue: SqsQueue,
    runtime_env: dict[str, str],
    celery_queue: str,
    tmp_path: Path,
    made_orders: list[Order],
):
    # Given 40 dead letters, interleaved: 30 for RESERVED orders (to send), 5 for CANCELLED
    # orders (to skip) and 5 unreadable (to leave)
    store = wiring.dynamo_store()
    item = make_item(store)
    bodies: list[str] = []
    for n in range(40):
        if n % 8 == 3:
            order = order_in(OrderStatus.CANCELLED)
        elif n % 8 == 7:
            bodies.append(f"not a request {n}")
            continue
        else:
            order = stranded_order(store, item)
        made_orders.append(order)
        bodies.append(request_for(order))
    for body in bodies:
        dlq.send_raw(body)
    to_send = sorted(request_for(o) for o in made_orders if o.status == OrderStatus.RESERVED)
    assert (len(to_send), len(made_orders)) == (30, 35)
    env = {**worker_env(runtime_env), **REPLAY_ENV}

    # And a replay of all of them at 5 messages a second, run by a real worker process
    first = start_worker(env, tmp_path / "worker-1.log", celery_queue)
    try:
        job, _ = replay(staff, all="1", rate="5")
        job = wait_for(job, lambda j: j.sent >= 8, "sent 8")

        # When the worker is killed mid-job (SIGKILL: no shutdown, no cleanup)
        first.proc.kill()
        first.proc.wait(timeout=10)
    finally:
        stop(first)
    killed_at = job.as_progress()

    # Then the job still says RUNNING, and once its row goes unwritten for the stale timeout
    # it is stale, and its page offers to resume it
    job.refresh_from_db()
    assert job.state == "running" and not job.done
    job = wait_for(job, lambda j: j.is_stale, "stale", timeout=15)
    page = staff.get(f"/admin/operations/replayjob/{job.pk}/change/").content.decode()
    assert "running (stale)" in page and 'id="job-resume"' in page

    # When staff resume it and another worker takes it
    second = start_worker(env, tmp_path / "worker-2.log", celery_queue)
    try:
        staff.post(f"/admin/operations/replayjob/{job.pk}/resume/")
        job = wait_for(job, lambda j: j.done, "finished", timeout=90)
    finally:
        stop(second)

    # Then it finished in two runs with exact counts: every replayable message sent, the
    # cancelled orders' skipped, the unreadable ones left
    assert killed_at["sent"] < 30
    assert (job.state, job.runs) == ("succeeded", 2)
    assert (job.sent, job.skipped, job.left, job.failed, job.passed) == (30, 5, 5, 0, 0)
    # And nothing was lost: each replayable order's request reached the Orders queue; at most
    # the batch in flight when the worker died went twice (one receive: five messages at 5/s),
    # which starts no second workflow (the execution name is the order's)
    received = drain(scratch_queue)
    assert sorted(set(received)) == to_send
    assert len(received) - len(set(received)) <= 5
    # And only the unreadable messages are still in the DLQ
    assert sorted(drain(dlq)) == sorted(b for b in bodies if not b.startswith("{"))
    entry = AuditLogEntry.objects.filter(action="dlq_replay").latest("at")
    assert (entry.detail["sent"], entry.detail["runs"]) == (30, 2)
    assert "Task operations.replay_dlq" in (tmp_path / "worker-2.log").read_text()


def dead_letters_for_reserved_orders(dlq: SqsQueue, count: int, made: list[Order]) -> None:
    store = wiring.dynamo_store()
    item = make_item(store)
    orders = [stranded_order(store, item) for _ in range(count)]
    made.extend(orders)
    bodies = [request_for(order) for order in orders]
    for start in range(0, count, 10):
        dlq.send_raw_batch(bodies[start : start + 10])


def send_times(queue: SqsQueue) -> list[float]:
    """When each message of `queue` was sent (SQS's SentTimestamp), emptying it."""
    sent_at: list[float] = []
    while batch := queue.receive(max_messages=10, wait_seconds=1, visibility=60):
        sent_at += [int(m.attributes["SentTimestamp"]) / 1000 for m in batch]
        queue.delete_batch(batch)
    return sorted(sent_at)


def test_a_replay_holds_its_rate_within_ten_percent(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue, made_orders: list[Order]
):
    # Given how fast this machine replays unthrottled (100 messages at SQS's cap of 500/s):
    # the rate to hold is a third of that, at most 50/s, so what is measured is the limiter and
    # not a machine too busy to reach it (the tests share two cores with the whole runtime)
    dead_letters_for_reserved_orders(dlq, 100, made_orders)
    calibration, _ = replay(staff, all="1", rate="500")
    unthrottled = send_times(scratch_queue)
    assert calibration.sent == len(unthrottled) == 100
    reachable = len(unthrottled) / (unthrottled[-1] - unthrottled[0])
    limit = max(5, min(50, int(reachable / 3)))
    count = max(200, min(300, limit * 8))

    # And a few hundred more dead letters for RESERVED orders
    dead_letters_for_reserved_orders(dlq, count, made_orders)

    # When they are replayed at that rate (the job runs in this process)
    job, _ = replay(staff, all="1", rate=str(limit))

    # Then all went, and the Orders queue received them at that rate: after the first burst
    # (one receive's worth, at most 10), within 10% on average, and no second saw more than
    # the rate and the burst
    burst = min(10, limit)
    assert (job.state, job.sent) == ("succeeded", count)
    sent_at = send_times(scratch_queue)
    assert len(sent_at) == count
    rate = (count - burst) / (sent_at[-1] - sent_at[0])
    assert 0.9 * limit <= rate <= 1.1 * limit, f"{rate:.1f}/s for a limit of {limit}/s"
    busiest = max(sum(1 for t in sent_at if s <= t < s + 1) for s in sent_at)
    assert busiest <= 1.1 * limit + burst, f"{busiest} messages in one second"
