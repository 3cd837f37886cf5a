"""The portal under gunicorn for a benchmark: settings, a database, keys, and its process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipeline.local.emulators import REPO_ROOT, free_port, port_open

# The limiter runs on every request, with limits no benchmark reaches (said in the report).
UNBINDING_PLAN = {
    "DEFAULT_PLAN_RATE_LIMIT": "1000000",
    "DEFAULT_PLAN_BURST_LIMIT": "1000000",
    "DEFAULT_PLAN_DAILY_QUOTA": "0",
}
WORKERS = 4


@dataclass
class Portal:
    """A running portal: its port, process, environment and API keys."""

    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    keys: list[str]


def portal_env(system_env: dict[str, str], workdir: Path, settings: str) -> dict[str, str]:
    """The portal's environment against `system_env`; anything else AWS goes to a dead port."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        **system_env,
        "DJANGO_SETTINGS_MODULE": settings,
        "DJANGO_SECRET_KEY": uuid.uuid4().hex * 2,
        "DATABASE_URL": f"sqlite:///{workdir / 'bench.sqlite3'}",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_LOG_LEVEL": "WARNING",
        "REDIS_URL": "redis://127.0.0.1:6379/13",
        **UNBINDING_PLAN,
    }


def manage(env: dict[str, str], *args: str) -> str:
    """Run manage.py with `env`; its output."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@contextmanager
def running_portal(
    system_env: dict[str, str], workdir: Path, *, settings: str, keys: int = 1
) -> Iterator[Portal]:
    """gunicorn (WORKERS sync workers) serving the portal, with `keys` fresh API keys."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = portal_env(system_env, workdir, settings)
    manage(env, "migrate", "--noinput")
    made = [
        manage(env, "create_api_key", f"bench-{i}").strip().splitlines()[-1] for i in range(keys)
    ]
    port = free_port()
    with (workdir / "portal.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "portal.wsgi:application", "--bind",
             f"127.0.0.1:{port}", "--workers", str(WORKERS), "--worker-class", "sync",
             "--log-level", "warning"],
            cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start; see {workdir / 'portal.log'}")
            time.sleep(0.1)
        yield Portal(port, process, env, made)
    finally:
        process.terminate()
        process.wait(timeout=30)
