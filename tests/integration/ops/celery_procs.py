"""Real Celery processes for the tests: `celery -A portal worker` (and beat) on real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.local.emulators import REPO_ROOT


@dataclass
class CeleryProcess:
    """A running celery worker or beat and where its output goes."""

    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        """Everything it printed so far."""
        return self.log_path.read_text(errors="replace")


def unique_queue() -> str:
    """A queue name of this test's own: no other worker on the same Redis takes its jobs."""
    return f"ops-test-{uuid.uuid4().hex[:10]}"


def celery_env(env: Mapping[str, str], queue: str) -> dict[str, str]:
    """This process's environment without its AWS endpoints, plus `env` and the queue."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "CELERY_TASK_DEFAULT_QUEUE": queue,
        "DJANGO_LOG_FORMAT": "plain",
        "PYTHONUNBUFFERED": "1",
        **env,
    }


def start_worker(env: Mapping[str, str], log_path: Path, queue: str) -> CeleryProcess:
    """Start a worker reading only `queue`; return once it says it is ready."""
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "worker",
        "--queues", queue, "--pool", "solo", "--loglevel", "INFO",
        "--hostname", f"{queue}@%h", "--without-gossip", "--without-mingle",
    ]  # fmt: skip
    return _start(command, celery_env(env, queue), log_path, ready=" ready.")


def start_beat(env: Mapping[str, str], log_path: Path, queue: str, schedule: Path) -> CeleryProcess:
    """Start celery beat sending the portal's periodic tasks to `queue`."""
    command = [
        sys.executable, "-m", "celery", "-A", "portal", "beat",
        "--schedule", str(schedule), "--loglevel", "INFO", "--max-interval", "1",
    ]  # fmt: skip
    return _start(command, celery_env(env, queue), log_path, ready="beat: Starting...")


def _start(command: list[str], env: dict[str, str], log_path: Path, *, ready: str) -> CeleryProcess:
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    started = CeleryProcess(proc, log_path)
    deadline = time.monotonic() + 60
    while ready not in started.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(started)
            raise RuntimeError(f"{command[4]} did not start:\n{started.log()}")
        time.sleep(0.2)
    return started


def stop(process: CeleryProcess) -> None:
    """Stop it (warm shutdown on SIGTERM), killing it if it hangs."""
    if process.proc.poll() is None:
        process.proc.terminate()
    try:
        process.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.proc.kill()
        process.proc.wait(timeout=10)
