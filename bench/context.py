"""What the benchmark sections run against, started once per run and stopped at its end."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline import aws
from pipeline.local.emulators import REPO_ROOT, Emulator, free_port, moto_server
from pipeline.local.envfile import read_env_file
from pipeline.local.runtime import BACKBONE_NICE, DEFAULT_PORTS
from pipeline.local.tables import start_tables


class Context:
    """Lazily started systems: DynamoDB Local with the template's tables only (no pipeline
    reacting to writes), a moto server, and the whole local runtime (payments approved)."""

    def __init__(self, *, quick: bool, max_concurrency: int | None = None):
        self.quick = quick
        # The local runtime's cap on workers, pollers and lanes (None: its default).
        self.max_concurrency = max_concurrency
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-"))
        self._tables: tuple[Emulator, dict[str, str]] | None = None
        self._moto: Emulator | None = None
        self._runtime: tuple[subprocess.Popen[bytes], dict[str, str]] | None = None

    def tables(self) -> dict[str, str]:
        """The environment of a DynamoDB Local holding the template's tables."""
        if self._tables is None:
            self._tables = start_tables("bench", data_dir=None)
        return self._tables[1]

    def tables_pid(self) -> int | None:
        """DynamoDB Local's process id, once started."""
        if self._tables is None or self._tables[0].proc is None:
            return None
        return self._tables[0].proc.pid

    def moto(self) -> str:
        """The URL of a moto server (SQS, CloudWatch)."""
        if self._moto is None:
            server = moto_server(free_port(), self.tmp / "moto.log")
            server.start()
            self._moto = server
        return self._moto.url

    def runtime(self) -> dict[str, str]:
        """The client environment of `python -m pipeline.local --in-memory`, started once."""
        if self._runtime is None:
            env_file = self.tmp / "pipeline.env"
            log_path = self.tmp / "runtime.log"
            command = [
                sys.executable, "-m", "pipeline.local", "--in-memory", "--quiet",
                "--nice", str(BACKBONE_NICE),  # as deploy.sh local runs it beside the portal
                "--env-file", str(env_file), "--parameter", "PaymentSuccessRate=1.0",
                *(["--max-concurrency", str(self.max_concurrency)] if self.max_concurrency else []),
                *(arg for name in DEFAULT_PORTS for arg in (f"--{name}-port", "0")),
            ]  # fmt: skip
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
                )
            deadline = time.monotonic() + 180
            while "READY" not in log_path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    process.terminate()
                    raise SystemExit(f"the runtime did not start; see {log_path}")
                time.sleep(0.2)
            self._runtime = (process, read_env_file(env_file))
        return self._runtime[1]

    def use(self, env: dict[str, str]) -> None:
        """Point this process's AWS clients at `env` (a section's system)."""
        for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            del os.environ[key]
        os.environ.update(env)
        aws.reset_clients()

    def close(self) -> None:
        """Stop whatever was started."""
        if self._runtime is not None:
            process = self._runtime[0]
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._tables is not None:
            self._tables[0].stop()
        if self._moto is not None:
            self._moto.stop()
