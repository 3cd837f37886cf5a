"""Fixtures of the browser tests: Debian's Chromium driven by Playwright's Python package, the
portal under gunicorn with a Celery worker, on the running local runtime."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, connections

from pipeline.adapters.sqs import SqsQueue
from tests.integration.api.servers import PortalServer, start_portal, stop_portal
from tests.integration.ops.celery_procs import start_worker, stop, unique_queue
from tests.integration.ops.conftest import drain

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that phones home: these machines reach only the package registries.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium; its absence fails the test (a browser test that skips proves nothing)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install Debian's package "
            "(apt-get install -y chromium; ./scripts/deploy.sh test does it when apt-get is "
            "available). `playwright install` is not used: it downloads a browser build.",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture
def page(chromium_path: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """A fresh headless Chromium page; a screenshot of it is kept when the test ends."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still synchronous, so Django's async guard would refuse them.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(20_000)
            tab = context.new_page()
            try:
                yield tab
            finally:
                shots = Path(os.environ.get("OPS_BROWSER_SCREENSHOTS", str(tmp_path)))
                shots.mkdir(parents=True, exist_ok=True)
                tab.screenshot(path=str(shots / "last-page.png"), full_page=True)
                context.close()
                # Connections the test opened while Playwright's loop ran are not the ones
                # pytest-django closes; left open, they keep the test database from being
                # dropped.
                connections.close_all()
        finally:
            browser.close()


@pytest.fixture
def dlq(runtime_env: dict[str, str]) -> Iterator[SqsQueue]:
    """The runtime's dead-letter queue, emptied before and after."""
    queue = SqsQueue(runtime_env["ORDERS_DLQ_URL"])
    drain(queue)
    yield queue
    drain(queue)


@pytest.fixture
def portal(
    runtime_env: dict[str, str], django_db_setup: None, tmp_path: Path
) -> Iterator[PortalServer]:
    """gunicorn serving the portal on the test database and the running local runtime, with a
    Celery worker of its own on a queue of its own (real Redis)."""
    db = connection.settings_dict
    queue = unique_queue()
    env = {
        **runtime_env,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": django_settings.REDIS_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "ORDERS_API_METRICS_ENABLED": "false",
    }
    worker = start_worker(env, tmp_path / "worker.log", queue)
    try:
        server = start_portal(
            env, tmp_path / "gunicorn.log", workers=2, prefix=f"test:browser-{uuid.uuid4().hex}:"
        )
        try:
            yield server
        finally:
            stop_portal(server)
    finally:
        stop(worker)
        redis.Redis.from_url(django_settings.CELERY_BROKER_URL).delete(queue)
