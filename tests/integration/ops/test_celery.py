"""The portal's Celery side for real: a worker process and celery beat on Redis, running the
DLQ replay job and the periodic re-queue of stranded orders against the local runtime."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from operations.models import AuditLogEntry, ReplayJob
from operations.tasks import requeue_stranded_orders
from pipeline import wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.statuses import OrderStatus
from portal.celery import app
from tests.integration.ops.celery_procs import (
    CeleryProcess,
    start_beat,
    start_worker,
    stop,
    unique_queue,
)
from tests.integration.ops.conftest import drain
from tests.integration.ops.orders import make_item
from tests.integration.ops.test_dlq import fill, replay, staff_user  # noqa: F401
from tests.integration.ops.test_orders import stranded_order, wait_for_status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


def database_url() -> str:
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture
def queue(settings: Any) -> Iterator[str]:
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


def worker_env(runtime_env: dict[str, str]) -> dict[str, str]:
    return {
        **runtime_env,
        # The test may have pointed the Orders queue elsewhere (scratch_queue).
        "ORDERS_QUEUE_URL": os.environ["ORDERS_QUEUE_URL"],
        "DATABASE_URL": database_url(),
        "REDIS_URL": django_settings.REDIS_URL,
        # The stranded orders these tests make are seconds old: no grace period here.
        "OPS_REQUEUE_STRANDED_MIN_AGE": "0",
    }


@pytest.fixture
def worker(
    runtime_env: dict[str, str], queue: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[CeleryProcess]:
    """`celery -A portal worker` on this test's queue, with the runtime's environment."""
    if "scratch_queue" in request.fixturenames:
        request.getfixturevalue("scratch_queue")
    process = start_worker(worker_env(runtime_env), tmp_path / "worker.log", queue)
    yield process
    stop(process)


def wait_done(job: ReplayJob, timeout: float = 60) -> ReplayJob:
    deadline = time.monotonic() + timeout
    while not job.done:
        if time.monotonic() > deadline:
            raise AssertionError(f"job still {job.state}")
        time.sleep(0.2)
        job.refresh_from_db()
    return job


def test_a_worker_process_runs_the_replay_and_the_page_shows_its_summary(
    staff: Client, dlq: SqsQueue, scratch_queue: SqsQueue, worker: CeleryProcess
):
    # Given three messages in the DLQ and a Celery worker running beside the portal
    messages = fill(dlq)

    # When staff start a replay of all of them
    job, page = replay(staff, all="1")

    # Then the page follows a job the worker runs, and the worker finishes it
    assert 'id="replay-job"' in page
    job = wait_done(job)
    assert (job.state, job.moved, job.failed, job.skipped) == ("succeeded", 3, 0, 0)
    assert job.started_at and job.finished_at
    # And its page now shows the summary, its progress JSON the counts
    assert (
        "Replay finished: 3 moved, 0 failed, 0 skipped."
        in staff.get(f"/admin/operations/replayjob/{job.pk}/change/").content.decode()
    )
    assert staff.get(f"/admin/operations/replayjob/{job.pk}/progress/").json()["moved"] == 3
    # And the messages are in the Orders queue, not the DLQ, and the worker logged the task
    assert sorted(drain(scratch_queue)) == sorted(messages.values())
    assert dlq.depth()["visible"] == 0
    assert f"Task operations.replay_dlq[{job.celery_task_id}] succeeded" in worker.log()
    assert AuditLogEntry.objects.get(action="dlq_replay").detail["moved"] == 3


def test_a_job_waits_visibly_while_no_worker_runs(
    staff: Client, dlq: SqsQueue, queue: str, scratch_queue: SqsQueue
):
    # Given a message and no worker on the queue
    fill(dlq)

    # When staff start a replay
    job, page = replay(staff, all="1")

    # Then the job is queued, the page says it waits for a worker, and nothing moved
    assert job.state == "queued"
    assert "Waiting for a Celery worker" in page
    assert dlq.depth()["visible"] == 3


def test_the_requeue_task_runs_on_the_worker_and_returns_through_the_result_backend(
    staff: Client, worker: CeleryProcess, runtime_env: dict[str, str], queue: str
):
    # Given a stranded RESERVED order
    store = wiring.dynamo_store()
    order = stranded_order(store, make_item(store))

    # When the periodic task is sent to the worker
    result = requeue_stranded_orders.apply_async(queue=queue)

    # Then its result (from Redis) names the order, and the order ships
    assert order.order_id in result.get(timeout=60)
    wait_for_status(store, order.order_id, OrderStatus.SHIPPED)
    entry = AuditLogEntry.objects.get(action="fulfilment_requeue_stranded")
    assert entry.actor == "celery beat" and order.order_id in entry.detail["order_ids"]


def test_celery_beat_schedules_the_requeue_and_the_worker_runs_it(
    worker: CeleryProcess, runtime_env: dict[str, str], queue: str, tmp_path: Path
):
    # Given a stranded RESERVED order, and beat running the safety net every second
    store = wiring.dynamo_store()
    order = stranded_order(store, make_item(store))
    beat = start_beat(
        {**worker_env(runtime_env), "OPS_REQUEUE_STRANDED_SECONDS": "1"},
        tmp_path / "beat.log",
        queue,
        tmp_path / "celerybeat-schedule",
    )
    try:
        # When beat fires, the worker re-queues it and the pipeline ships it
        wait_for_status(store, order.order_id, OrderStatus.SHIPPED)
    finally:
        stop(beat)

    # Then beat sent the task, and the worker ran it
    assert "Sending due task requeue-stranded-orders" in beat.log()
    assert "operations.requeue_stranded_orders" in worker.log()
