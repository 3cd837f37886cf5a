"""Payload templates (Parameters, ResultSelector, ``.$`` fields) and intrinsic-call parsing."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from pipeline.local.stepfunctions.asl.control import StatesError, runtime_error
from pipeline.local.stepfunctions.asl.intrinsics import (
    INTRINSIC_NAMES,
    INTRINSICS,
    REFUSED_INTRINSICS,
    IntrinsicError,
    format_template,
)
from pipeline.local.stepfunctions.asl.paths import JsonPath, Missing, parse_path
from pipeline.local.stepfunctions.asl.types import InvalidDefinition, UnsupportedFeature


class Node:
    """A compiled piece of a payload template or an intrinsic argument."""

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        """The node's value for the state's effective input `data` and context object `ctx`."""
        raise NotImplementedError


@dataclass
class Const(Node):
    """A literal; string literals keep their States.Format pieces."""

    value: Any
    # For string literals: the text split at unescaped "{}" (States.Format placeholders).
    parts: tuple[str, ...] | None = None

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        return copy.deepcopy(self.value)


@dataclass
class PathNode(Node):
    """A path (a `.$` field or an intrinsic argument): a copy of what it selects."""

    path: JsonPath
    field_name: str

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        try:
            return copy.deepcopy(self.path.get(data, ctx))
        except Missing:
            raise runtime_error(
                state,
                f"The JSONPath '{self.path.text}' specified for the field '{self.field_name}' "
                "could not be found in the input.",
            ) from None


@dataclass
class Call(Node):
    """An intrinsic function call; its failure is States.IntrinsicFailure."""

    name: str
    args: list[Node]
    text: str

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        values = [arg.eval(data, ctx, state) for arg in self.args]
        try:
            if self.name == "States.Format":
                first = self.args[0]
                parts = first.parts if isinstance(first, Const) else None
                return format_template(values, parts)
            return INTRINSICS[self.name][0](values)
        except IntrinsicError as exc:
            raise StatesError(
                "States.IntrinsicFailure",
                f"The intrinsic function '{self.text}' in state '{state}' failed: {exc}",
            ) from None


@dataclass
class Object(Node):
    """A JSON object of compiled fields, in the template's order."""

    items: list[tuple[str, Node]]

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        return {key: node.eval(data, ctx, state) for key, node in self.items}


@dataclass
class Array(Node):
    """A JSON array of compiled items."""

    items: list[Node]

    def eval(self, data: Any, ctx: dict[str, Any], state: str) -> Any:
        return [node.eval(data, ctx, state) for node in self.items]


_NUMBER_RE = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_FUNCTION_NAME_RE = re.compile(r"States\.[A-Za-z0-9]+")


class _IntrinsicParser:
    """Parses `States.Fn(arg, ...)`; arguments are literals, paths or nested calls."""

    MAX_DEPTH = 10

    def __init__(self, text: str, where: str, state: str | None):
        self.text = text
        self.where = where
        self.state = state
        self.pos = 0

    def fail(self, message: str) -> InvalidDefinition:
        return InvalidDefinition(
            f"{self.where}: {message} in intrinsic {self.text!r} at offset {self.pos}",
            state=self.state,
        )

    def parse(self) -> Call:
        call = self.call(1)
        self.skip_spaces()
        if self.pos != len(self.text):
            raise self.fail("unexpected text after the closing parenthesis")
        return call

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1

    def call(self, depth: int) -> Call:
        if depth > self.MAX_DEPTH:
            raise self.fail(f"more than {self.MAX_DEPTH} nested intrinsic functions")
        start = self.pos
        match = _FUNCTION_NAME_RE.match(self.text, self.pos)
        if not match:
            raise self.fail("expected an intrinsic function name")
        name = match.group()
        if name not in INTRINSIC_NAMES:
            reason = "is not implemented" if name in REFUSED_INTRINSICS else "is not known"
            raise UnsupportedFeature(
                f"{self.where}: intrinsic function {name} {reason} by the local interpreter",
                state=self.state,
                feature=name,
            )
        self.pos = match.end()
        if self.pos >= len(self.text) or self.text[self.pos] != "(":
            raise self.fail("expected '('")
        self.pos += 1
        args: list[Node] = []
        self.skip_spaces()
        if self.pos < len(self.text) and self.text[self.pos] == ")":
            self.pos += 1
        else:
            while True:
                self.skip_spaces()
                args.append(self.argument(depth))
                self.skip_spaces()
                if self.pos >= len(self.text):
                    raise self.fail("missing ')'")
                if self.text[self.pos] == ")":
                    self.pos += 1
                    break
                if self.text[self.pos] != ",":
                    raise self.fail("expected ',' or ')'")
                self.pos += 1
        self.check_arity(name, args)
        return Call(name, args, self.text[start : self.pos])

    def check_arity(self, name: str, args: list[Node]) -> None:
        low, high = (1, None) if name == "States.Format" else INTRINSICS[name][1:]
        if len(args) < low or (high is not None and len(args) > high):
            expected = f"{low}" if low == high else f"{low}..{high if high is not None else 'n'}"
            raise self.fail(f"{name} takes {expected} arguments, got {len(args)}")
        if name == "States.Format" and isinstance(args[0], Const):
            template = args[0]
            if not isinstance(template.value, str) or template.parts is None:
                raise self.fail("States.Format needs a string template")
            if len(template.parts) - 1 != len(args) - 1:
                raise self.fail(
                    f"States.Format template has {len(template.parts) - 1} placeholders "
                    f"but {len(args) - 1} values"
                )
        if name == "States.JsonMerge" and isinstance(args[2], Const) and args[2].value is not False:
            raise self.fail("States.JsonMerge supports only shallow merges (false)")

    def argument(self, depth: int) -> Node:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.fail("missing argument")
        if text[pos] == "'":
            return self.string()
        if text[pos] == "$":
            return self.path()
        if text.startswith("States.", pos):
            return self.call(depth + 1)
        for word, value in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, pos):
                self.pos += len(word)
                return Const(value)
        number = _NUMBER_RE.match(text, pos)
        if number:
            self.pos = number.end()
            literal = number.group()
            return Const(float(literal) if any(c in literal for c in ".eE") else int(literal))
        raise self.fail("expected a string, number, boolean, null, path or function")

    def string(self) -> Const:
        # Escapes: \' \{ \} \\ ; an escaped brace is never a States.Format placeholder.
        self.pos += 1
        parts: list[str] = []
        current: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text):
                raise self.fail("unterminated string literal")
            ch = text[self.pos]
            if ch == "\\" and self.pos + 1 < len(text) and text[self.pos + 1] in "'{}\\":
                current.append(text[self.pos + 1])
                self.pos += 2
            elif ch == "'":
                self.pos += 1
                break
            elif text.startswith("{}", self.pos):
                parts.append("".join(current))
                current = []
                self.pos += 2
            else:
                current.append(ch)
                self.pos += 1
        parts.append("".join(current))
        return Const("{}".join(parts), tuple(parts))

    def path(self) -> PathNode:
        start = self.pos
        depth = 0
        quote: str | None = None
        text = self.text
        while self.pos < len(text):
            ch = text[self.pos]
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "'\"" and depth:
                quote = ch
            elif ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            elif ch in ",)" and depth == 0:
                break
            self.pos += 1
        raw = text[start : self.pos].rstrip()
        return PathNode(parse_path(raw, self.where, state=self.state), self.where)


def compile_expression(text: Any, where: str, state: str | None) -> Node:
    """The value of a `.$` field: a path or an intrinsic function call."""
    if not isinstance(text, str):
        raise InvalidDefinition(f"{where}: the value must be a string", state=state)
    if text.startswith("$"):
        return PathNode(parse_path(text, where, state=state), where.rsplit(".", 1)[-1])
    if text.startswith("States."):
        return _IntrinsicParser(text, where, state).parse()
    raise InvalidDefinition(
        f"{where}: {text!r} is neither a JSONPath nor an intrinsic function", state=state
    )


def compile_template(value: Any, where: str, state: str | None) -> Node:
    """Compile a payload template (Parameters, ResultSelector): `.$` keys are evaluated."""
    if isinstance(value, dict):
        items: list[tuple[str, Node]] = []
        seen: set[str] = set()
        for key, sub in value.items():
            if key.endswith(".$"):
                out_key = key[:-2]
                node = compile_expression(sub, f"{where}.{key}", state)
            else:
                out_key = key
                node = compile_template(sub, f"{where}.{key}", state)
            if out_key in seen:
                raise InvalidDefinition(f"{where}: field {out_key!r} is given twice", state=state)
            seen.add(out_key)
            items.append((out_key, node))
        return Object(items)
    if isinstance(value, list):
        return Array([compile_template(v, f"{where}[{i}]", state) for i, v in enumerate(value)])
    return Const(value)
