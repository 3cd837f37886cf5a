"""The JSONPath subset: $, $.a.b, $.a[0], $['a'] (and the same after $$ for the context object)."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from pipeline.local.stepfunctions.asl.types import InvalidDefinition, UnsupportedFeature


class Missing(Exception):
    """A path selected nothing."""


_NAME_RE = re.compile(r"[^.\[\]\s*?@,:()'\"$]+")
_INDEX_RE = re.compile(r"\[(\d+)\]")
_QUOTED_RE = re.compile(r"\['([^'\\]*)'\]|\[\"([^\"\\]*)\"\]")

_CONTEXT_FIELDS = {
    "Execution": {"Id", "Input", "Name", "RoleArn", "StartTime", "RedriveCount"},
    "State": {"EnteredTime", "Name", "RetryCount"},
    "StateMachine": {"Id", "Name"},
}


@dataclass(frozen=True)
class JsonPath:
    """A parsed path: the steps from the data (or the context object) to the value."""

    text: str
    context: bool
    steps: tuple[str | int, ...]

    def get(self, data: Any, ctx: dict[str, Any]) -> Any:
        """The value the path selects; raises Missing when it selects nothing."""
        value = ctx if self.context else data
        for step in self.steps:
            if isinstance(step, int):
                if not isinstance(value, list) or step >= len(value):
                    raise Missing(self.text)
            elif not isinstance(value, dict) or step not in value:
                raise Missing(self.text)
            value = value[step]
        return value

    def exists(self, data: Any, ctx: dict[str, Any]) -> bool:
        """Whether the path selects a value."""
        try:
            self.get(data, ctx)
        except Missing:
            return False
        return True


# "$": the whole input, the default of InputPath, ResultPath and OutputPath.
ROOT = JsonPath("$", False, ())


def parse_path(text: Any, where: str, *, state: str | None, context_ok: bool = True) -> JsonPath:
    """Parse `text`, refusing what the subset cannot express; `where` names it in errors."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise InvalidDefinition(f"{where}: {text!r} is not a JSONPath", state=state)
    is_context = text.startswith("$$")
    if is_context and not context_ok:
        raise UnsupportedFeature(
            f"{where}: context object paths ({text!r}) are not supported here",
            state=state,
            feature="context path",
        )
    pos = 2 if is_context else 1
    steps: list[str | int] = []
    while pos < len(text):
        name = index = quoted = None
        if text[pos] == "." and not text.startswith("..", pos):
            name = _NAME_RE.match(text, pos + 1)
        elif text[pos] == "[":
            index = _INDEX_RE.match(text, pos)
            quoted = None if index else _QUOTED_RE.match(text, pos)
        match = name or index or quoted
        if match is None:
            raise UnsupportedFeature(
                f"{where}: JSONPath {text!r} goes beyond the supported subset "
                "($, $.a.b, $.a[0], $['a']): no wildcards, filters, slices or recursive descent",
                state=state,
                feature="JSONPath",
            )
        if name:
            steps.append(name.group())
        elif index:
            steps.append(int(index.group(1)))
        else:
            steps.append(match.group(1) if match.group(1) is not None else match.group(2))
        pos = match.end()
    if is_context:
        _check_context_path(text, steps, where, state)
    return JsonPath(text, is_context, tuple(steps))


def _check_context_path(text: str, steps: list[str | int], where: str, state: str | None) -> None:
    if not steps:
        return
    fields = _CONTEXT_FIELDS.get(steps[0]) if isinstance(steps[0], str) else None
    known = fields is not None and (len(steps) == 1 or steps[1] in fields)
    # Only the execution input has structure below its own field.
    deep_ok = len(steps) <= 2 or (steps[0] == "Execution" and steps[1] == "Input")
    if not (known and deep_ok):
        raise UnsupportedFeature(
            f"{where}: context object path {text!r} is not available "
            "(supported: $$.Execution.*, $$.State.*, $$.StateMachine.*)",
            state=state,
            feature="context object",
        )


def put(target: Any, steps: tuple[str | int, ...], value: Any) -> Any:
    """A copy of `target` with `value` placed at `steps`, creating missing objects on the way."""
    if not steps:
        return value
    root = copy.deepcopy(target)
    current = root
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(current, list) or step >= len(current):
                raise Missing(f"[{step}]")
        elif not isinstance(current, dict):
            raise Missing(step)
        elif not last and step not in current:
            current[step] = {}
        if last:
            current[step] = value
        else:
            current = current[step]
    return root
