"""The intrinsic functions (States.Format, States.StringToJson, ...) and their argument checks."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Any

from pipeline.local.stepfunctions.asl.values import dumps, is_int, same_json


class IntrinsicError(Exception):
    """An intrinsic function was given arguments it cannot work with."""


def format_template(args: list[Any], template_parts: tuple[str, ...] | None) -> str:
    """States.Format: `template_parts` is the template split at its unescaped placeholders."""
    template = args[0]
    if not isinstance(template, str):
        raise IntrinsicError("the template (first argument) must be a string")
    parts = template_parts if template_parts is not None else tuple(template.split("{}"))
    values = args[1:]
    if len(parts) - 1 != len(values):
        raise IntrinsicError(
            f"the template has {len(parts) - 1} placeholders but {len(values)} values were given"
        )
    out = [parts[0]]
    for value, tail in zip(values, parts[1:], strict=True):
        if isinstance(value, dict | list):
            raise IntrinsicError("values must be strings, numbers, booleans or null")
        out.append(value if isinstance(value, str) else dumps(value))
        out.append(tail)
    return "".join(out)


def _fn_string_to_json(args: list[Any]) -> Any:
    (text,) = args
    if not isinstance(text, str):
        raise IntrinsicError("the argument must be a string")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise IntrinsicError(f"the string is not JSON: {exc}") from exc


def _fn_array_partition(args: list[Any]) -> list[Any]:
    array, size = args
    if not isinstance(array, list) or not is_int(size) or size <= 0:
        raise IntrinsicError("expects an array and a positive integer chunk size")
    return [array[i : i + size] for i in range(0, len(array), size)]


def _fn_array_contains(args: list[Any]) -> bool:
    array, value = args
    if not isinstance(array, list):
        raise IntrinsicError("the first argument must be an array")
    return any(same_json(item, value) for item in array)


def _fn_array_range(args: list[Any]) -> list[int]:
    start, end, step = args
    if not all(is_int(v) for v in args) or step == 0:
        raise IntrinsicError("expects integer start, end and a non-zero integer step")
    values = list(range(start, end + (1 if step > 0 else -1), step))
    if len(values) > 1000:
        raise IntrinsicError("the range would have more than 1000 items")
    return values


def _fn_array_get_item(args: list[Any]) -> Any:
    array, index = args
    if not isinstance(array, list) or not is_int(index) or index < 0:
        raise IntrinsicError("expects an array and a non-negative integer index")
    if index >= len(array):
        raise IntrinsicError(f"index {index} is out of bounds for an array of {len(array)}")
    return array[index]


def _fn_array_unique(args: list[Any]) -> list[Any]:
    (array,) = args
    if not isinstance(array, list):
        raise IntrinsicError("the argument must be an array")
    seen: set[str] = set()
    unique = []
    for item in array:
        key = json.dumps(item, sort_keys=True)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def _fn_base64_encode(args: list[Any]) -> str:
    (text,) = args
    if not isinstance(text, str) or len(text) > 10000:
        raise IntrinsicError("expects a string of at most 10000 characters")
    return base64.b64encode(text.encode()).decode()


def _fn_base64_decode(args: list[Any]) -> str:
    (text,) = args
    if not isinstance(text, str) or len(text) > 10000:
        raise IntrinsicError("expects a string of at most 10000 characters")
    try:
        return base64.b64decode(text, validate=True).decode()
    except ValueError as exc:
        raise IntrinsicError(f"not valid base64 text: {exc}") from exc


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384"}
_HASHES["SHA-512"] = "sha512"


def _fn_hash(args: list[Any]) -> str:
    data, algorithm = args
    if not isinstance(data, str) or len(data) > 10000:
        raise IntrinsicError("expects a string of at most 10000 characters to hash")
    if algorithm not in _HASHES:
        raise IntrinsicError(f"algorithm must be one of {', '.join(_HASHES)}")
    return hashlib.new(_HASHES[algorithm], data.encode()).hexdigest()


def _fn_json_merge(args: list[Any]) -> dict[str, Any]:
    left, right, deep = args
    if not isinstance(left, dict) or not isinstance(right, dict):
        raise IntrinsicError("expects two JSON objects")
    if deep is not False:
        raise IntrinsicError("only shallow merges (third argument false) are supported")
    return {**left, **right}


def _fn_math_add(args: list[Any]) -> int:
    a, b = args
    if not (is_int(a) and is_int(b)):
        raise IntrinsicError("expects two integers")
    return a + b


def _unary(check: Callable[[Any], bool], message: str, fn: Callable[[Any], Any]):
    def call(args: list[Any]) -> Any:
        if not check(args[0]):
            raise IntrinsicError(message)
        return fn(args[0])

    return call


# name -> (implementation, min args, max args or None)
INTRINSICS: dict[str, tuple[Callable[[list[Any]], Any], int, int | None]] = {
    "States.StringToJson": (_fn_string_to_json, 1, 1),
    "States.JsonToString": (lambda args: dumps(args[0]), 1, 1),
    "States.Array": (list, 0, None),
    "States.ArrayPartition": (_fn_array_partition, 2, 2),
    "States.ArrayContains": (_fn_array_contains, 2, 2),
    "States.ArrayRange": (_fn_array_range, 3, 3),
    "States.ArrayGetItem": (_fn_array_get_item, 2, 2),
    "States.ArrayLength": (
        _unary(lambda a: isinstance(a, list), "the argument must be an array", len),
        1,
        1,
    ),
    "States.ArrayUnique": (_fn_array_unique, 1, 1),
    "States.Base64Encode": (_fn_base64_encode, 1, 1),
    "States.Base64Decode": (_fn_base64_decode, 1, 1),
    "States.Hash": (_fn_hash, 2, 2),
    "States.JsonMerge": (_fn_json_merge, 3, 3),
    "States.MathAdd": (_fn_math_add, 2, 2),
    "States.UUID": (lambda args: str(uuid.uuid4()), 0, 0),
}
# States.Format takes the parsed template as well; it is dispatched separately.
INTRINSIC_NAMES = {*INTRINSICS, "States.Format"}
# Functions AWS has and this interpreter refuses rather than guess their edge cases.
REFUSED_INTRINSICS = {"States.StringSplit", "States.MathRandom"}
FAIL_PATH_INTRINSICS = {
    "States.Format",
    "States.JsonToString",
    "States.ArrayGetItem",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.UUID",
}
