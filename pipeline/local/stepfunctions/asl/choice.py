"""Choice rules: comparisons, type tests, And/Or/Not, and the ASL timestamp format."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pipeline.local.stepfunctions.asl.control import runtime_error
from pipeline.local.stepfunctions.asl.paths import JsonPath, Missing, parse_path
from pipeline.local.stepfunctions.asl.types import InvalidDefinition, UnsupportedFeature
from pipeline.local.stepfunctions.asl.values import is_number

_TIMESTAMP_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(value: Any) -> datetime | None:
    """The datetime of an ASL timestamp (RFC 3339 with uppercase T and Z), or None."""
    if not isinstance(value, str):
        return None
    match = _TIMESTAMP_RE.match(value)
    if not match:
        return None
    fraction = (match.group(2) or "")[:6].ljust(6, "0")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    try:
        return datetime.fromisoformat(f"{match.group(1)}.{fraction}{zone}")
    except ValueError:
        return None


def iso(moment: datetime) -> str:
    """`moment` as Step Functions writes times in the context object (UTC, milliseconds)."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_ORDERINGS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: a == b,
    "LessThan": lambda a, b: a < b,
    "GreaterThan": lambda a, b: a > b,
    "LessThanEquals": lambda a, b: a <= b,
    "GreaterThanEquals": lambda a, b: a >= b,
}


def _string_kind(v: Any) -> Any:
    return v if isinstance(v, str) else _NO


def _number_kind(v: Any) -> Any:
    return v if is_number(v) else _NO


def _timestamp_kind(v: Any) -> Any:
    parsed = parse_timestamp(v)
    return parsed if parsed is not None else _NO


def _boolean_kind(v: Any) -> Any:
    return v if isinstance(v, bool) else _NO


_NO = object()  # a value of the wrong type: the comparison is false, not an error

# operator -> (coerce both sides, compare)
_COMPARISONS: dict[str, tuple[Callable[[Any], Any], Callable[[Any, Any], bool]]] = {}
for _suffix, _compare in _ORDERINGS.items():
    _COMPARISONS[f"String{_suffix}"] = (_string_kind, _compare)
    _COMPARISONS[f"Numeric{_suffix}"] = (_number_kind, _compare)
    _COMPARISONS[f"Timestamp{_suffix}"] = (_timestamp_kind, _compare)
_COMPARISONS["BooleanEquals"] = (_boolean_kind, _ORDERINGS["Equals"])

_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsString": lambda v: isinstance(v, str),
    "IsNumeric": is_number,
    "IsBoolean": lambda v: isinstance(v, bool),
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}

Rule = Callable[[Any, dict[str, Any], str], bool]


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    # "*" matches anything; "\*" is a literal star and "\\" a literal backslash.
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern) and pattern[i + 1] in "*\\":
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL)


def _variable(path: JsonPath, data: Any, ctx: dict[str, Any], state: str) -> Any:
    try:
        return path.get(data, ctx)
    except Missing:
        raise runtime_error(
            state,
            f"Invalid path '{path.text}': The choice state's condition path references "
            "an invalid value.",
        ) from None


def compile_rule(rule: Any, where: str, state: str, *, top: bool) -> Rule:
    """Compile one Choice rule (`top`: a Choices entry, with Next) into a predicate."""
    if not isinstance(rule, dict):
        raise InvalidDefinition(f"{where}: a choice rule must be an object", state=state)
    for unsupported, feature in (("Condition", "JSONata"), ("Assign", "variables (Assign)")):
        if unsupported in rule:
            raise UnsupportedFeature(
                f"{where}: {unsupported} needs {feature}, which is not supported",
                state=state,
                feature=feature,
            )
    if top and "Next" not in rule:
        raise InvalidDefinition(f"{where}: a top-level choice rule needs Next", state=state)
    if not top and "Next" in rule:
        raise InvalidDefinition(f"{where}: only top-level choice rules have Next", state=state)
    keys = set(rule) - {"Comment", "Next"}
    combinators = keys & {"And", "Or", "Not"}
    if combinators:
        if len(keys) != 1:
            raise InvalidDefinition(
                f"{where}: {sorted(keys)} cannot be combined in one rule", state=state
            )
        op = combinators.pop()
        operand = rule[op]
        if op == "Not":
            inner = compile_rule(operand, f"{where}.Not", state, top=False)
            return lambda d, c, s: not inner(d, c, s)
        if not isinstance(operand, list) or not operand:
            raise InvalidDefinition(f"{where}.{op}: must be a non-empty list", state=state)
        rules = [
            compile_rule(r, f"{where}.{op}[{i}]", state, top=False) for i, r in enumerate(operand)
        ]
        if op == "And":
            return lambda d, c, s: all(r(d, c, s) for r in rules)
        return lambda d, c, s: any(r(d, c, s) for r in rules)
    if "Variable" not in keys:
        raise InvalidDefinition(f"{where}: a comparison needs Variable", state=state)
    variable = parse_path(rule["Variable"], f"{where}.Variable", state=state)
    ops = keys - {"Variable"}
    if len(ops) != 1:
        raise InvalidDefinition(
            f"{where}: a rule needs exactly one comparison operator, got {sorted(ops) or 'none'}",
            state=state,
        )
    op = ops.pop()
    return _compile_comparison(op, rule[op], variable, f"{where}.{op}", state)


def _compile_comparison(op: str, operand: Any, variable: JsonPath, where: str, state: str) -> Rule:
    if op == "IsPresent" or op in _TYPE_TESTS:
        if not isinstance(operand, bool):
            raise InvalidDefinition(f"{where}: must be true or false", state=state)
        if op == "IsPresent":
            return lambda d, c, s: variable.exists(d, c) == operand
        test = _TYPE_TESTS[op]
        return lambda d, c, s: test(_variable(variable, d, c, s)) == operand
    if op == "StringMatches":
        if not isinstance(operand, str):
            raise InvalidDefinition(f"{where}: the pattern must be a string", state=state)
        regex = _wildcard_regex(operand)

        def matches(d: Any, c: dict[str, Any], s: str) -> bool:
            value = _variable(variable, d, c, s)
            return isinstance(value, str) and regex.fullmatch(value) is not None

        return matches
    base, by_path = (op[:-4], True) if op.endswith("Path") else (op, False)
    if base not in _COMPARISONS:
        raise InvalidDefinition(f"{where}: unknown comparison operator {op!r}", state=state)
    kind, compare = _COMPARISONS[base]
    if by_path:
        other = parse_path(operand, where, state=state)

        def right(d: Any, c: dict[str, Any], s: str) -> Any:
            return _variable(other, d, c, s)

    else:
        if kind(operand) is _NO:
            raise InvalidDefinition(
                f"{where}: {operand!r} has the wrong type for {op}", state=state
            )
        literal = operand

        def right(d: Any, c: dict[str, Any], s: str) -> Any:
            return literal

    def evaluate(d: Any, c: dict[str, Any], s: str) -> bool:
        left = kind(_variable(variable, d, c, s))
        other_value = kind(right(d, c, s))
        if left is _NO or other_value is _NO:
            return False
        return compare(left, other_value)

    return evaluate
