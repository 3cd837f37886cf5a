"""Inventory as CSV: the export's rows, and the import's parsing and validation (every row
checked by the same rules as the API and the staff's forms, each bad one named by its line)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from pipeline.domain import InventoryItem
from pipeline.errors import InvalidInventoryItem
from pipeline.inventory import checked_item

# The columns the export writes and the import reads, in this order.
COLUMNS = ("ItemName", "Stock", "Price", "Description", "LowStockThreshold")
REQUIRED = ("ItemName", "Stock", "Price")
WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")
# How many bad rows a report lists (a wrong file can have thousands: the first ones say why).
MAX_REPORTED = 200


@dataclass(frozen=True)
class RowError:
    """A line of the file that cannot be imported, and why."""

    line: int  # 1 is the header; 0 is the file as a whole
    reason: str

    def as_json(self) -> dict[str, object]:
        """For the job's result."""
        return {"line": self.line, "reason": self.reason}


@dataclass
class ParsedCsv:
    """The file's items (only meaningful when `errors` is empty) and its bad lines."""

    items: list[InventoryItem] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0  # all bad lines, even past MAX_REPORTED

    def fail(self, line: int, reason: str) -> None:
        """Note a bad line."""
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED:
            self.errors.append(RowError(line, reason))

    @property
    def ok(self) -> bool:
        """No bad line: the file may be applied."""
        return self.error_count == 0


def decode(data: bytes) -> tuple[str | None, RowError | None]:
    """The file's text (UTF-8, with or without a BOM), or the line of its first bad byte."""
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        return None, RowError(line, f"is not UTF-8 (byte {data[exc.start]:#04x}); save as UTF-8")


def parse(data: bytes, *, max_bytes: int, max_rows: int) -> ParsedCsv:
    """Read an uploaded file: every row is checked; nothing here writes anything."""
    parsed = ParsedCsv()
    if len(data) > max_bytes:
        parsed.fail(0, f"the file is {len(data):,} bytes; at most {max_bytes:,} are accepted")
        return parsed
    text, bad = decode(data)
    if text is None:
        assert bad is not None
        parsed.fail(bad.line, bad.reason)
        return parsed
    if "\x00" in text:
        parsed.fail(0, "the file holds NUL characters: it is not a CSV text file")
        return parsed
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        parsed.fail(0, "the file is empty; the first line must name the columns")
        return parsed
    except csv.Error as exc:
        parsed.fail(1, f"not valid CSV: {exc}")
        return parsed
    columns = [name.strip() for name in header]
    unknown = [c for c in columns if c not in COLUMNS]
    missing = [c for c in REQUIRED if c not in columns]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if unknown or missing or repeated:
        parts = []
        if missing:
            parts.append(f"missing column(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown column(s) {', '.join(unknown)}")
        if repeated:
            parts.append(f"repeated column(s) {', '.join(repeated)}")
        parsed.fail(1, "; ".join(parts) + f" (the columns are {', '.join(COLUMNS)})")
        return parsed
    seen: dict[str, int] = {}
    rows = 0
    start = reader.line_num + 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.fail(start, f"not valid CSV: {exc}")
            break
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in record):
            continue  # blank lines (a trailing newline, a spreadsheet's empty rows) are no rows
        rows += 1
        if rows > max_rows:
            parsed.fail(line, f"the file has more than {max_rows:,} rows; split it")
            break
        if len(record) != len(columns):
            parsed.fail(line, f"has {len(record)} fields; the header names {len(columns)}")
            continue
        values = dict(zip(columns, record, strict=True))
        try:
            item = _item(values)
        except InvalidInventoryItem as exc:
            reasons = "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
            parsed.fail(line, reasons)
            continue
        if item.item_name in seen:
            parsed.fail(line, f"ItemName {item.item_name!r} is also on line {seen[item.item_name]}")
            continue
        seen[item.item_name] = line
        parsed.items.append(item)
    if not parsed.error_count and not parsed.items:
        parsed.fail(0, "the file has a header but no rows")
    return parsed


def _whole(raw: str) -> int | str:
    # The domain's checks take ints; text that is not a whole number is refused there by type.
    # Over 20 digits cannot be a valid stock, and int() of thousands of digits is slow.
    cleaned = raw.strip()
    return int(cleaned) if len(cleaned) <= 20 and WHOLE_NUMBER.fullmatch(cleaned) else cleaned


def _item(values: dict[str, str]) -> InventoryItem:
    """One row through the domain's checks (the API's and the forms' rules)."""
    threshold = values.get("LowStockThreshold", "").strip()
    return checked_item(
        values["ItemName"],
        _whole(values["Stock"]),
        values["Price"].strip(),
        values.get("Description", ""),
        _whole(threshold) if threshold else None,
    )


def export_lines(items: Iterable[InventoryItem]) -> Iterator[str]:
    """The header, then one CSV line per item, in the columns the import reads."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield _take(buffer)
    for item in items:
        writer.writerow(
            [
                item.item_name,
                item.stock,
                f"{item.price:.2f}",
                item.description,
                "" if item.low_stock_threshold is None else item.low_stock_threshold,
            ]
        )
        yield _take(buffer)


def _take(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text
