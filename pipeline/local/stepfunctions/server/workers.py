"""The pool of threads that runs queued executions and records their events and outcomes."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline.local.stepfunctions.asl import (
    FAILED,
    RUNNING,
    ExecutionResult,
    InvalidDefinition,
    Invoke,
    StateMachineInterpreter,
    UnsupportedFeature,
)
from pipeline.local.stepfunctions.server.store import Live, Store, describe_row

log = logging.getLogger(__name__)


def _from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class ExecutionWorkers:
    """A bounded pool: at most `size` executions run at once, the others wait their turn."""

    def __init__(
        self,
        store: Store,
        *,
        invoke: Invoke,
        size: int,
        time_scale: float,
        on_finished: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        """Run executions of `store` with `invoke`; `on_finished` observes each outcome."""
        self._store = store
        self._invoke = invoke
        self._size = size
        self._time_scale = time_scale
        self._on_finished = on_finished
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []

    def reset(self) -> None:
        """Start from an empty queue (before start(), holding the store's lock)."""
        self._queue = queue.Queue()

    def start(self, resumed: list[str]) -> None:
        """Start the threads, with the `resumed` executions first in the queue."""
        self._threads = [
            threading.Thread(target=self._worker, name=f"sfn-exec-{i}", daemon=True)
            for i in range(self._size)
        ]
        for thread in self._threads:
            thread.start()
        for arn in resumed:
            self._queue.put(arn)

    def submit(self, arn: str) -> None:
        """Queue the execution `arn` (a live RUNNING row) to run."""
        self._queue.put(arn)

    def stop(self, timeout: float) -> None:
        """Let each thread leave after its current execution; wait up to `timeout` in all."""
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = []

    def notify(self, described: dict[str, Any]) -> None:
        """Tell the observer an execution ended: DescribeExecution fields, dates as datetimes."""
        if self._on_finished is None:
            return
        execution = dict(described)
        for key in ("startDate", "stopDate"):
            if key in execution:
                execution[key] = _from_epoch(execution[key])
        try:
            self._on_finished(execution)
        except Exception:
            # A failing observer (metrics) must not undo or block the recorded outcome.
            log.exception("on_execution_finished failed for %s", described["executionArn"])

    def _worker(self) -> None:
        while True:
            arn = self._queue.get()
            if arn is None:
                return
            try:
                self._run_execution(arn)
            except Exception:
                log.exception("execution %s could not be run", arn)

    def _run_execution(self, arn: str) -> None:
        store = self._store
        with store.lock:
            if not store.accepting or store.db is None:
                return
            live = store.live.get(arn)
            row = store.db.execute("SELECT * FROM executions WHERE arn = ?", (arn,)).fetchone()
            if live is None or row is None or row["status"] != RUNNING:
                return

        def record(event: dict[str, Any]) -> None:
            self._record_event(arn, live, event)

        try:
            interpreter = StateMachineInterpreter(
                json.loads(row["definition"]), invoke=self._invoke, time_scale=self._time_scale
            )
        except (InvalidDefinition, UnsupportedFeature) as exc:
            # A definition stored by another version of this module that this one refuses.
            result = ExecutionResult(FAILED, error="States.Runtime", cause=str(exc))
        else:
            result = interpreter.run(
                json.loads(row["input"]),
                execution_arn=arn,
                state_machine_arn=row["machine_arn"],
                role_arn=row["role_arn"],
                start_time=_from_epoch(row["start_date"]),
                on_event=record,
                stop=live.stop,
            )
        self._finish(arn, live, result)

    def _record_event(self, arn: str, live: Live, event: dict[str, Any]) -> None:
        store = self._store
        with store.lock:
            if not store.accepting or store.db is None or live.finalised:
                return
            body = dict(event)
            body["timestamp"] = event["timestamp"].timestamp()
            with store.db:
                store.db.execute(
                    "INSERT OR REPLACE INTO history (execution_arn, id, body) VALUES (?, ?, ?)",
                    (arn, event["id"], json.dumps(body)),
                )

    def _finish(self, arn: str, live: Live, result: ExecutionResult) -> None:
        store = self._store
        with store.lock:
            if not store.accepting or store.db is None or live.finalised:
                return
            live.finalised = True
            store.live.pop(arn, None)
            output = _compact(result.output) if result.status == "SUCCEEDED" else None
            with store.db:
                store.db.execute(
                    "UPDATE executions SET status = ?, output = ?, error = ?, cause = ?,"
                    " stop_date = ? WHERE arn = ?",
                    (result.status, output, result.error, result.cause, time.time(), arn),
                )
            row = store.db.execute("SELECT * FROM executions WHERE arn = ?", (arn,)).fetchone()
            described = describe_row(row)
        self.notify(described)
        store.purge_if_deleting(row["machine_arn"])
