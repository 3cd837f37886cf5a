"""Without Java the runtime falls back to moto for DynamoDB, says so loudly, and still works."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import aws, wiring
from pipeline.domain import InventoryItem
from pipeline.local.emulators import REPO_ROOT
from pipeline.local.envfile import read_env_file
from pipeline.local.runtime import DEFAULT_PORTS
from pipeline.orders import order_submit
from pipeline.statuses import FINAL_STATUSES, OrderStatus

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture
def javaless_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The runtime started with a JAVA_HOME that holds no Java; yields its output so far."""
    env_file, log_path = tmp_path / "pipeline.env", tmp_path / "runtime.log"
    command = [
        sys.executable, "-m", "pipeline.local", "--in-memory", "--quiet",
        "--env-file", str(env_file), "--time-scale", "0.02",
        "--parameter", "PaymentSuccessRate=1.0",
        *(arg for name in DEFAULT_PORTS for arg in (f"--{name}-port", "0")),
    ]  # fmt: skip
    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java-here")}
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            command, cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while "READY" not in log_path.read_text(errors="replace"):
            assert proc.poll() is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, "no READY within 120 s"
            time.sleep(0.2)
        for key, value in read_env_file(env_file).items():
            monkeypatch.setenv(key, value)
        aws.reset_clients()
        yield log_path.read_text(errors="replace")
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def test_without_java_moto_stands_in_with_a_loud_warning(javaless_runtime: str) -> None:
    # Given the runtime started where no Java can be found
    output = javaless_runtime
    # Then it warned that the concurrency guarantees are not tested on this set-up
    assert "WARNING: Java was not found" in output
    assert "does NOT serialise concurrent conditional writes" in output
    # And DynamoDB is served by the moto endpoint
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == os.environ["AWS_ENDPOINT_URL"]
    # When an order is written
    store = wiring.dynamo_store()
    store.inventory_put(InventoryItem("fallback-item", 3, Decimal("5.00"), "x"))
    order = order_submit(store=store, customer_name="No Java", items=["fallback-item"])
    deadline = time.monotonic() + 60
    while (current := store.order_get(order.order_id)).status not in FINAL_STATUSES:
        assert time.monotonic() < deadline, f"stuck in {current.status}"
        time.sleep(0.2)
    # Then the pipeline still takes it all the way
    assert current.status == OrderStatus.SHIPPED, current.status_reason
    assert store.inventory_get("fallback-item").stock == 2
