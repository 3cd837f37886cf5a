"""The portal's Celery app: where its broker comes from, its tasks, and beat's schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pipeline.local.emulators import REPO_ROOT

READ_CONFIG = """
import json
from portal.celery import app
app.loader.import_default_modules()
conf = app.conf
print(json.dumps({
    "broker": conf.broker_url,
    "backend": conf.result_backend,
    "eager": conf.task_always_eager,
    "queue": conf.task_default_queue,
    "beat": {k: [v["task"], v["schedule"]] for k, v in conf.beat_schedule.items()},
    "tasks": sorted(t for t in app.tasks if t.startswith("operations.")),
}))
"""


def celery_config(**env: str) -> dict:
    """The app's configuration as a fresh process with `env` sees it."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CELERY_", "REDIS_URL", "DJANGO_", "OPS_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", READ_CONFIG],
        cwd=REPO_ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "portal.settings.local", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_broker_and_result_backend_default_to_redis_url():
    # Given only REDIS_URL
    config = celery_config(REDIS_URL="redis://cache.internal:6380/3")

    # Then Celery uses it for both, sends to the portal's queue, and does not run eagerly
    assert config["broker"] == "redis://cache.internal:6380/3"
    assert config["backend"] == "redis://cache.internal:6380/3"
    assert config["queue"] == "portal"
    assert config["eager"] is False


def test_the_broker_and_backend_can_be_set_on_their_own():
    config = celery_config(
        REDIS_URL="redis://a:6379/0",
        CELERY_BROKER_URL="redis://broker:6379/1",
        CELERY_RESULT_BACKEND="redis://results:6379/2",
        CELERY_TASK_DEFAULT_QUEUE="ops",
    )
    assert (config["broker"], config["backend"], config["queue"]) == (
        "redis://broker:6379/1",
        "redis://results:6379/2",
        "ops",
    )


def test_the_tasks_are_found_and_beat_requeues_stranded_orders_every_five_minutes():
    # When the app loads the portal's apps
    config = celery_config()

    # Then the operations tasks are registered: the inventory catalogue's refresh, replay,
    # staff-started background jobs, the re-queue and the three sweepers
    assert config["tasks"] == [
        "operations.refresh_inventory_catalogue",
        "operations.replay_dlq",
        "operations.requeue_stranded_orders",
        "operations.run_background_job",
        "operations.sweep_stranded_paid",
        "operations.sweep_stranded_pending",
        "operations.sweep_stranded_reserved",
    ]
    # And beat sends the re-queue every 300 seconds (configurable), each sweeper every minute
    assert config["beat"] == {
        "inventory-catalogue-refresh": ["operations.refresh_inventory_catalogue", 60.0],
        "requeue-stranded-orders": ["operations.requeue_stranded_orders", 300.0],
        "sweep-stranded-pending": ["operations.sweep_stranded_pending", 60.0],
        "sweep-stranded-reserved": ["operations.sweep_stranded_reserved", 60.0],
        "sweep-stranded-paid": ["operations.sweep_stranded_paid", 60.0],
    }
    assert (
        celery_config(OPS_REQUEUE_STRANDED_SECONDS="60")["beat"]["requeue-stranded-orders"][1]
        == 60.0
    )


def test_test_settings_follow_their_own_redis_database_and_run_tasks_eagerly():
    config = celery_config(
        DJANGO_SETTINGS_MODULE="portal.settings.test", REDIS_URL="redis://127.0.0.1:6379/9"
    )
    assert config["broker"] == "redis://127.0.0.1:6379/9"
    assert config["eager"] is True
