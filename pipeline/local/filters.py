"""Lambda event filtering: the pattern language of FilterCriteria, checked and matched locally."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_OPERATORS = {"prefix", "suffix", "anything-but", "numeric", "exists", "equals-ignore-case"}
_MISSING = object()


class UnsupportedPattern(ValueError):
    """A filter pattern uses something this matcher does not implement."""


def compile_pattern(text: str) -> dict[str, Any]:
    """Parse and check a FilterCriteria pattern; raise UnsupportedPattern naming the problem."""
    try:
        pattern = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnsupportedPattern(f"filter pattern is not JSON: {exc.msg}") from exc
    if not isinstance(pattern, dict):
        raise UnsupportedPattern("a filter pattern must be a JSON object")
    _check(pattern, "")
    return pattern


def _check(node: Mapping[str, Any], where: str) -> None:
    for key, value in node.items():
        path = f"{where}.{key}" if where else key
        if isinstance(value, dict):
            _check(value, path)
        elif isinstance(value, list):
            for rule in value:
                if isinstance(rule, dict):
                    unknown = set(rule) - _OPERATORS
                    if unknown or len(rule) != 1:
                        raise UnsupportedPattern(
                            f"{path}: filter operator {', '.join(sorted(rule))} is not supported"
                        )
                    if "numeric" in rule:
                        _check_numeric(rule["numeric"], path)
                elif isinstance(rule, list):
                    raise UnsupportedPattern(f"{path}: nested lists are not a valid pattern")
        else:
            raise UnsupportedPattern(f"{path}: pattern values must be lists or objects")


def _check_numeric(spec: Any, path: str) -> None:
    if not isinstance(spec, list) or len(spec) not in (2, 4):
        raise UnsupportedPattern(f"{path}: numeric takes [op, n] or [op, n, op, n]")
    for op in spec[0::2]:
        if op not in ("=", "<", "<=", ">", ">="):
            raise UnsupportedPattern(f"{path}: numeric operator {op!r} is not supported")
    for bound in spec[1::2]:
        if isinstance(bound, bool) or not isinstance(bound, int | float):
            raise UnsupportedPattern(f"{path}: numeric bound {bound!r} is not a number")


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether `event` satisfies every field of `pattern` (EventBridge/Lambda semantics)."""
    if not isinstance(event, Mapping):
        return False
    for key, rule in pattern.items():
        value = event.get(key, _MISSING)
        if isinstance(rule, dict):
            if value is _MISSING or not matches(rule, value):
                return False
        elif not _matches_any(rule, value):
            return False
    return True


def _matches_any(rules: list[Any], value: Any) -> bool:
    # A list in the event matches when any of its elements matches.
    values = value if isinstance(value, list) else [value]
    for rule in rules:
        if isinstance(rule, dict) and "exists" in rule:
            if (value is not _MISSING) == bool(rule["exists"]):
                return True
            continue
        if value is _MISSING:
            continue
        if any(_match_one(rule, v) for v in values):
            return True
    return False


def _match_one(rule: Any, value: Any) -> bool:
    if not isinstance(rule, dict):
        return (rule == value and type(rule) is type(value)) or _numeric_equal(rule, value)
    ((op, arg),) = rule.items()
    if op == "prefix":
        return isinstance(value, str) and value.startswith(arg)
    if op == "suffix":
        return isinstance(value, str) and value.endswith(arg)
    if op == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(arg).lower()
    if op == "anything-but":
        if isinstance(arg, dict):
            return not _match_one(arg, value)
        excluded = arg if isinstance(arg, list) else [arg]
        return not any(_match_one(e, value) for e in excluded)
    if op == "numeric":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        checks = list(zip(arg[0::2], arg[1::2], strict=True))
        return all(_compare(value, o, n) for o, n in checks)
    return False


def _numeric_equal(rule: Any, value: Any) -> bool:
    numbers = (int, float)
    return (
        isinstance(rule, numbers)
        and isinstance(value, numbers)
        and not isinstance(rule, bool)
        and not isinstance(value, bool)
        and float(rule) == float(value)
    )


def _compare(value: float, op: str, bound: float) -> bool:
    return {
        "=": value == bound,
        "<": value < bound,
        "<=": value <= bound,
        ">": value > bound,
        ">=": value >= bound,
    }[op]


def matches_any_filter(patterns: list[dict[str, Any]], event: Any) -> bool:
    """Lambda keeps a record when any filter matches; with no filters it keeps everything."""
    return not patterns or any(matches(p, event) for p in patterns)
