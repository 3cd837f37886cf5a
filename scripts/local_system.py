"""The whole system on this machine: the pipeline runtime, the portal under gunicorn, then the
portal's Celery worker and beat (DLQ replay jobs, the re-queue of stranded orders).

Run by `./scripts/deploy.sh local` (which sets up the virtualenv first). In the foreground until
Ctrl-C, which stops everything it started. Data lives in .local/ and survives a restart.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import aws  # noqa: E402 (needs the repository on sys.path)
from pipeline.local.emulators import port_open  # noqa: E402
from pipeline.local.envfile import read_env_file  # noqa: E402
from pipeline.local.runtime import BACKBONE_NICE, DEFAULT_ENV_FILE  # noqa: E402
from pipeline.local.telemetry import MetricsPublisher, parse_emf  # noqa: E402

LOCAL_DIR = ROOT / ".local"
# celery beat's record of when each periodic task last ran (kept across restarts).
BEAT_SCHEDULE_FILE = LOCAL_DIR / "celerybeat-schedule"
ADMIN_USER = "admin"
ADMIN_PASSWORD_FILE = LOCAL_DIR / "admin-password"
PYTHON = sys.executable


def _pump(
    stream: IO[bytes], prefix: str, ready: threading.Event | None, metrics: list[MetricsPublisher]
) -> None:
    """Echo a child's output with a prefix; turn the portal's metric lines into metrics."""
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace").rstrip("\n")
        entries = parse_emf(line)
        if entries and metrics:
            metrics[0].put(entries)
            continue
        if ready is not None and line.startswith("READY"):
            ready.set()
        print(f"{prefix}{line}", flush=True)


def _manage(
    *args: str, env: dict[str, str], check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=check,
        text=True,
        capture_output=True,
    )


def _ensure_admin(env: dict[str, str]) -> str:
    """Create the local admin user once; return a line saying how to log in."""
    if ADMIN_PASSWORD_FILE.exists():
        return (
            f"admin user '{ADMIN_USER}', password in {ADMIN_PASSWORD_FILE.relative_to(ROOT)}: "
            f"{ADMIN_PASSWORD_FILE.read_text().strip()}"
        )
    password = secrets.token_urlsafe(12)
    result = _manage(
        "createsuperuser",
        "--noinput",
        f"--username={ADMIN_USER}",
        "--email=admin@localhost",
        env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
        check=False,
    )
    if result.returncode != 0:
        if "already taken" in (result.stderr + result.stdout):
            return f"admin user '{ADMIN_USER}' exists (manage.py changepassword {ADMIN_USER})"
        raise SystemExit(f"could not create the admin user:\n{result.stderr}")
    ADMIN_PASSWORD_FILE.write_text(password + "\n")
    ADMIN_PASSWORD_FILE.chmod(0o600)
    return (
        f"admin user '{ADMIN_USER}' created, password: {password} (kept in {ADMIN_PASSWORD_FILE})"
    )


def celery_commands(python: str = PYTHON) -> dict[str, list[str]]:
    """The worker and beat command lines: the app is portal/celery.py, the queue the settings'
    CELERY_TASK_DEFAULT_QUEUE (the worker reads the same settings as the portal)."""
    queue = os.environ.get("CELERY_TASK_DEFAULT_QUEUE") or "portal"
    return {
        "worker": [
            python, "-m", "celery", "-A", "portal", "worker",
            "--loglevel", "INFO", "--concurrency", "2", "--queues", queue,
            "--hostname", "portal-local@%h",
        ],
        "beat": [
            python, "-m", "celery", "-A", "portal", "beat",
            "--loglevel", "INFO", "--schedule", str(BEAT_SCHEDULE_FILE),
        ],
    }  # fmt: skip


def _redis_answers(url: str) -> bool:
    """Whether the Celery broker answers; without it jobs wait in the portal as 'queued'."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 30
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Start the runtime, prepare the portal, serve it, wait for Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "4")))
    parser.add_argument("--fresh", action="store_true", help="start the pipeline from empty data")
    args = parser.parse_args(argv)
    if port_open(args.port):
        raise SystemExit(f"port {args.port} is in use: set PORT to another one")
    LOCAL_DIR.mkdir(exist_ok=True)

    stopping = threading.Event()
    procs: list[subprocess.Popen[bytes]] = []
    metrics: list[MetricsPublisher] = []

    def on_signal(signum: int, _frame: object) -> None:
        print(f"\n{signal.Signals(signum).name}: stopping the local system...", flush=True)
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        runtime_cmd = [PYTHON, "-m", "pipeline.local", "--env-file", str(DEFAULT_ENV_FILE)]
        # The portal answers first: the backbone takes the CPU it leaves (pipeline.local --nice).
        runtime_cmd += ["--nice", str(BACKBONE_NICE)]
        # Webhooks may go to a receiver on this machine (http://127.0.0.1, localhost): the
        # portal's local settings allow adding such endpoints, the delivery function this.
        runtime_cmd += ["--parameter", "WebhookAllowLocalEndpoints=true"]
        if args.fresh:
            runtime_cmd.append("--fresh")
        # Own process groups: Ctrl-C reaches us, and we stop the children in order.
        runtime = subprocess.Popen(
            runtime_cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(runtime)
        ready = threading.Event()
        threading.Thread(target=_pump, args=(runtime.stdout, "", ready, []), daemon=True).start()
        while not ready.wait(0.2):
            if runtime.poll() is not None:
                raise SystemExit("the pipeline runtime stopped while starting (see above)")
            if stopping.is_set():
                return 130
        env = {**os.environ, **read_env_file(DEFAULT_ENV_FILE)}
        env["DJANGO_SETTINGS_MODULE"] = "portal.settings.local"
        # Celery's broker: Redis when it answers, else a folder under .local/ (no service to
        # install). Decided before the portal starts: it sends the jobs the worker runs.
        broker = env.get("CELERY_BROKER_URL") or env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        if broker.startswith("redis") and not _redis_answers(broker):
            print(
                f"note: Redis does not answer at {broker}: Celery uses a folder under .local/ "
                "and the API's rate limits are off until Redis runs.",
                flush=True,
            )
            broker = "filesystem://"
            env["CELERY_BROKER_URL"] = broker
            env["CELERY_RESULT_BACKEND"] = f"file://{LOCAL_DIR / 'celery' / 'results'}"
            (LOCAL_DIR / "celery" / "results").mkdir(parents=True, exist_ok=True)
        metrics.append(
            MetricsPublisher(
                aws.new_client(
                    "cloudwatch",
                    endpoint_url=env["AWS_ENDPOINT_URL"],
                    region=env["AWS_REGION"],
                    credentials=env,
                    config=aws.SDK_DEFAULT_CONFIG,
                )
            )
        )

        print("==> portal: migrations, admin user, sample inventory", flush=True)
        _manage("migrate", "--noinput", env=env)
        admin_line = _ensure_admin(env)
        populated = _manage("populate_inventory", env=env)
        print(populated.stdout.strip().splitlines()[-1] if populated.stdout else "", flush=True)

        portal = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "portal.wsgi:application",
                "--bind",
                f"127.0.0.1:{args.port}",
                "--workers",
                str(args.workers),
                "--worker-class",
                "sync",
                "--access-logfile",
                "-",
                "--graceful-timeout",
                "10",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.insert(0, portal)
        threading.Thread(
            target=_pump, args=(portal.stdout, "[portal] ", None, metrics), daemon=True
        ).start()
        deadline = time.monotonic() + 30
        while not port_open(args.port):
            if portal.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the portal did not start (see above)")
            time.sleep(0.2)

        # Celery after the portal: the worker and beat read the same settings and database.
        celery: dict[str, subprocess.Popen[bytes]] = {}
        for name, command in celery_commands().items():
            proc = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            # First in the list: stopped before the portal and the runtime they use.
            procs.insert(0, proc)
            celery[name] = proc
            threading.Thread(
                target=_pump, args=(proc.stdout, f"[{name}] ", None, []), daemon=True
            ).start()

        url = f"http://127.0.0.1:{args.port}"
        print(
            "\n".join(
                [
                    "",
                    "The order system is running locally.",
                    f"  API:        POST {url}/submitorder (header x-api-key)",
                    f"  Admin:      {url}/admin/  ({admin_line})",
                    f"  Operations: {url}/ops/  (dashboard, orders, inventory, DLQ replay)",
                    f"  Jobs:       celery worker + beat on {broker}",
                    f"  API docs:   {url}/api/docs/",
                    "  API key:    ./scripts/deploy.sh apikey",
                    "  Status:     ./scripts/deploy.sh status",
                    "  Data:       .local/ (kept across restarts; --fresh starts empty)",
                    "Ctrl-C stops everything.",
                    "",
                ]
            ),
            flush=True,
        )
        while not stopping.wait(0.5):
            watched = [
                (runtime, "pipeline runtime"),
                (portal, "portal"),
                (celery["worker"], "celery worker"),
                (celery["beat"], "celery beat"),
            ]
            for proc, name in watched:
                if proc.poll() is not None:
                    print(f"the {name} stopped (exit {proc.returncode}); stopping the rest")
                    stopping.set()
        return 0
    finally:
        _stop(procs)
        if metrics:
            metrics[0].close()


if __name__ == "__main__":
    sys.exit(main())
