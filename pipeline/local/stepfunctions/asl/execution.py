"""One running execution: its context object, deadline and numbered event log."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pipeline.local.stepfunctions.asl.choice import iso
from pipeline.local.stepfunctions.asl.control import ExecutionTimedOut, Stopped
from pipeline.local.stepfunctions.asl.types import StopSignal


class Clocks(Protocol):
    """The wall clock (event timestamps) and the monotonic clock (deadlines) of an interpreter."""

    now: Callable[[], datetime]
    monotonic: Callable[[], float]


@dataclass
class Trace:
    """The event chain of one thread of control, for previousEventId."""

    last_id: int = 0


class Run:
    """One execution: its context object, deadline and event log."""

    def __init__(
        self,
        interpreter: Clocks,
        context: dict[str, Any],
        deadline: float | None,
        on_event: Callable[[dict[str, Any]], None] | None,
        region: str,
    ):
        self.interpreter = interpreter
        self.context = context
        self.deadline = deadline
        self.on_event = on_event
        self.region = region
        self._lock = threading.Lock()
        self._next_id = 1

    def emit(
        self, trace: Trace, kind: str, details_key: str | None = None, details: Any = None
    ) -> int:
        """Record an event of type `kind` on `trace`'s chain and deliver it; return its id."""
        # One lock for numbering and delivery keeps the sink's order equal to the id order,
        # also when Parallel branches report at the same time.
        with self._lock:
            event: dict[str, Any] = {
                "id": self._next_id,
                "previousEventId": trace.last_id,
                "timestamp": self.interpreter.now(),
                "type": kind,
            }
            if details_key:
                event[details_key] = details
            trace.last_id = self._next_id
            self._next_id += 1
            if self.on_event:
                self.on_event(event)
        return event["id"]

    def remaining(self) -> float | None:
        """Seconds left before the execution's TimeoutSeconds, or None without one."""
        if self.deadline is None:
            return None
        return self.deadline - self.interpreter.monotonic()

    def checkpoint(self, stop: StopSignal) -> None:
        """Raise Stopped or ExecutionTimedOut when the execution must end here."""
        if stop.is_set():
            raise Stopped
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            raise ExecutionTimedOut

    def state_context(self, state: str, entered: datetime, retry_count: int) -> dict[str, Any]:
        """The context object ($$) as a state sees it."""
        return {
            **self.context,
            "State": {"Name": state, "EnteredTime": iso(entered), "RetryCount": retry_count},
        }
