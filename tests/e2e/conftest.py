"""Fixtures of the whole-system tests: the portal under gunicorn against the local runtime."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.api.servers import PortalServer, start_portal, stop_portal


@pytest.fixture
def portal_workers() -> tuple[int, int]:
    """gunicorn's workers and threads per worker for `portal` (a module may ask for more)."""
    return 2, 1


@pytest.fixture
def portal(
    runtime_env: dict[str, str],
    django_db_setup: None,
    tmp_path: Any,
    portal_workers: tuple[int, int],
) -> Iterator[PortalServer]:
    """gunicorn serving the portal against the running local runtime and the test database."""
    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = {
        **runtime_env,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    server = start_portal(
        env,
        tmp_path / "gunicorn.log",
        workers=portal_workers[0],
        threads=portal_workers[1],
        prefix=f"test:e2e-{uuid.uuid4().hex[:8]}:",
    )
    try:
        yield server
    finally:
        stop_portal(server)
