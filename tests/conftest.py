"""Shared fixtures: local AWS endpoints and the whole local runtime, started once per session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline import aws
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.local.emulators import REPO_ROOT
from pipeline.local.envfile import read_env_file
from pipeline.local.runtime import DEFAULT_PORTS
from pipeline.local.tables import start_tables

RUNTIME_TIME_SCALE = 0.02


@dataclass
class RunningRuntime:
    """The local runtime started by the tests, and the environment its clients need."""

    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 80) -> str:
        """The end of the runtime's output, for failure messages."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections all session: bound, never listening, so no
    server started later (port-0 servers, other test workers) can be given it."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    try:
        yield holder.getsockname()[1]
    finally:
        holder.close()


def _use_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    aws.reset_clients()


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[dict[str, str]]:
    """DynamoDB Local (in memory) with the Orders and Inventory tables of template.yaml."""
    emulator, env = start_tables("tests")
    try:
        yield env
    finally:
        emulator.stop()


@pytest.fixture
def store(dynamodb_endpoint: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> DynamoStore:
    """A DynamoStore on DynamoDB Local (which serialises conditional writes, unlike moto)."""
    _use_env(monkeypatch, dynamodb_endpoint)
    return DynamoStore(
        dynamodb_endpoint["ORDERS_TABLE_NAME"], dynamodb_endpoint["INVENTORY_TABLE_NAME"]
    )


@pytest.fixture(scope="session")
def local_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRuntime]:
    """`python -m pipeline.local` in a subprocess: free ports, in-memory data, time scaled so
    retries and redeliveries take a fiftieth of their real time, payments always approved
    unless an order's test token says otherwise."""
    workdir = tmp_path_factory.mktemp("runtime")
    env_file = workdir / "pipeline.env"
    log_path = workdir / "runtime.log"
    command = [
        sys.executable, "-m", "pipeline.local",
        "--in-memory", "--env-file", str(env_file),
        *(arg for name in DEFAULT_PORTS for arg in (f"--{name}-port", "0")),
        "--time-scale", str(RUNTIME_TIME_SCALE),
        "--parameter", "PaymentSuccessRate=1.0",
        # Webhooks to the tests' receivers on 127.0.0.1, retried after 1 s, 2 s, then every 3 s.
        "--parameter", "WebhookAllowLocalEndpoints=true",
        "--parameter", "WebhookRetryBaseSeconds=1",
        "--parameter", "WebhookRetryMaxDelaySeconds=3",
    ]  # fmt: skip
    with log_path.open("wb") as out:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    try:
        while "READY" not in log_path.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "the local runtime did not start:\n" + log_path.read_text(errors="replace")
                )
            time.sleep(0.2)
        yield RunningRuntime(read_env_file(env_file), proc, log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def runtime_env(local_runtime: RunningRuntime, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The running local runtime's client environment, set in os.environ for this test."""
    _use_env(monkeypatch, local_runtime.env)
    return local_runtime.env
