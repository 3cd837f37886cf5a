"""`python -m pipeline.local` as a process: signals stop all it started; data outlives restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.exceptions import ClientError

from pipeline.adapters.dynamodb import DynamoStore
from pipeline.config import STACK_OUTPUT_ENV
from pipeline.domain import InventoryItem
from pipeline.local.emulators import REPO_ROOT, port_open
from pipeline.local.envfile import read_env_file
from pipeline.local.runtime import DEFAULT_PORTS
from pipeline.orders import order_submit
from pipeline.statuses import OrderStatus

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TIME_SCALE = "0.02"
START_TIMEOUT_S = 180
ORDER_TIMEOUT_S = 90
STOP_TIMEOUT_S = 60
FUNCTIONS = 8  # template.yaml's functions: one warm worker each after start-up


# -- Processes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A process as /proc shows it; (pid, start time) names it even if the pid is reused."""

    pid: int
    start_time: str
    cmdline: str


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), fields[19]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _descendants(root: int) -> list[Proc]:
    """Every process below `root`, however deep."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            children.setdefault(stat[1], []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        stat = _stat(pid)
        if stat is not None:
            found.append(Proc(pid, stat[2], _cmdline(pid)))
        todo += children.get(pid, [])
    return found


def _alive(proc: Proc) -> bool:
    stat = _stat(proc.pid)
    return stat is not None and stat[2] == proc.start_time and stat[0] != "Z"


def _processes_with_env(entry: str) -> list[str]:
    """Processes (other than this one) whose environment holds `entry`, e.g. an endpoint."""
    needle = entry.encode() + b"\0"
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes() + b"\0"
        except OSError:
            continue
        if needle in environ:
            found.append(f"{pid}: {_cmdline(pid)}")
    return found


def _until(condition: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


# -- The runtime as a subprocess ----------------------------------------------------------------


@dataclass
class Stopped:
    """How a stop went."""

    signal: str
    returncode: int
    seconds: float
    children: list[Proc]
    survivors: list[Proc]
    open_ports: list[int]
    strays: list[str]  # processes still carrying the runtime's endpoints in their environment


@dataclass
class Runtime:
    """One `python -m pipeline.local` process."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    env_file: Path
    env: dict[str, str] = field(default_factory=dict)
    stopped: Stopped | None = None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def printed_env(self) -> dict[str, str]:
        """The KEY=value lines printed between 'Clients need:' and the env file's name."""
        text = self.output()
        block = text[text.index("Clients need:") : text.index("(also written to")]
        pairs = [line.strip().partition("=") for line in block.splitlines()[1:] if "=" in line]
        return {key: value for key, _, value in pairs}

    def ports(self) -> list[int]:
        names = [k for k in self.env if k.startswith("AWS_ENDPOINT_URL")]
        return sorted({urlsplit(self.env[k]).port for k in names if urlsplit(self.env[k]).port})

    def client(self, service: str) -> Any:
        """A client configured from the env file alone, as the portal and scripts are."""
        endpoint = {
            "dynamodb": "AWS_ENDPOINT_URL_DYNAMODB",
            "stepfunctions": "AWS_ENDPOINT_URL_SFN",
        }.get(service, "AWS_ENDPOINT_URL")
        return boto3.client(
            service,
            endpoint_url=self.env[endpoint],
            region_name=self.env["AWS_REGION"],
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
        )

    def store(self) -> DynamoStore:
        return DynamoStore(
            self.env["ORDERS_TABLE_NAME"],
            self.env["INVENTORY_TABLE_NAME"],
            client=self.client("dynamodb"),
        )

    def children_when_warm(self) -> list[Proc]:
        """The runtime's child processes once DynamoDB Local, moto and every worker are up."""

        def warm() -> list[Proc] | None:
            found = _descendants(self.proc.pid)
            kinds = [_kind(p) for p in found]
            complete = (
                kinds.count("java") == 1
                and kinds.count("moto") == 1
                and kinds.count("worker") >= FUNCTIONS
            )
            return found if complete else None

        return _until(warm, "DynamoDB Local, moto and one worker per function", 60)

    def stop(self, signum: signal.Signals) -> Stopped:
        """Send `signum` once; wait for the exit and for everything started to be gone."""
        if self.stopped is not None:
            return self.stopped
        children = self.children_when_warm()
        started = time.monotonic()
        self.proc.send_signal(signum)
        try:
            returncode = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            returncode = self.proc.wait()
        seconds = time.monotonic() - started
        # Orphans would be reaped by init a moment after their parent exits: give them that.
        deadline = time.monotonic() + 5
        while any(_alive(p) for p in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.stopped = Stopped(
            signal=signum.name,
            returncode=returncode,
            seconds=seconds,
            children=children,
            survivors=[p for p in children if _alive(p)],
            open_ports=[p for p in self.ports() if port_open(p)],
            strays=_processes_with_env(f"AWS_ENDPOINT_URL_SFN={self.env['AWS_ENDPOINT_URL_SFN']}"),
        )
        for proc in self.stopped.survivors:  # reported above; not left to run after the test
            if _alive(proc):
                os.kill(proc.pid, signal.SIGKILL)
        return self.stopped

    def kill(self) -> None:
        """Last resort for a test that failed half-way: no process outlives the module."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _kind(proc: Proc) -> str:
    if "DynamoDBLocal.jar" in proc.cmdline:
        return "java"
    if "moto.server" in proc.cmdline or "pipeline.local.moto_server" in proc.cmdline:
        return "moto"
    if "pipeline.local.lambda_worker" in proc.cmdline:
        return "worker"
    return "other"


def _start(workdir: Path, *args: str) -> Runtime:
    """Start the runtime on free ports, from `workdir`, and wait for READY."""
    workdir.mkdir(parents=True, exist_ok=True)
    env_file, log_path = workdir / "pipeline.env", workdir / "runtime.log"
    command = [
        sys.executable, "-m", "pipeline.local",
        "--template", str(REPO_ROOT / "template.yaml"),
        *(arg for name in DEFAULT_PORTS for arg in (f"--{name}-port", "0")),
        "--quiet", "--env-file", str(env_file), "--time-scale", TIME_SCALE,
        "--parameter", "PaymentSuccessRate=1.0",
        *args,
    ]  # fmt: skip
    # A clean environment: no endpoint or credential of the test process leaks into the runtime.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    with log_path.open("ab") as out:
        proc = subprocess.Popen(command, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT)
    runtime = Runtime(proc, workdir, log_path, env_file)
    try:
        _until(
            lambda: "READY" in runtime.output() or proc.poll() is not None, "READY", START_TIMEOUT_S
        )
        assert proc.poll() is None, f"the runtime exited:\n{runtime.output()}"
    except BaseException:
        runtime.kill()
        raise
    runtime.env = read_env_file(env_file)
    return runtime


def _assert_stopped_cleanly(stopped: Stopped) -> None:
    kinds = sorted(_kind(p) for p in stopped.children)
    assert kinds.count("java") == 1 and kinds.count("moto") == 1, kinds
    assert kinds.count("worker") >= FUNCTIONS, kinds
    assert stopped.returncode == 0
    assert stopped.seconds < 30, stopped.seconds
    assert stopped.survivors == [], stopped.survivors
    assert stopped.open_ports == []
    assert stopped.strays == []


# -- In memory: Ctrl-C, the env file, nothing on disk --------------------------------------------


@pytest.fixture(scope="module")
def in_memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """A runtime started with --in-memory (and a --data-dir it must then leave alone)."""
    workdir = tmp_path_factory.mktemp("in-memory")
    runtime = _start(workdir, "--in-memory", "--data-dir", str(workdir / "data"))
    try:
        yield runtime
    finally:
        runtime.kill()


def test_the_env_file_holds_everything_the_runtime_prints(in_memory: Runtime) -> None:
    # Given a started runtime, what it printed for clients and the env file it wrote
    printed, written = in_memory.printed_env(), read_env_file(in_memory.env_file)
    # Then the file holds exactly what was printed
    assert written == printed
    # And every setting a client needs: endpoints, region, credentials, resource names
    endpoints = [
        "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
        "AWS_ENDPOINT_URL_SFN", "AWS_ENDPOINT_URL_LAMBDA",
    ]  # fmt: skip
    required = [
        *endpoints, "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "ORDERS_TABLE_NAME", "INVENTORY_TABLE_NAME", "ORDERS_QUEUE_URL",
        "ORDERS_DLQ_URL", "STATE_MACHINE_ARN", *STACK_OUTPUT_ENV.values(),
    ]  # fmt: skip
    missing = [key for key in required if not written.get(key)]
    assert missing == []
    for key in endpoints:
        url = urlsplit(written[key])
        assert (url.scheme, url.hostname) == ("http", "127.0.0.1"), key
        assert url.port and url.port not in DEFAULT_PORTS.values(), key  # --*-port 0 was used
    assert written["AWS_REGION"] == written["AWS_DEFAULT_REGION"]
    for key in ("ORDERS_QUEUE_URL", "ORDERS_DLQ_URL"):
        assert written[key].startswith(written["AWS_ENDPOINT_URL"] + "/"), key
    assert written["STATE_MACHINE_ARN"].startswith(f"arn:aws:states:{written['AWS_REGION']}:")


def test_sigint_stops_every_process_it_started(in_memory: Runtime) -> None:
    # Given a started runtime with DynamoDB Local, moto and warm workers as child processes
    # When it gets SIGINT (Ctrl-C)
    stopped = in_memory.stop(signal.SIGINT)
    # Then it exits 0, every child is gone and no port it used is open
    _assert_stopped_cleanly(stopped)
    assert "SIGINT: stopping the local runtime" in in_memory.output()


def test_in_memory_leaves_nothing_on_disk_but_the_env_file(in_memory: Runtime) -> None:
    # Given a runtime started with --in-memory from its own working directory
    # When it has stopped
    in_memory.stop(signal.SIGINT)
    # Then the working directory holds only the env file and our capture of its output
    assert sorted(p.name for p in in_memory.workdir.iterdir()) == ["pipeline.env", "runtime.log"]
    assert "Data: in memory." in in_memory.output()


# -- On disk: SIGTERM, restart, --fresh ---------------------------------------------------------


@dataclass
class FirstLife:
    """What a runtime with a data directory left behind after one order and a SIGTERM."""

    workdir: Path
    data_dir: Path
    order_id: str
    order: dict[str, Any]
    inventory: list[dict[str, Any]]
    execution: dict[str, Any]
    processing_log: list[str]  # OrderProcessing's log lines about the order
    stopped: Stopped


def _scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += page["Items"]
    return sorted(items, key=json.dumps)


def _execution_arn(state_machine_arn: str, name: str) -> str:
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"


def _lines_about(path: Path, order_id: str) -> list[str]:
    return [line for line in path.read_text().splitlines() if order_id in line]


def _submit_and_ship(runtime: Runtime, customer: str) -> str:
    store = runtime.store()
    item = f"lifecycle-{uuid.uuid4().hex[:8]}"
    store.inventory_put(InventoryItem(item, 10, Decimal("12.50"), "lifecycle test item"))
    order = order_submit(
        store=store, customer_name=customer, items=[{"ItemName": item, "Quantity": 2}]
    )
    shipped = _until(
        lambda: store.order_get(order.order_id).status == OrderStatus.SHIPPED,
        f"order {order.order_id} to ship",
        ORDER_TIMEOUT_S,
    )
    assert shipped
    return order.order_id


def _processing_log(workdir: Path) -> Path:
    (path,) = (workdir / "logs" / "functions").glob("*OrderProcessing*.log")
    return path


@pytest.fixture(scope="module")
def first_life(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstLife]:
    """A runtime with a data directory: inventory, one order SHIPPED, then SIGTERM."""
    workdir = tmp_path_factory.mktemp("on-disk")
    data_dir = workdir / "data"
    runtime = _start(workdir, "--data-dir", str(data_dir))
    try:
        order_id = _submit_and_ship(runtime, "Grace Hopper")
        dynamodb, sfn = runtime.client("dynamodb"), runtime.client("stepfunctions")
        arn = _execution_arn(runtime.env["STATE_MACHINE_ARN"], order_id)
        # The order is SHIPPED by the ShipOrder task; its workflow reaches its Succeed state a
        # moment later (longer on a busy machine), so wait for that rather than race it.
        execution = _until(
            lambda: (e := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and e,
            "the order's workflow to finish",
            30,
        )
        assert execution["status"] == "SUCCEEDED"
        life = FirstLife(
            workdir=workdir,
            data_dir=data_dir,
            order_id=order_id,
            order=dynamodb.get_item(
                TableName=runtime.env["ORDERS_TABLE_NAME"],
                Key={"OrderId": {"S": order_id}},
                ConsistentRead=True,
            )["Item"],
            inventory=_scan(dynamodb, runtime.env["INVENTORY_TABLE_NAME"]),
            execution=execution,
            processing_log=_lines_about(_processing_log(workdir), order_id),
            stopped=runtime.stop(signal.SIGTERM),
        )
    finally:
        runtime.kill()
    yield life


def test_sigterm_stops_every_process_it_started(first_life: FirstLife) -> None:
    # Given a runtime that ran an order through every function
    # When it got SIGTERM (what `kill`, systemd and docker send)
    stopped = first_life.stopped
    # Then it exited 0, every child is gone and no port it used is open
    _assert_stopped_cleanly(stopped)
    assert stopped.signal == "SIGTERM"


def test_data_survives_a_restart_and_old_orders_are_not_processed_again(
    first_life: FirstLife, tmp_path: Path
) -> None:
    # Given the data directory of a runtime that shipped an order, and its stream checkpoint
    checkpoints = json.loads((first_life.data_dir / "stream-checkpoints.json").read_text())
    assert checkpoints
    assert first_life.processing_log  # OrderProcessing logged its work on the order
    # When a new runtime starts on the same data directory (its own env file and output)
    runtime = _start(tmp_path, "--data-dir", str(first_life.data_dir))
    try:
        dynamodb, sfn = runtime.client("dynamodb"), runtime.client("stepfunctions")
        # Then the inventory and the shipped order are as they were
        assert _scan(dynamodb, runtime.env["INVENTORY_TABLE_NAME"]) == first_life.inventory
        # And the workflow execution is still there, its name still taken
        arn = _execution_arn(runtime.env["STATE_MACHINE_ARN"], first_life.order_id)
        execution = sfn.describe_execution(executionArn=arn)
        assert (execution["status"], execution["input"]) == (
            "SUCCEEDED",
            first_life.execution["input"],
        )
        assert execution["startDate"] == first_life.execution["startDate"]
        with pytest.raises(ClientError) as again:
            sfn.start_execution(
                stateMachineArn=runtime.env["STATE_MACHINE_ARN"],
                name=first_life.order_id,
                input=first_life.execution["input"],
            )
        assert again.value.response["Error"]["Code"] == "ExecutionAlreadyExists"
        # And when a new order has gone all the way through, the stream has been read past the
        # old order's records: it was not processed again, its history is unchanged
        _submit_and_ship(runtime, "Katherine Johnson")
        order = dynamodb.get_item(
            TableName=runtime.env["ORDERS_TABLE_NAME"],
            Key={"OrderId": {"S": first_life.order_id}},
            ConsistentRead=True,
        )["Item"]
        assert order == first_life.order
        log = _processing_log(first_life.workdir)
        assert _lines_about(log, first_life.order_id) == first_life.processing_log
        # And a SIGTERM stops this one cleanly too
        _assert_stopped_cleanly(runtime.stop(signal.SIGTERM))
    finally:
        runtime.kill()


def test_fresh_starts_from_empty(first_life: FirstLife, tmp_path: Path) -> None:
    # Given a copy of the data directory of a runtime that shipped an order
    data_dir = tmp_path / "data"
    shutil.copytree(first_life.data_dir, data_dir)
    # When a runtime starts on it with --fresh
    runtime = _start(tmp_path, "--data-dir", str(data_dir), "--fresh")
    try:
        dynamodb, sfn = runtime.client("dynamodb"), runtime.client("stepfunctions")
        # Then there is no inventory, no order, no execution and no stream position
        assert _scan(dynamodb, runtime.env["INVENTORY_TABLE_NAME"]) == []
        assert _scan(dynamodb, runtime.env["ORDERS_TABLE_NAME"]) == []
        executions = sfn.list_executions(stateMachineArn=runtime.env["STATE_MACHINE_ARN"])
        assert executions["executions"] == []
        assert not (data_dir / "stream-checkpoints.json").exists()
        _assert_stopped_cleanly(runtime.stop(signal.SIGINT))
    finally:
        runtime.kill()
