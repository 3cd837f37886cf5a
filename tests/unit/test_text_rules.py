"""The text rule of names, addresses and descriptions, and the schema patterns that state it."""

from __future__ import annotations

import unicodedata
from functools import cache
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.domain import (
    MAX_CUSTOMER_NAME,
    checked_description,
    validate_customer_name,
    validate_item_name,
    validate_shipping_address,
)
from pipeline.domain.orders import REFUSED_TEXT_RANGES, checked_text
from pipeline.errors import InvalidOrder

INVISIBLE_CATEGORIES = {"Cc", "Cf", "Zl", "Zp"}
ADDRESS = {"Name": "Ann", "Line1": "1 Main St", "City": "Springfield", "PostalCode": "12345",
           "Country": "US"}  # fmt: skip

# -- The refused characters ---------------------------------------------------------------------


def test_the_table_refuses_every_control_format_and_separator_character():
    # Given the table of refused ranges and this Python's Unicode database
    refused = {
        point for low, high in REFUSED_TEXT_RANGES for point in range(ord(low), ord(high) + 1)
    }
    every = [chr(point) for point in range(0x110000)]

    # Then every Cc, Cf, Zl and Zp character is refused
    missing = [ch for ch in every if unicodedata.category(ch) in INVISIBLE_CATEGORIES]
    assert {ord(ch) for ch in missing} <= refused
    # And nothing else is, but for unassigned code points inside a range
    others = {unicodedata.category(chr(point)) for point in refused} - INVISIBLE_CATEGORIES
    assert others <= {"Cn"}


@pytest.mark.parametrize(
    "char",
    [
        "\u202e",
        "\u202d",
        "\u202a",
        "\u2066",
        "\u2069",
        "\u200e",
        "\u061c",  # bidi
        "\u200b",
        "\u200c",
        "\u200d",
        "\u2060",
        "\ufeff",
        "\u180e",
        "\u00ad",  # invisible
        "\u2028",
        "\u2029",  # line and paragraph separators
        "\U000e0041",
        "\U0001d173",  # beyond the BMP: a tag, a musical format control
    ],
    ids=lambda ch: f"U+{ord(ch):04X}",
)
def test_invisible_and_text_direction_characters_are_refused_and_named(char: str):
    # Given a name with the character inside it
    # When it is checked, Then it is refused, naming the code point
    with pytest.raises(ValueError, match=f"U\\+{ord(char):04X}"):
        checked_text(f"Ann{char}Lee")


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\x85", "\x9b", "\t", "\n"])
def test_control_characters_are_refused(char: str):
    # When a name holds a control character (C0, DEL, C1), Then it is refused as one
    with pytest.raises(ValueError, match="must not contain control characters"):
        checked_text(f"Ann{char}Lee")


@pytest.mark.parametrize("char", ["\ud800", "\udbff", "\udc00", "\udfff"])
def test_lone_surrogates_are_refused_as_not_unicode(char: str):
    # When a name holds a lone surrogate (what JSON's "\ud800" decodes to), Then it is refused
    with pytest.raises(ValueError, match="must be valid Unicode text"):
        checked_text(f"Ann{char}")


@pytest.mark.parametrize(
    "name",
    ["José Müller-Øberg", "O'Brien", "李小龙", "محمد", "Ζωή", "Nguyễn", "Ann 😀", "A\u00a0B"],
)
def test_names_in_any_script_are_kept(name: str):
    # When a name in any script (or with an emoji, or a no-break space) is checked
    # Then it is kept as it is (already NFC)
    assert checked_text(name) == name


def test_kept_text_is_nfc_normalised():
    # Given "José" typed with a combining acute accent (5 code points)
    decomposed = "Jose\u0301"

    # When it is checked, Then it comes back precomposed (4 code points)
    assert checked_text(decomposed) == "José"
    assert validate_customer_name(f" {decomposed} ") == "José"


def test_multi_line_text_may_hold_line_breaks_and_tabs_but_nothing_else_invisible():
    # Given a description over several lines
    text = "Line one\r\n\tLine two"

    # Then line breaks and tabs are allowed with line_breaks, and refused without
    assert checked_text(text, line_breaks=True) == text
    assert checked_description(f"  {text}  ") == text
    with pytest.raises(ValueError):
        checked_text(text)
    # And the other characters stay refused (inside the text: U+2028 is trimmed at its ends)
    for char in ("\u2028", "\u202e", "\x07", "\ud800"):
        with pytest.raises(ValueError):
            checked_description(f"Line{char}two")


# -- Where the rule applies -----------------------------------------------------------------------


def test_customer_names_follow_the_rule_and_count_their_length_as_sent():
    # When names break the rule, Then CustomerName says why
    for raw, message in [
        ("Ann\u202eeeL", "invisible or text-direction"),
        ("\u200bAnn", "invisible or text-direction"),
        ("Ann\ud800", "valid Unicode text"),
        (" " + "x" * MAX_CUSTOMER_NAME, f"at most {MAX_CUSTOMER_NAME}"),  # 201 as sent
    ]:
        with pytest.raises(InvalidOrder) as info:
            validate_customer_name(raw)
        assert message in info.value.errors["CustomerName"], raw


def test_address_fields_follow_the_rule():
    # Given an address whose City hides a bidi override and whose Country is one character
    raw = {**ADDRESS, "City": "Spring\u202efield", "Country": "0"}

    # When it is validated, Then both fields are named
    with pytest.raises(InvalidOrder) as info:
        validate_shipping_address(raw)
    assert "invisible or text-direction" in info.value.errors["ShippingAddress.City"]
    assert "ISO 3166" in info.value.errors["ShippingAddress.Country"]
    # And the kept fields come back trimmed and NFC-normalised
    kept = validate_shipping_address({**ADDRESS, "Name": " Jose\u0301 ", "Line2": " "})
    assert kept == {**ADDRESS, "Name": "José"}


# -- The schema says what the rules say ---------------------------------------------------------


@cache
def _request_schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    document = SchemaGenerator().get_schema(request=None, public=True)
    return document["components"]["schemas"]["SubmitOrderRequestRequest"]["properties"]


def _schema_accepts(schema: dict[str, Any], value: str) -> bool:
    # jsonschema-rs is schemathesis' validator: the patterns must mean there what they say.
    return jsonschema_rs.validator_for(schema).is_valid(value)


def _refused(validate: Any, *args: Any) -> bool:
    try:
        validate(*args)
    except (InvalidOrder, ValueError):
        return True
    return False


# Characters at the edges of the rules: trimmed whitespace, refused characters, letters,
# combining marks, the postcode's and item names' punctuation; and then anything else.
_EDGES = (
    [chr(point) for point in range(0x3001) if chr(point).isspace()]
    + [low for low, _ in REFUSED_TEXT_RANGES]
    + [high for _, high in REFUSED_TEXT_RANGES]
    + list("aZ09 .-_'#/\u0301\u00e9\u00a0")
)
TEXT = st.text(
    st.one_of(st.sampled_from(_EDGES), st.characters(codec="utf-8")), max_size=12
)  # no lone surrogates: no pattern can hold them (see orders_api/serializers.py)
PROPERTY_SETTINGS = settings(max_examples=400, deadline=None, database=None)


@PROPERTY_SETTINGS
@given(TEXT)
@example(" " * 5 + "x" * (MAX_CUSTOMER_NAME - 5))
@example("x" * (MAX_CUSTOMER_NAME + 1))
def test_the_customer_name_schema_accepts_exactly_what_the_rule_accepts(value: str):
    # Given any text, Then the schema and validate_customer_name agree on it
    schema = _request_schema()["CustomerName"]
    assert _schema_accepts(schema, value) is not _refused(validate_customer_name, value)


@PROPERTY_SETTINGS
@given(TEXT)
@example(" " * 10 + "A" * 100 + "\t")  # 100 once trimmed: accepted
@example("A" * 101)
def test_the_item_name_schema_accepts_exactly_what_the_rule_accepts(value: str):
    # Given any text, Then the schema of a plain item name and validate_item_name agree on it
    schema = _request_schema()["Items"]["items"]["oneOf"][0]
    assert _schema_accepts(schema, value) is not _refused(validate_item_name, value)


@pytest.mark.parametrize("field", ["Name", "Line2", "Country", "PostalCode"])
@PROPERTY_SETTINGS
@given(value=TEXT)
@example(value="e\u0301")  # two characters as sent, one once NFC-normalised
@example(value=" x ")
def test_the_address_schema_accepts_exactly_what_the_rule_accepts(field: str, value: str):
    # Given an address with any text in one field
    schema = _request_schema()["ShippingAddress"]
    address = {**ADDRESS, field: value}

    # Then the schema and validate_shipping_address agree on it
    assert _schema_accepts(schema, address) is not _refused(validate_shipping_address, address)
