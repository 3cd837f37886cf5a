"""The portal under gunicorn (sync workers) in a subprocess, and a small HTTP client for it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.local.emulators import REPO_ROOT, free_port


@dataclass
class Reply:
    """One HTTP response, read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class PortalServer:
    """A running gunicorn serving portal.wsgi on 127.0.0.1."""

    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    rate_limit_prefix: str

    @property
    def url(self) -> str:
        """The base URL."""
        return f"http://{self.host}:{self.port}"

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> Reply:
        """Send one request on a fresh connection (as independent clients do)."""
        payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json", **(headers or {})}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=payload, headers=sent)
            response = conn.getresponse()
            data = response.read()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        finally:
            conn.close()

    def warm_up(self, raw_key: str, rounds: int = 3) -> None:
        """Make every worker import, connect and build its clients before a timed test."""
        from concurrent.futures import ThreadPoolExecutor

        headers = {"x-api-key": raw_key}
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(rounds):
                list(
                    pool.map(
                        lambda _: self.request("GET", "/orders/warm-up", headers=headers), range(16)
                    )
                )

    def log_tail(self, lines: int = 60) -> str:
        """The end of gunicorn's output, for failure messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_portal(
    env: Mapping[str, str], log_path: Path, *, workers: int = 4, threads: int = 1, prefix: str
) -> PortalServer:
    """Start gunicorn with `env` added to a clean copy of this environment; wait until it answers.
    With `threads` above 1 each worker serves that many requests at once (gthread), so a
    request waiting on DynamoDB does not hold a whole worker.

    AWS endpoint variables of the calling shell are dropped, so only `env` decides where the
    portal's DynamoDB (and queues) are.
    """
    port = free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    full_env = {
        **base,
        "DJANGO_SETTINGS_MODULE": "portal.settings.test",
        "RATE_LIMIT_KEY_PREFIX": prefix,
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    command = [
        sys.executable, "-m", "gunicorn", "portal.wsgi:application",
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        *(("--worker-class", "gthread", "--threads", str(threads)) if threads > 1 else
          ("--worker-class", "sync")),
        "--backlog", "512", "--timeout", "60",
        "--access-logfile", "-",
    ]  # fmt: skip
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO_ROOT, env=full_env, stdout=out, stderr=subprocess.STDOUT
        )
    server = PortalServer("127.0.0.1", port, proc, log_path, prefix)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError("gunicorn exited while starting:\n" + server.log_tail())
        try:
            if server.request("GET", "/api/schema/", timeout=2).status == 200:
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            stop_portal(server)
            raise RuntimeError("gunicorn did not answer within 60 s:\n" + server.log_tail())
        time.sleep(0.2)


def stop_portal(server: PortalServer) -> None:
    """Stop gunicorn and its workers (SIGTERM to the master, which stops them)."""
    server.proc.terminate()
    try:
        server.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(timeout=10)
