"""Unit tests of pipeline.local.filters: Lambda FilterCriteria patterns, checked and matched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.local.cfn import load_template
from pipeline.local.filters import (
    UnsupportedPattern,
    compile_pattern,
    matches,
    matches_any_filter,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EVENTS = Path(__file__).resolve().parents[1] / "events"


@pytest.fixture(scope="module")
def stream_patterns() -> list[dict[str, Any]]:
    """The OrderProcessing stream mapping's FilterCriteria, compiled from template.yaml."""
    template = load_template(REPO_ROOT / "template.yaml")
    function = template["Resources"]["OrderProcessingFunction"]
    filters = function["Properties"]["Events"]["OrdersStream"]["Properties"]["FilterCriteria"]
    return [compile_pattern(f["Pattern"]) for f in filters["Filters"]]


@pytest.fixture(scope="module")
def stream_records() -> dict[str, dict[str, Any]]:
    """Stream records of an order's life, as Lambda delivers them (attribute-value images)."""
    return json.loads((EVENTS / "dynamodb_stream_transitions.json").read_text())


# -- the template's stream filters ------------------------------------------------------------


def test_the_template_has_the_two_stream_patterns(stream_patterns: list[dict[str, Any]]) -> None:
    # Given the compiled patterns of template.yaml
    # When they are inspected
    # Then one takes new PENDING orders and one orders modified back to PENDING
    assert stream_patterns == [
        {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"Status": {"S": ["PENDING"]}}}},
        {
            "eventName": ["MODIFY"],
            "dynamodb": {
                "NewImage": {"Status": {"S": ["PENDING"]}},
                "OldImage": {"Status": {"S": [{"anything-but": ["PENDING"]}]}},
            },
        },
    ]


@pytest.mark.parametrize(
    ("case", "kept"),
    [
        ("insert_pending", True),
        ("modify_rejected_to_pending", True),
        ("modify_payment_failed_to_pending", True),
        ("modify_pending_to_reserved", False),
        ("modify_reserved_to_paid", False),
        ("modify_pending_to_rejected", False),
        ("modify_pending_to_pending", False),
        ("remove", False),
        ("insert_reserved", False),
    ],
)
def test_the_stream_filters_keep_only_orders_that_became_pending(
    stream_patterns: list[dict[str, Any]],
    stream_records: dict[str, dict[str, Any]],
    case: str,
    kept: bool,
) -> None:
    # Given a stream record of an order's life
    record = stream_records[case]

    # When the template's filters are applied as Lambda applies them (any pattern matches)
    result = matches_any_filter(stream_patterns, record)

    # Then only inserts of PENDING orders and moves into PENDING reach the function
    assert result is kept


def test_each_stream_pattern_matches_its_own_case_only(
    stream_patterns: list[dict[str, Any]], stream_records: dict[str, dict[str, Any]]
) -> None:
    # Given the INSERT pattern and the MODIFY pattern
    insert, modify = stream_patterns

    # When each is applied to a new order and a resubmitted one
    # Then the INSERT pattern takes only the insert, the MODIFY pattern only the resubmission
    assert matches(insert, stream_records["insert_pending"])
    assert not matches(insert, stream_records["modify_rejected_to_pending"])
    assert matches(modify, stream_records["modify_rejected_to_pending"])
    assert not matches(modify, stream_records["insert_pending"])


def test_matches_any_filter_keeps_everything_without_filters(
    stream_records: dict[str, dict[str, Any]],
) -> None:
    # Given a mapping without FilterCriteria
    # When any record is checked
    # Then it is kept, as Lambda does
    assert all(matches_any_filter([], r) for r in stream_records.values())


# -- plain values -----------------------------------------------------------------------------


def test_plain_values_match_exactly_and_by_type() -> None:
    # Given a pattern listing allowed values
    pattern = compile_pattern('{"status": ["PENDING", "RESERVED"], "n": [5], "flag": [true]}')

    # When events with the same, different and differently typed values are checked
    # Then only exact matches of the same JSON type pass (5 and 5.0 are the same number)
    assert matches(pattern, {"status": "RESERVED", "n": 5, "flag": True})
    assert matches(pattern, {"status": "PENDING", "n": 5.0, "flag": True})
    assert not matches(pattern, {"status": "pending", "n": 5, "flag": True})
    assert not matches(pattern, {"status": "PENDING", "n": "5", "flag": True})
    assert not matches(pattern, {"status": "PENDING", "n": 5, "flag": 1})
    assert not matches(pattern, {"status": "PENDING", "n": 5})


def test_null_matches_only_null() -> None:
    # Given a pattern allowing null
    pattern = compile_pattern('{"reason": [null]}')

    # When events with null, a string and nothing are checked
    # Then only the explicit null matches
    assert matches(pattern, {"reason": None})
    assert not matches(pattern, {"reason": "x"})
    assert not matches(pattern, {})


def test_nested_patterns_need_the_nested_object() -> None:
    # Given a nested pattern
    pattern = compile_pattern('{"detail": {"state": ["on"]}}')

    # When the object is there, missing, or not an object
    # Then only the matching object passes
    assert matches(pattern, {"detail": {"state": "on", "other": 1}})
    assert not matches(pattern, {"detail": {"state": "off"}})
    assert not matches(pattern, {})
    assert not matches(pattern, {"detail": "on"})
    assert not matches(pattern, "not an event")


def test_arrays_in_the_event_match_when_any_element_matches() -> None:
    # Given patterns on a field that holds an array in the event
    plain = compile_pattern('{"tags": ["gift"]}')
    prefixed = compile_pattern('{"tags": [{"prefix": "prio-"}]}')

    # When events with the value among others, and without it, are checked
    # Then any matching element is enough
    assert matches(plain, {"tags": ["bulk", "gift"]})
    assert not matches(plain, {"tags": ["bulk"]})
    assert not matches(plain, {"tags": []})
    assert matches(prefixed, {"tags": ["x", "prio-high"]})
    assert not matches(prefixed, {"tags": ["x", "high-prio"]})


# -- operators --------------------------------------------------------------------------------


def test_prefix() -> None:
    # Given a prefix pattern
    pattern = compile_pattern('{"id": [{"prefix": "ord-"}]}')

    # When strings with and without the prefix, and a non-string, are checked
    # Then only strings starting with it match
    assert matches(pattern, {"id": "ord-1"})
    assert matches(pattern, {"id": "ord-"})
    assert not matches(pattern, {"id": "xord-1"})
    assert not matches(pattern, {"id": "ORD-1"})
    assert not matches(pattern, {"id": 5})
    assert not matches(pattern, {})


def test_suffix() -> None:
    # Given a suffix pattern
    pattern = compile_pattern('{"file": [{"suffix": ".json"}]}')

    # When names with and without it are checked
    # Then only those ending in it match
    assert matches(pattern, {"file": "order.json"})
    assert not matches(pattern, {"file": "order.json.bak"})
    assert not matches(pattern, {"file": None})


def test_equals_ignore_case() -> None:
    # Given an equals-ignore-case pattern
    pattern = compile_pattern('{"status": [{"equals-ignore-case": "pending"}]}')

    # When differently cased values are checked
    # Then case does not matter but the text does
    assert matches(pattern, {"status": "PENDING"})
    assert matches(pattern, {"status": "Pending"})
    assert not matches(pattern, {"status": "PENDING!"})
    assert not matches(pattern, {"status": 1})


def test_anything_but_a_list() -> None:
    # Given anything-but with a list of strings
    pattern = compile_pattern('{"status": [{"anything-but": ["PENDING", "RESERVED"]}]}')

    # When listed, unlisted and missing values are checked
    # Then only present, unlisted values match
    assert matches(pattern, {"status": "PAID"})
    assert matches(pattern, {"status": "pending"})
    assert not matches(pattern, {"status": "PENDING"})
    assert not matches(pattern, {"status": "RESERVED"})
    assert not matches(pattern, {})


def test_anything_but_a_single_value_and_numbers() -> None:
    # Given anything-but with one string and anything-but with numbers
    one = compile_pattern('{"status": [{"anything-but": "PENDING"}]}')
    numbers = compile_pattern('{"n": [{"anything-but": [1, 2]}]}')

    # When values are checked
    # Then the excluded values, and only they, are refused
    assert matches(one, {"status": "PAID"})
    assert not matches(one, {"status": "PENDING"})
    assert matches(numbers, {"n": 3})
    assert not matches(numbers, {"n": 2})
    assert not matches(numbers, {"n": 1.0})


def test_anything_but_a_prefix() -> None:
    # Given anything-but with a prefix
    pattern = compile_pattern('{"queue": [{"anything-but": {"prefix": "tmp-"}}]}')

    # When names with and without the prefix are checked
    # Then those with it are refused
    assert matches(pattern, {"queue": "orders"})
    assert not matches(pattern, {"queue": "tmp-orders"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, False), (0.5, True), (1, True), (5, True), (5.0, True), (5.01, False), (-3, False)],
)
def test_numeric_range(value: float, expected: bool) -> None:
    # Given a numeric range 0 < n <= 5
    pattern = compile_pattern('{"n": [{"numeric": [">", 0, "<=", 5]}]}')

    # When a number is checked
    # Then it matches inside the range only
    assert matches(pattern, {"n": value}) is expected


def test_numeric_single_comparisons_and_equality() -> None:
    # Given single-comparison numeric patterns
    ge = compile_pattern('{"n": [{"numeric": [">=", 10]}]}')
    lt = compile_pattern('{"n": [{"numeric": ["<", 10]}]}')
    eq = compile_pattern('{"n": [{"numeric": ["=", 3]}]}')

    # When boundary values are checked
    # Then each operator has its meaning
    assert matches(ge, {"n": 10}) and not matches(ge, {"n": 9.99})
    assert matches(lt, {"n": 9.99}) and not matches(lt, {"n": 10})
    assert matches(eq, {"n": 3.0}) and not matches(eq, {"n": 3.1})


def test_numeric_ignores_strings_and_booleans() -> None:
    # Given a numeric pattern
    pattern = compile_pattern('{"n": [{"numeric": [">", 0]}]}')

    # When a numeric string, a boolean and null are checked
    # Then none of them is a number
    assert not matches(pattern, {"n": "5"})
    assert not matches(pattern, {"n": True})
    assert not matches(pattern, {"n": None})


def test_exists_true_and_false() -> None:
    # Given exists patterns
    present = compile_pattern('{"ShippingAddress": [{"exists": true}]}')
    absent = compile_pattern('{"ShippingAddress": [{"exists": false}]}')

    # When events with and without the field are checked
    # Then exists:true needs it, exists:false needs it missing
    assert matches(present, {"ShippingAddress": {"PostalCode": "1"}})
    assert matches(present, {"ShippingAddress": None})
    assert not matches(present, {})
    assert matches(absent, {})
    assert not matches(absent, {"ShippingAddress": "x"})


def test_several_rules_for_one_field_are_alternatives() -> None:
    # Given a field with a plain value and an operator
    pattern = compile_pattern('{"status": ["PAID", {"prefix": "PAYMENT_"}]}')

    # When values matching either, or neither, are checked
    # Then either rule is enough
    assert matches(pattern, {"status": "PAID"})
    assert matches(pattern, {"status": "PAYMENT_FAILED"})
    assert not matches(pattern, {"status": "SHIPPED"})


def test_every_field_of_a_pattern_must_match() -> None:
    # Given a pattern on two fields
    pattern = compile_pattern('{"a": ["x"], "b": [{"prefix": "y"}]}')

    # When one of them does not match
    # Then the event does not match
    assert matches(pattern, {"a": "x", "b": "yes"})
    assert not matches(pattern, {"a": "x", "b": "no"})
    assert not matches(pattern, {"a": "z", "b": "yes"})


def test_any_of_several_filters_is_enough() -> None:
    # Given two filters
    patterns = [compile_pattern('{"a": ["x"]}'), compile_pattern('{"b": ["y"]}')]

    # When events matching one, the other, or neither are checked
    # Then one match keeps the record
    assert matches_any_filter(patterns, {"a": "x"})
    assert matches_any_filter(patterns, {"b": "y"})
    assert not matches_any_filter(patterns, {"a": "y", "b": "x"})


# -- compile_pattern --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": [', "not JSON"),
        ('["a"]', "must be a JSON object"),
        ('"a"', "must be a JSON object"),
        ('{"a": "x"}', "a: pattern values must be lists or objects"),
        ('{"a": 5}', "a: pattern values must be lists or objects"),
        ('{"a": {"b": null}}', "a.b: pattern values must be lists or objects"),
        ('{"a": [["x"]]}', "a: nested lists are not a valid pattern"),
        ('{"a": [{"wildcard": "x*"}]}', "a: filter operator wildcard is not supported"),
        ('{"a": [{"cidr": "10.0.0.0/8"}]}', "filter operator cidr is not supported"),
        ('{"a": [{"prefix": "x", "suffix": "y"}]}', "filter operator prefix, suffix"),
        ('{"a": [{}]}', "is not supported"),
        ('{"a": [{"numeric": ["!=", 3]}]}', "numeric operator '!=' is not supported"),
        ('{"a": [{"numeric": [">", 1, "<"]}]}', "numeric takes [op, n] or [op, n, op, n]"),
        ('{"a": [{"numeric": ">"}]}', "numeric takes [op, n] or [op, n, op, n]"),
        ('{"a": [{"numeric": [">", 1, "=<", 5]}]}', "numeric operator '=<'"),
    ],
)
def test_compile_pattern_rejects_what_it_cannot_match(text: str, message: str) -> None:
    # Given a pattern that is malformed or uses something unimplemented
    # When it is compiled
    with pytest.raises(UnsupportedPattern) as info:
        compile_pattern(text)

    # Then the error names the field and the problem
    assert message in str(info.value)


def test_unsupported_pattern_is_a_value_error() -> None:
    # Given a bad pattern
    # When it is compiled
    # Then callers catching ValueError see it too
    with pytest.raises(ValueError):
        compile_pattern('{"a": "x"}')


def test_compile_pattern_rejects_a_numeric_bound_that_is_not_a_number() -> None:
    # Given a numeric pattern whose bound is a string
    text = '{"n": [{"numeric": [">", "ten"]}]}'

    # When it is compiled
    # Then it is refused up front rather than failing on the first record
    with pytest.raises(UnsupportedPattern):
        compile_pattern(text)
