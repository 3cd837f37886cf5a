"""A compiled state machine: states, retriers and catchers, ready to run."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pipeline.local.stepfunctions.asl.choice import Rule
from pipeline.local.stepfunctions.asl.paths import ROOT, JsonPath
from pipeline.local.stepfunctions.asl.templates import Node


@dataclass
class Retrier:
    """One Retry entry, with the defaults AWS gives fields left out."""

    errors: tuple[str, ...]
    interval: int = 1
    max_attempts: int = 3
    backoff: float = 2.0
    max_delay: int | None = None
    jitter: str = "NONE"

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1 for the first)."""
        seconds = self.interval * self.backoff ** (attempt - 1)
        if self.max_delay is not None:
            seconds = min(seconds, self.max_delay)
        if self.jitter == "FULL":
            seconds = rng.uniform(0, seconds)
        return seconds


@dataclass
class Catcher:
    """One Catch entry."""

    errors: tuple[str, ...]
    next: str
    result_path: JsonPath | None  # None: ResultPath null, keep the input as it was


@dataclass
class State:
    """One compiled state; only the fields of its `kind` (Type) are set."""

    name: str
    kind: str
    next: str | None = None
    input_path: JsonPath | None = ROOT  # None: InputPath null
    output_path: JsonPath | None = ROOT
    parameters: Node | None = None
    result_selector: Node | None = None
    result_path: JsonPath | None = ROOT  # None: ResultPath null
    result: Any = None
    has_result: bool = False
    retriers: list[Retrier] = field(default_factory=list)
    catchers: list[Catcher] = field(default_factory=list)
    resource: str = ""
    integration: str = ""  # "invoke" (lambda:invoke) or "function" (a function ARN)
    timeout: int | None = None
    timeout_path: JsonPath | None = None
    choices: list[tuple[Rule, str]] = field(default_factory=list)
    default: str | None = None
    seconds: int | None = None
    seconds_path: JsonPath | None = None
    timestamp: datetime | None = None
    timestamp_path: JsonPath | None = None
    error: str | None = None
    error_expr: Node | None = None
    cause: str | None = None
    cause_expr: Node | None = None
    branches: list[Machine] = field(default_factory=list)


@dataclass
class Machine:
    """A compiled state machine, or one Parallel branch of it."""

    start_at: str
    states: dict[str, State]
    timeout: int | None = None
