"""The inventory CSV: every bad input is reported by line and reason, a clean file parses to
exactly its items, and the export reads back as the same items."""

from __future__ import annotations

from decimal import Decimal

import pytest

from operations.inventory_csv import COLUMNS, export_lines, parse
from pipeline.domain import InventoryItem

HEADER = "ItemName,Stock,Price,Description,LowStockThreshold\n"
LIMITS = {"max_bytes": 10_000, "max_rows": 50}


def _parse(text: str | bytes, **limits: int) -> tuple[list[InventoryItem], list[tuple[int, str]]]:
    data = text.encode() if isinstance(text, str) else text
    parsed = parse(data, **{**LIMITS, **limits})
    return parsed.items, [(e.line, e.reason) for e in parsed.errors]


def test_a_clean_file_gives_its_items() -> None:
    # Given a file with a quoted multi-line description, a default and an own threshold
    text = HEADER + 'lamp,5,19.99,"Warm light,\nsmall",3\nmouse,0,7,,\n'

    # When it is parsed
    items, errors = _parse(text)

    # Then it holds exactly those items, prices as two-place decimals
    assert errors == []
    assert items == [
        InventoryItem("lamp", 5, Decimal("19.99"), "Warm light,\nsmall", 3),
        InventoryItem("mouse", 0, Decimal("7.00"), "", None),
    ]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["no BOM", "BOM"])
def test_utf8_with_or_without_a_bom_is_read(bom: bytes) -> None:
    items, errors = _parse(bom + (HEADER + "Cafe-lamp,1,2.50,Crème,\n").encode())
    assert errors == [] and items[0].item_name == "Cafe-lamp" and items[0].description == "Crème"


def test_only_the_required_columns_are_needed_in_any_order() -> None:
    items, errors = _parse("Price,ItemName,Stock\n1.10,pen,4\n")
    assert errors == [] and items == [InventoryItem("pen", 4, Decimal("1.10"), "", None)]


BAD_ROWS = {
    "non-numeric stock": ("pen,many,1.00,,", "Stock: must be a whole number"),
    "fractional stock": ("pen,1.5,1.00,,", "Stock: must be a whole number"),
    "negative stock": ("pen,-1,1.00,,", "Stock: must be 0 or more"),
    "huge stock": ("pen,99999999999,1.00,,", "Stock: must be at most 1,000,000,000 in size"),
    "thousands of digits": ("pen," + "9" * 5000 + ",1.00,,", "Stock: must be a whole number"),
    "three decimals": ("pen,1,1.999,,", "Price: must have at most 2 decimal places"),
    "negative price": ("pen,1,-1.00,,", "Price: must be 0 or more"),
    "non-numeric price": ("pen,1,cheap,,", "Price: must be a decimal number such as 19.99"),
    "empty price": ("pen,1,,,", "Price: must be a decimal number such as 19.99"),
    "NaN price": ("pen,1,NaN,,", "Price: must be a decimal number such as 19.99"),
    "bad name": ("pen<script>,1,1.00,,", "ItemName: item name may hold letters"),
    "empty name": (",1,1.00,,", "ItemName: item name must not be empty"),
    "long name": ("x" * 101 + ",1,1.00,,", "ItemName: item name must be at most 100 characters"),
    "long description": ("pen,1,1.00," + "d" * 501 + ",", "Description: must be at most 500"),
    "hidden character": ("pen,1,1.00,Warm\u202elight,", "U+202E RIGHT-TO-LEFT OVERRIDE"),
    "negative threshold": ("pen,1,1.00,,-2", "LowStockThreshold: must be 0 or more"),
    "text threshold": ("pen,1,1.00,,low", "LowStockThreshold: must be a whole number"),
    "too few fields": ("pen,1,1.00", "has 3 fields; the header names 5"),
    "too many fields": ("pen,1,1.00,,,x", "has 6 fields; the header names 5"),
}


@pytest.mark.parametrize("row", BAD_ROWS.values(), ids=BAD_ROWS.keys())
def test_each_bad_row_is_named_by_its_line_and_reason(row: tuple[str, str]) -> None:
    # Given a good row, then the bad one on line 3, then another good row
    text = HEADER + "ok1,1,1.00,,\n" + row[0] + "\nok2,2,2.00,,\n"

    # When it is parsed
    _, errors = _parse(text)

    # Then exactly line 3 is reported, saying why
    assert len(errors) == 1, errors
    line, reason = errors[0]
    assert line == 3
    assert row[1] in reason


def test_every_bad_row_is_reported_not_only_the_first() -> None:
    text = HEADER + "a,1,1.00,,\nb,x,1.00,,\nc,1,1.001,,\nd,1,1.00,,\n"
    _, errors = _parse(text)
    assert [line for line, _ in errors] == [3, 4]


def test_a_duplicated_name_names_both_lines() -> None:
    # Names are compared as stored (trimmed): " lamp" is "lamp"
    _, errors = _parse(HEADER + "lamp,1,1.00,,\nmouse,1,1.00,,\n lamp ,2,1.00,,\n")
    assert errors == [(4, "ItemName 'lamp' is also on line 2")]


def test_line_numbers_count_the_lines_of_multi_line_fields() -> None:
    text = HEADER + 'a,1,1.00,"one\ntwo\nthree",\nb,-1,1.00,,\n'
    _, errors = _parse(text)
    assert errors == [(5, "Stock: must be 0 or more")]


def test_blank_lines_are_not_rows() -> None:
    items, errors = _parse(HEADER + "\na,1,1.00,,\n\n,,,,\n")
    assert errors == [] and [i.item_name for i in items] == ["a"]


FILE_ERRORS = {
    "not UTF-8": (HEADER.encode() + b"ok,1,1.00,,\nlamp,1,1.00,caf\xe9,\n", 3, "is not UTF-8"),
    "UTF-16": ("ItemName,Stock,Price\n".encode("utf-16"), 1, "is not UTF-8"),
    "empty": (b"", 0, "the file is empty"),
    "header only": (HEADER.encode(), 0, "has a header but no rows"),
    "missing column": (b"ItemName,Price\na,1\n", 1, "missing column(s) Stock"),
    "unknown column": (b"ItemName,Stock,Price,Colour\na,1,1,red\n", 1, "unknown column(s) Colour"),
    "repeated column": (b"ItemName,Stock,Price,Stock\na,1,1,1\n", 1, "repeated column(s) Stock"),
    "NUL bytes": (b"ItemName,Stock,Price\na\x00,1,1\n", 0, "NUL characters"),
    "unclosed quote": (HEADER.encode() + b'a,1,1.00,"open\n', 2, "not valid CSV"),
}


@pytest.mark.parametrize("case", FILE_ERRORS.values(), ids=FILE_ERRORS.keys())
def test_a_bad_file_is_refused_saying_why(case: tuple[bytes, int, str]) -> None:
    data, line, reason = case
    _, errors = _parse(data)
    assert errors and errors[0][0] == line and reason in errors[0][1], errors


def test_size_and_row_limits() -> None:
    # A file over the size limit is refused before it is read; one with too many rows stops
    big = HEADER + "".join(f"i{n},1,1.00,,\n" for n in range(60))
    assert _parse(big, max_bytes=100)[1][0][0] == 0
    _, errors = _parse(big)
    assert errors == [(52, "the file has more than 50 rows; split it")]


def test_the_export_reads_back_as_the_same_items() -> None:
    # Given items with commas, quotes, newlines and both kinds of threshold
    items = [
        InventoryItem("lamp", 5, Decimal("19.99"), 'Warm, "soft"\nlight', 3),
        InventoryItem("mouse", 0, Decimal("7"), "", None),
    ]

    # When they are exported and the file imported
    data = "".join(export_lines(items)).encode()
    parsed, errors = _parse(data)

    # Then the export has the import's columns and reads back unchanged
    assert data.decode().splitlines()[0] == ",".join(COLUMNS)
    assert errors == [] and parsed == [
        items[0],
        InventoryItem("mouse", 0, Decimal("7.00"), "", None),
    ]
