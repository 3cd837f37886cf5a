"""The local runtime killed with SIGKILL, alone or with all it started, loses and repeats nothing.

Process lifetime first (pipeline/local/emulators.py and runtime.py): a runtime killed with
SIGKILL leaves no process it started for more than a few seconds (the kernel kills the
emulators, its watchdog the workers), a restart on the same ports and data directory keeps the
data, the next start stops whatever a killed runtime did leave, and a second runtime is refused
a data directory in use.

Then the crash test: orders are written at a steady rate to a runtime of its own (some for items
that run short, some with a declining or flaky payment token, some undeliverable), which is
SIGKILLed at seeded moments, alternately the runtime process alone and every process it started,
and restarted on the same ports and data directory each time. After the last restart the
sweepers (pipeline/sweeps.py) run on a schedule, time-scaled like the runtime, as Celery beat
runs them. Then every order must be final within a bound, stock must add up per item, and no
order may be charged, paid or shipped twice. The normal run is short (60 orders, 2 kills); the
long one, with its figures:

    CRASH_ORDERS=200 CRASH_KILLS=4 .venv/bin/python -m pytest tests/e2e/test_crash.py -s -k orders

Other knobs: CRASH_SEED (moments, orders, tokens), CRASH_ORDERS_PER_S (the write rate),
CRASH_SETTLE_S (how long orders may take to finish after the last one is written).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from pipeline import aws, wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.dynamodb.codec import deserialize
from pipeline.adapters.mock_payments import transaction_id_for
from pipeline.config import ENV_PAYMENT_LEDGER_TABLE
from pipeline.domain import InventoryItem, Order
from pipeline.errors import OrderAlreadyExists
from pipeline.local.emulators import REPO_ROOT, port_open
from pipeline.local.envfile import read_env_file
from pipeline.local.runtime import DEFAULT_PORTS
from pipeline.orders import order_submit
from pipeline.statuses import FINAL_STATUSES, OrderStatus
from pipeline.sweeps import (
    DEFAULT_PENDING_MIN_AGE,
    DEFAULT_RUN_MIN_AGE,
    SweepReport,
    sweep_stranded_paid,
    sweep_stranded_pending,
    sweep_stranded_reserved,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.serial]

ORDERS = int(os.environ.get("CRASH_ORDERS", "60"))
KILLS = int(os.environ.get("CRASH_KILLS", "2"))
SEED = os.environ.get("CRASH_SEED", "11")
ORDERS_PER_S = float(os.environ.get("CRASH_ORDERS_PER_S", "4"))
SETTLE_S = float(os.environ.get("CRASH_SETTLE_S", "120"))
TIME_SCALE = 0.02
# Celery beat runs each sweeper every minute, on orders older than 120 s (PENDING) or 300 s
# (portal/settings/base.py, pipeline/sweeps.py): here time-scaled like the runtime, but never
# below IN_FLIGHT_S, as long as an order may wait for one step on a busy 2-core machine (the
# pipeline's own work is not time-scaled). They may still race the stream's backlog after a
# restart: their conditional writes make that harmless, and the checks below would see it.
IN_FLIGHT_S = 10.0
SWEEP_EVERY_S = max(60 * TIME_SCALE, 2.0)
PENDING_MIN_AGE_S = max(DEFAULT_PENDING_MIN_AGE * TIME_SCALE, IN_FLIGHT_S)
RUN_MIN_AGE_S = max(DEFAULT_RUN_MIN_AGE * TIME_SCALE, IN_FLIGHT_S)
START_TIMEOUT_S = 180
GONE_WITHIN_S = 5.0  # "a few seconds": how long a killed runtime's processes may outlive it
# Statuses whose order took stock and keeps it.
HOLDING = frozenset(
    {OrderStatus.RESERVED, OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.MANUAL_INTERVENTION}
)
PAID = frozenset({OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.MANUAL_INTERVENTION})


# -- Processes, as /proc shows them --------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    """A process; (pid, start time) names it even if the pid is reused."""

    pid: int
    start_time: str
    cmdline: str

    def alive(self) -> bool:
        stat = _stat(self.pid)
        return stat is not None and stat[2] == self.start_time and stat[0] not in ("Z", "X")


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a process, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), fields[19]


def _proc(pid: int) -> Proc | None:
    stat = _stat(pid)
    if stat is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        cmdline = ""
    return Proc(pid, stat[2], cmdline)


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _descendants(root: int) -> list[Proc]:
    """Every live process below `root`, however deep."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            children[stat[1]].append(pid)
    found, todo = [], list(children[root])
    while todo:
        pid = todo.pop()
        proc = _proc(pid)
        if proc is not None and proc.alive():
            found.append(proc)
        todo += children[pid]
    return found


def _with_env(entry: str) -> list[Proc]:
    """Live processes (other than this one) whose environment holds `entry`."""
    needle = entry.encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        proc = _proc(pid) if needle in environ else None
        if proc is not None and proc.alive():
            found.append(proc)
    return found


def _kept(env: dict[str, str]) -> dict[str, str]:
    """The environment a restart must keep: all of it but the webhook secrets' key, which the
    local KMS stand-in keeps in memory and makes anew (docs/webhooks.md says what that means)."""
    return {k: v for k, v in env.items() if k != "WEBHOOK_SECRETS_KEY_ID"}


def _kind(proc: Proc) -> str:
    for needle, kind in (
        ("DynamoDBLocal.jar", "java"),
        ("moto.server", "moto"),
        ("pipeline.local.moto_server", "moto"),
        ("pipeline.local.lambda_worker", "worker"),
        ("pipeline.local.emulators import watch", "watchdog"),
    ):
        if needle in proc.cmdline:
            return kind
    return "other"


def _until(condition: Callable[[], Any], what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def _stable_ports() -> dict[str, int]:
    """One free port per endpoint, below the kernel's ephemeral range: a port in that range
    can be taken meanwhile as the local end of any outgoing connection (the runtime's own),
    and a restart on the same ports would then fail for a reason that is not the runtime's."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng, ports = random.SystemRandom(), {}
    while len(ports) < len(DEFAULT_PORTS):
        port = rng.randrange(20000, min(low, 32768))
        if port in ports.values() or port_open(port):
            continue
        try:
            with socket.socket() as sock:
                sock.bind(("0.0.0.0", port))  # DynamoDB Local binds every interface
        except OSError:
            continue
        ports[list(DEFAULT_PORTS)[len(ports)]] = port
    return ports


# -- The runtime, started and killed -------------------------------------------------------------


@dataclass
class Runtime:
    """`python -m pipeline.local` on fixed ports and a data directory, started again and again."""

    workdir: Path
    ports: dict[str, int]
    extra_args: tuple[str, ...] = ()
    proc: subprocess.Popen[bytes] | None = None
    seen: set[Proc] = field(default_factory=set)  # every process it ever started (cleanup)
    starts: list[float] = field(default_factory=list)  # seconds each start took to READY

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def env_file(self) -> Path:
        return self.workdir / "pipeline.env"

    @property
    def log_path(self) -> Path:
        return self.workdir / "runtime.log"

    def command(self, data_dir: Path | None = None) -> list[str]:
        return [
            sys.executable, "-m", "pipeline.local",
            "--template", str(REPO_ROOT / "template.yaml"),
            "--data-dir", str(data_dir or self.data_dir), "--env-file", str(self.env_file),
            *(arg for name, port in self.ports.items() for arg in (f"--{name}-port", str(port))),
            "--quiet", "--time-scale", str(TIME_SCALE), *self.extra_args,
        ]  # fmt: skip

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> float:
        """Start it and wait for READY; return how long that took."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            out.write(f"\n===== test: start {len(self.starts) + 1} =====\n".encode())
            offset = out.tell()
            started = time.monotonic()
            self.proc = subprocess.Popen(
                self.command(), cwd=self.workdir, env=_clean_env(), stdout=out, stderr=out
            )
        proc = self.proc
        _until(
            lambda: "READY" in self.output()[offset:] or proc.poll() is not None,
            "READY",
            START_TIMEOUT_S,
        )
        assert proc.poll() is None, f"the runtime exited:\n{self.output()[offset:]}"
        took = time.monotonic() - started
        self.starts.append(took)
        self.tree()
        return took

    def env(self) -> dict[str, str]:
        return read_env_file(self.env_file)

    def tree(self) -> list[Proc]:
        """The processes below the runtime now."""
        assert self.proc is not None
        found = _descendants(self.proc.pid)
        self.seen.update(found)
        return found

    def warm_tree(self) -> list[Proc]:
        """The processes below the runtime once both emulators and a worker per function run."""

        def warm() -> list[Proc] | None:
            found = self.tree()
            kinds = Counter(_kind(p) for p in found)
            return found if kinds["java"] == kinds["moto"] == 1 and kinds["worker"] >= 6 else None

        return _until(warm, "DynamoDB Local, moto and a worker per function", 60)

    def kill(self, everything: bool) -> list[Proc]:
        """SIGKILL the runtime, or it and every process below it at once; return what was
        below it just before."""
        assert self.proc is not None
        below = self.tree()
        victims = [self.proc.pid, *(p.pid for p in below)] if everything else [self.proc.pid]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):  # a worker may have just exited
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return below

    def stop(self) -> int:
        """SIGTERM, as a clean stop; its exit status."""
        assert self.proc is not None
        self.tree()
        self.proc.terminate()
        return self.proc.wait(timeout=60)

    def cleanup(self) -> None:
        """For a test that failed half-way: nothing this test started outlives it."""
        if self.proc is not None and self.proc.poll() is None:
            self.tree()
            self.proc.kill()
            self.proc.wait(timeout=30)
        for proc in self.seen:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)


def _clean_env() -> dict[str, str]:
    # No endpoint or credential of the test process leaks into the runtime.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def _left_behind(below: list[Proc], endpoint: str) -> list[Proc]:
    """What a killed runtime still has running: the processes that were below it, and those
    that carry its endpoints (workers it started since)."""
    left = {p for p in below if p.alive()} | set(_with_env(endpoint))
    return sorted(left, key=lambda p: p.pid)


def _gone_after_kill(runtime: Runtime, below: list[Proc], endpoint: str) -> float:
    """Seconds until nothing the killed runtime started runs and its ports are closed; fails
    after GONE_WITHIN_S naming what is left."""
    killed = time.monotonic()
    deadline = killed + GONE_WITHIN_S
    while True:
        left = _left_behind(below, endpoint)
        listening = [p for p in runtime.ports.values() if port_open(p)]
        if not left and not listening:
            return time.monotonic() - killed
        assert time.monotonic() < deadline, (
            f"{GONE_WITHIN_S:.0f} s after the SIGKILL still running: "
            f"{[f'{p.pid} {p.cmdline[:100]}' for p in left]}, ports open: {listening}"
        )
        time.sleep(0.05)


def _client_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    aws.reset_clients()


def _ship_one(store: DynamoStore, customer: str) -> tuple[str, str]:
    """An item of its own and an order for two of them, SHIPPED: (item name, order id)."""
    item = f"crash-{uuid.uuid4().hex[:8]}"
    store.inventory_put(InventoryItem(item, 10, Decimal("12.50"), "crash test item"))
    order = order_submit(
        store=store, customer_name=customer, items=[{"ItemName": item, "Quantity": 2}]
    )
    final = _until(
        lambda: (o := store.order_get(order.order_id)).status in FINAL_STATUSES and o,
        f"order {order.order_id} to end",
        90,
    )
    assert final.status == OrderStatus.SHIPPED, final.history
    return item, order.order_id


# -- Process lifetime ----------------------------------------------------------------------------


@dataclass
class FirstKill:
    """A runtime that shipped an order, refused a second runtime its data, then was killed."""

    runtime: Runtime
    pid: int
    item: str
    order: Order
    warm: list[Proc]  # below the runtime once warm, before the second runtime was tried
    alive_meanwhile: list[Proc]  # of those, the ones still running after that try
    second: subprocess.CompletedProcess[str]
    below: list[Proc]  # below the runtime when it was killed
    gone_after: float


@pytest.fixture(scope="module")
def first_kill(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FirstKill]:
    runtime = Runtime(
        tmp_path_factory.mktemp("lifetime"),
        _stable_ports(),
        ("--parameter", "PaymentSuccessRate=1.0"),
    )
    try:
        runtime.start()
        env = runtime.env()
        with pytest.MonkeyPatch.context() as monkeypatch:
            _client_env(monkeypatch, env)
            store = wiring.dynamo_store()
            item, order_id = _ship_one(store, "Ada Lovelace")
            order = store.order_get(order_id)
        warm = runtime.warm_tree()
        # A second runtime on the same data directory, on ports of its own.
        other = Runtime(runtime.workdir / "second", _stable_ports())
        second = subprocess.run(
            other.command(runtime.data_dir),
            cwd=runtime.workdir,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        alive_meanwhile = [p for p in warm if p.alive()]
        assert runtime.proc is not None
        pid = runtime.proc.pid
        below = runtime.kill(everything=False)
        gone_after = _gone_after_kill(
            runtime, below, f"AWS_ENDPOINT_URL_SFN={env['AWS_ENDPOINT_URL_SFN']}"
        )
        yield FirstKill(runtime, pid, item, order, warm, alive_meanwhile, second, below, gone_after)
    finally:
        runtime.cleanup()


def test_sigkill_of_the_runtime_leaves_no_process_it_started(first_kill: FirstKill) -> None:
    # Given a runtime with DynamoDB Local, moto, its watchdog and a warm worker per function
    kinds = Counter(_kind(p) for p in first_kill.below)
    assert (kinds["java"], kinds["moto"], kinds["watchdog"]) == (1, 1, 1), kinds
    assert kinds["worker"] >= 6, kinds
    # When it got SIGKILL (no handler runs, nothing is stopped in order)
    # Then within a few seconds none of them runs and none of its ports is open
    # (_gone_after_kill fails otherwise, naming what is left)
    assert first_kill.gone_after < GONE_WITHIN_S
    print(f"\nall {len(first_kill.below)} processes gone {first_kill.gone_after:.2f} s after")


def test_a_second_runtime_is_refused_a_data_directory_in_use(first_kill: FirstKill) -> None:
    # Given a running runtime, when another one was started on the same data directory
    second = first_kill.second
    # Then that one stopped at once, naming the runtime that uses the directory
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"another local runtime (pid {first_kill.pid}) is using" in second.stderr
    # And the first one lost nothing: every process it had was still running
    assert first_kill.alive_meanwhile == first_kill.warm


def test_a_restart_on_the_same_ports_keeps_the_data_and_stops_what_was_left(
    first_kill: FirstKill, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = first_kill.runtime
    # Given the data directory and ports of the runtime killed with SIGKILL
    # When it starts again on the same ports
    runtime.start()
    env = runtime.env()
    _client_env(monkeypatch, env)
    store = wiring.dynamo_store()
    # Then the shipped order and the stock it left are there, and a new order ships
    assert store.order_get(first_kill.order.order_id) == first_kill.order
    item = store.inventory_get(first_kill.item)
    assert item is not None and item.stock == 8
    _ship_one(store, "Grace Hopper")

    # Given a runtime that dies leaving a process: its watchdog killed first, one worker
    # frozen (it cannot see the end of its request pipe), then the runtime SIGKILLed
    below = runtime.warm_tree()
    (watchdog,) = [p for p in below if _kind(p) == "watchdog"]
    frozen = next(p for p in below if _kind(p) == "worker")
    os.kill(watchdog.pid, signal.SIGKILL)
    os.kill(frozen.pid, signal.SIGSTOP)
    runtime.kill(everything=False)
    time.sleep(2)
    assert frozen.alive(), "the frozen worker was meant to outlive the runtime"
    # When the runtime starts again on that data directory
    runtime.start()
    # Then it stopped the leftover, and said so
    assert not frozen.alive()
    (said,) = [line for line in runtime.output().splitlines() if "left running: [" in line]
    assert f"'{frozen.pid}: " in said, said
    # And a SIGTERM still stops it cleanly, with nothing left
    below = runtime.warm_tree()
    assert runtime.stop() == 0
    _until(lambda: not any(p.alive() for p in below), "every process to stop", GONE_WITHIN_S)
    assert [p for p in runtime.ports.values() if port_open(p)] == []


# -- The crash test ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Planned:
    """One order to write: its id is chosen first, so a write retried after a lost answer
    cannot make a second order."""

    order_id: str
    customer: str
    items: list[dict[str, Any]]
    token: str | None
    address: dict[str, str] | None


def _stock_items(store: DynamoStore, rng: random.Random) -> dict[str, int]:
    """Plenty of three items, and two that run short: some orders must be rejected."""
    run = uuid.uuid4().hex[:8]
    stock = {f"crash-{run}-plenty-{i}": 10 * ORDERS for i in range(3)}
    stock |= {f"crash-{run}-scarce-{i}": max(3, ORDERS // 10) for i in range(2)}
    for name, units in stock.items():
        price = Decimal(rng.randrange(500, 50_000)) / 100
        store.inventory_put(InventoryItem(name, units, price, "crash test"))
    return stock


def _plan(rng: random.Random, stock: dict[str, int]) -> list[Planned]:
    """ORDERS orders in a seeded order: one in ten declined by its token (for plentiful items
    only, so it does reach payment), one in ten on a gateway failing once, one in twenty
    undeliverable (MANUAL_INTERVENTION), the rest approved (PaymentSuccessRate=1.0); one to
    three lines of plentiful items each, and in three orders of ten a scarce one too."""
    plenty = sorted(n for n in stock if "-plenty-" in n)
    scarce = sorted(n for n in stock if "-scarce-" in n)
    kinds = ["decline"] * 2 + ["flaky"] * 2 + ["undeliverable"] + ["plain"] * 15
    kinds = [kinds[i % len(kinds)] for i in range(ORDERS)]
    rng.shuffle(kinds)
    planned = []
    for i, kind in enumerate(kinds):
        names = rng.sample(plenty, rng.randint(1, 3))
        if kind != "decline" and rng.random() < 0.3:
            names.append(rng.choice(scarce))
        token = {"decline": "tok_decline", "flaky": "tok_flaky_1"}.get(kind)
        address = None
        if kind == "undeliverable":
            address = {"Name": f"crash-{i}", "Line1": "1 Nowhere", "City": "Nil"}
            address |= {"PostalCode": "00000", "Country": "GB"}
        lines = [{"ItemName": n, "Quantity": rng.randint(1, 3)} for n in names]
        planned.append(Planned(str(uuid.uuid4()), f"crash-{i:04d}", lines, token, address))
    return planned


class Writer(threading.Thread):
    """Writes the planned orders at a steady rate through order_submit, retrying each one
    (same id) while the runtime is down: a client whose calls fail, not one that gives up."""

    def __init__(self, env: dict[str, str], planned: list[Planned], stop: threading.Event):
        super().__init__(name="crash-writer", daemon=True)
        # Short timeouts and no SDK retries: this loop does the retrying, and sees the outage.
        client = aws.new_client(
            "dynamodb",
            endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"],
            region=env["AWS_REGION"],
            credentials=env,
            config=Config(connect_timeout=1, read_timeout=3, retries={"total_max_attempts": 1}),
        )
        self._store = DynamoStore(env["ORDERS_TABLE_NAME"], env["INVENTORY_TABLE_NAME"], client)
        self._planned = planned
        self._halt = stop
        self.written: list[str] = []
        self.failed_calls = 0
        self.lost_answers = 0  # retries that found their order written (OrderAlreadyExists)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            due = time.monotonic()
            for planned in self._planned:
                time.sleep(max(0.0, due - time.monotonic()))
                self._write(planned)
                self.written.append(planned.order_id)
                # Steady: after an outage the rate resumes, with no burst to catch up.
                due = max(due + 1 / ORDERS_PER_S, time.monotonic())
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _write(self, planned: Planned) -> None:
        retried = False
        while not self._halt.is_set():
            try:
                order_submit(
                    store=self._store,
                    customer_name=planned.customer,
                    items=planned.items,
                    payment_token=planned.token,
                    shipping_address=planned.address,
                    order_id=planned.order_id,
                )
                return
            except OrderAlreadyExists:
                assert retried, f"{planned.order_id} existed before it was written"
                self.lost_answers += 1
                return
            except Exception:  # DynamoDB is down (killed) or starting: try again
                retried = True
                self.failed_calls += 1
                time.sleep(0.2)
        raise RuntimeError("stopped before every order was written")


@dataclass
class Kill:
    """One SIGKILL and the restart after it."""

    number: int
    everything: bool
    after_orders: int
    at_s: float
    processes: int
    gone_after_s: float
    restart_s: float = 0.0

    def describe(self) -> str:
        what = "every process" if self.everything else "the runtime alone"
        return (
            f"#{self.number} {what} at {self.at_s:.1f} s (after order {self.after_orders}, "
            f"{self.processes} processes below it, all gone in {self.gone_after_s:.2f} s), "
            f"READY again in {self.restart_s:.1f} s"
        )


def _settled(store: DynamoStore, order_ids: list[str], final: set[str]) -> bool:
    """Every order final and no workflow running (a compensation settles its refund after the
    order shows PAYMENT_FAILED); `final` keeps the orders seen final, not read again (a final
    status is never left here), so that polling does not load DynamoDB Local."""
    for order_id in order_ids:
        if order_id not in final and store.order_get(order_id).status in FINAL_STATUSES:
            final.add(order_id)
    return len(final) == len(order_ids) and not _running_workflows()


def _running_workflows() -> int:
    machine = wiring.fulfilment_workflow().state_machine_arn
    response = aws.client("stepfunctions").list_executions(
        stateMachineArn=machine, statusFilter="RUNNING", maxResults=100
    )
    return len(response["executions"])


def _sweep() -> list[SweepReport]:
    """One run of the three sweepers, as the Celery tasks call them (operations/tasks.py)."""
    store, queue, workflow = (
        wiring.dynamo_store(),
        wiring.orders_queue(),
        wiring.fulfilment_workflow(),
    )
    return [
        sweep_stranded_pending(store=store, queue=queue, min_age_seconds=PENDING_MIN_AGE_S),
        sweep_stranded_reserved(
            store=store,
            workflow=workflow,
            queue=queue,
            gateway=wiring.payment_gateway(),
            min_age_seconds=RUN_MIN_AGE_S,
        ),
        sweep_stranded_paid(
            store=store,
            workflow=workflow,
            queue=queue,
            min_age_seconds=RUN_MIN_AGE_S,
        ),
    ]


def _ledger(env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """The mock gateway's ledger rows, by the order id in their idempotency key."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    paginator = aws.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=env[ENV_PAYMENT_LEDGER_TABLE], ConsistentRead=True):
        for item in page["Items"]:
            row = deserialize(item)
            rows[str(row["IdempotencyKey"]).rsplit(":", 1)[0]].append(row)
    return rows


def _all_orders(store: DynamoStore) -> dict[str, Order]:
    orders = {}
    paginator = aws.client("dynamodb").get_paginator("scan")
    for page in paginator.paginate(TableName=store.orders_table, ConsistentRead=True):
        for item in page["Items"]:
            order = Order.from_item(deserialize(item))
            orders[order.order_id] = order
    return orders


def _shipment_writes(orders_table: str) -> tuple[dict[str, int], int]:
    """How many writes set or changed each order's Shipment, as the Orders stream saw them,
    and how many records the stream held."""
    streams, dynamodb = aws.client("dynamodbstreams"), aws.client("dynamodb")
    arn = dynamodb.describe_table(TableName=orders_table)["Table"]["LatestStreamArn"]
    writes: Counter[str] = Counter()
    records = 0
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                records += 1
                old = record["dynamodb"].get("OldImage", {}).get("Shipment")
                new = record["dynamodb"].get("NewImage", {}).get("Shipment")
                if new is not None and new != old:
                    writes[record["dynamodb"]["Keys"]["OrderId"]["S"]] += 1
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return dict(writes), records


def _attempts(order: Order) -> list[list[str]]:
    """The order's StatusHistory cut into attempts (each starts with PENDING)."""
    attempts: list[list[str]] = []
    for change in order.history:
        if change.status == OrderStatus.PENDING or not attempts:
            attempts.append([])
        attempts[-1].append(str(change.status))
    return attempts


def _outcome(planned: Planned, order: Order) -> list[str]:
    """The order's end against what its own inputs call for: a crash may delay an outcome,
    never change it (plentiful items never run out; only a declining token fails a payment;
    only an undeliverable address stops a paid order from shipping)."""
    status = order.status
    if status not in FINAL_STATUSES:
        return []  # reported as such
    if status == OrderStatus.REJECTED:
        scarce = any("-scarce-" in line["ItemName"] for line in planned.items)
        return [] if scarce else ["REJECTED, but every item it asked for was plentiful"]
    declined = planned.token == "tok_decline"
    if status == OrderStatus.PAYMENT_FAILED:
        return [] if declined else [f"PAYMENT_FAILED with token {planned.token}"]
    if declined:
        return [f"{status} with a declining token"]
    expected = OrderStatus.MANUAL_INTERVENTION if planned.address else OrderStatus.SHIPPED
    return [] if status == expected else [f"{status}, where its inputs call for {expected}"]


def _problems(
    planned: Planned, order: Order, rows: list[dict[str, Any]], shipment_writes: int
) -> list[str]:
    """What is wrong with one order's end: status, history, charges, refunds, shipment."""
    problems = _outcome(planned, order)
    status = order.status
    if status not in FINAL_STATUSES:
        problems.append(f"not final: {status} ({order.status_reason})")
    for number, statuses in enumerate(_attempts(order), start=1):
        twice = [s for s, n in Counter(statuses).items() if n > 1]
        if twice:
            problems.append(f"attempt {number}: history repeats {twice}")
    approved: Counter[str] = Counter()
    for row in rows:
        key = str(row["IdempotencyKey"])
        if key != f"{order.order_id}:{order.attempt}":
            problems.append(f"ledger row for {key}, but the order is at attempt {order.attempt}")
        if row["TransactionId"] != transaction_id_for(key):
            problems.append(f"ledger row {row['TransactionId']} is not the transaction of {key}")
        if row["Outcome"] == "APPROVED":
            approved[key] += 1
    if any(n > 1 for n in approved.values()):
        problems.append(f"charged more than once per attempt: {dict(approved)}")
    unrefunded = [
        r["TransactionId"] for r in rows if r["Outcome"] == "APPROVED" and not r.get("RefundId")
    ]
    if status == OrderStatus.PAYMENT_FAILED and (unrefunded or order.refund_due):
        problems.append(f"payment failed, unrefunded {unrefunded}, due {order.refund_due}")
    if status in PAID and unrefunded != [(order.payment or {}).get("TransactionId")]:
        problems.append(f"{status} with unrefunded charges {unrefunded}, payment {order.payment}")
    if status == OrderStatus.SHIPPED and not order.shipment:
        problems.append("SHIPPED without a shipment")
    if shipment_writes > 1:
        problems.append(f"Shipment written {shipment_writes} times")
    if status in (OrderStatus.REJECTED, OrderStatus.PAYMENT_FAILED) and order.shipment:
        problems.append(f"{status} with a shipment")
    return problems


def _executions(order_id: str) -> list[str]:
    """Each of the order's workflow executions, with its last events."""
    workflow = wiring.fulfilment_workflow()
    client = aws.client("stepfunctions")
    lines = []
    for page in client.get_paginator("list_executions").paginate(
        stateMachineArn=workflow.state_machine_arn
    ):
        for execution in page["executions"]:
            if not execution["name"].startswith(order_id):
                continue
            events = client.get_execution_history(
                executionArn=execution["executionArn"], reverseOrder=True, maxResults=8
            )["events"]
            last = [f"{e['type']} {_details(e)}" for e in reversed(events)]
            lines.append(f"{execution['name']} {execution['status']}: " + " | ".join(last))
    return lines


def _details(event: dict[str, Any]) -> str:
    details = next((v for k, v in event.items() if k.endswith("Details")), {})
    return json.dumps(details, default=str)[:160]


def _evidence(
    runtime: Runtime, order: Order, rows: list[dict[str, Any]], problems: list[str]
) -> str:
    history = "\n".join(f"      {h.at} {h.status}: {h.reason}" for h in order.history)
    ledger = "\n".join(f"      {json.dumps(r, default=str, sort_keys=True)}" for r in rows)
    executions = "\n".join(f"      {line}" for line in _executions(order.order_id))
    logs = []
    for path in sorted((runtime.workdir / "logs" / "functions").glob("*.log")):
        logs += [
            f"      {path.stem}: {line[:300]}"
            for line in path.read_text(errors="replace").splitlines()
            if order.order_id in line
        ]
    logs += [
        f"      runtime: {line[:300]}"
        for line in runtime.output().splitlines()
        if order.order_id in line
    ]
    return (
        f"order {order.order_id} ({order.status}, attempt {order.attempt}): "
        f"{'; '.join(problems)}\n    StatusHistory:\n{history}\n    ledger:\n{ledger or '      -'}"
        f"\n    extra: {json.dumps(dict(order.extra), default=str, sort_keys=True)}"
        f"\n    executions:\n{executions or '      -'}\n    logs:\n" + "\n".join(logs[-30:])
    )


@pytest.fixture
def crash_runtime(tmp_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(
        tmp_path,
        _stable_ports(),
        ("--parameter", "PaymentSuccessRate=1.0", "--function-env", f"PAYMENT_RANDOM_SEED={SEED}"),
    )
    try:
        yield runtime
    finally:
        runtime.cleanup()


def test_orders_survive_sigkills_of_the_runtime_and_of_everything_it_started(
    crash_runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = crash_runtime
    rng = random.Random(SEED)
    # Given a runtime on a data directory, items in stock (two of them scarce), and a plan
    runtime.start()
    env = runtime.env()
    _client_env(monkeypatch, env)
    store = wiring.dynamo_store()
    stock = _stock_items(store, rng)
    planned = _plan(rng, stock)
    # The moments: after these orders are written, and a moment more
    kill_after = sorted(rng.sample(range(ORDERS // 10, ORDERS * 9 // 10), KILLS))
    jitters = [rng.uniform(0.0, 1.5) for _ in kill_after]
    endpoint = f"AWS_ENDPOINT_URL_SFN={env['AWS_ENDPOINT_URL_SFN']}"

    # When orders are written at a steady rate while the runtime is killed and restarted
    stop = threading.Event()
    writer = Writer(env, planned, stop)
    began = time.monotonic()
    writer.start()
    kills: list[Kill] = []
    try:
        for number, (after, jitter) in enumerate(zip(kill_after, jitters, strict=True), 1):
            _until(lambda a=after: len(writer.written) >= a or not writer.is_alive(), "orders", 600)
            time.sleep(jitter)
            everything = number % 2 == 0  # alternately the runtime alone and everything
            at = time.monotonic() - began
            below = runtime.kill(everything=everything)
            kill = Kill(number, everything, len(writer.written), at, len(below), 0.0)
            # Then, each time, nothing it started is left (and the ports are free) within seconds
            kill.gone_after_s = _gone_after_kill(runtime, below, endpoint)
            # And it starts again on the same ports and data directory, with the same resources
            kill.restart_s = runtime.start()
            assert _kept(runtime.env()) == _kept(env)
            kills.append(kill)

        # And once it runs for the last time, the sweepers run on their schedule until every
        # order is final and no workflow runs (or the bound is reached)
        reports: list[SweepReport] = []
        next_sweep = time.monotonic()
        written_at: float | None = None
        settled_at: float | None = None
        final: set[str] = set()
        while settled_at is None:
            if time.monotonic() >= next_sweep:
                reports += _sweep()
                next_sweep += SWEEP_EVERY_S
            if not writer.is_alive():
                written_at = written_at or time.monotonic()
                if time.monotonic() - written_at > SETTLE_S:
                    break
                if _settled(store, writer.written, final):
                    settled_at = time.monotonic()
            time.sleep(0.5)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert writer.error is None, repr(writer.error)
    assert len(writer.written) == ORDERS
    wall = time.monotonic() - began

    orders = _all_orders(store)
    ledger = _ledger(env)
    shipment_writes, stream_records = _shipment_writes(store.orders_table)
    current = {name: store.inventory_get(name) for name in stock}
    by_status = Counter(str(o.status) for o in orders.values() if o.order_id in set(writer.written))
    swept: Counter[str] = Counter()
    for report in reports:
        for done in report.done:
            swept[f"{report.status}:{done.action}"] += 1
        if report.failed:
            swept[f"{report.status}:failed"] += len(report.failed)
    settle = (
        f"{settled_at - written_at:.1f} s"
        if settled_at and written_at
        else f"not within {SETTLE_S:.0f} s"
    )
    print(
        f"\n{ORDERS} orders at {ORDERS_PER_S:g}/s, {KILLS} SIGKILLs, seed {SEED}: "
        f"{wall:.1f} s in all; settled {settle} after the last order was written\n"
        f"  orders by final status: {dict(sorted(by_status.items()))}\n"
        f"  kills:\n"
        + "".join(f"    {k.describe()}\n" for k in kills)
        + f"  starts (s to READY): {[round(s, 1) for s in runtime.starts]}\n"
        f"  writer: {writer.failed_calls} calls failed while it was down, "
        f"{writer.lost_answers} answers lost\n"
        f"  sweeper runs: {len(reports) // 3}, actions: {dict(sorted(swept.items())) or 'none'}\n"
        f"  stream records read: {stream_records}"
    )

    # Then every order the writer wrote exists, once, and no other order does
    assert sorted(orders) == sorted(writer.written)
    plan = {p.order_id: p for p in planned}
    # And every order ended as its inputs call for, none charged, paid or shipped twice, every
    # failed charge refunded
    problems = {
        oid: p
        for oid, o in orders.items()
        if (p := _problems(plan[oid], o, ledger[oid], shipment_writes.get(oid, 0)))
    }
    stray = sorted(set(ledger) - set(orders))
    assert not problems and not stray, (
        f"{len(problems)} order(s) wrong, ledger rows of unknown orders {stray}:\n"
        + "\n".join(_evidence(runtime, orders[o], ledger[o], p) for o, p in problems.items())
    )
    # And every unit is on the shelf or held by an order that took it and keeps it
    held: Counter[str] = Counter()
    for order in orders.values():
        if order.status in HOLDING:
            for line in (order.reservation or {}).get("Lines", []):
                held[line["ItemName"]] += int(line["Quantity"])
    for name, initial in stock.items():
        row = current[name]
        assert row is not None
        assert row.stock + held[name] == initial, (
            f"{name}: {initial} at the start, {row.stock} now, {held[name]} held by orders"
        )
    # And the run was what it claims: rejections, declines and shipments all happened
    assert by_status[OrderStatus.REJECTED] and by_status[OrderStatus.PAYMENT_FAILED], by_status
    assert by_status[OrderStatus.SHIPPED], by_status
    assert len(kills) == KILLS
