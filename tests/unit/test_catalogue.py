"""The inventory catalogue on the in-memory store and backend: cursor pages in every sort and
direction, search and the low-stock filter, and a rebuild that never undoes a portal write."""

from __future__ import annotations

from decimal import Decimal

import pytest

from operations.catalogue import BadCatalogueCursor, Catalogue, _MemoryBackend
from pipeline.domain import InventoryItem
from tests.fakes import FakeStore


def _catalogue(count: int = 23) -> tuple[Catalogue, FakeStore]:
    store = FakeStore()
    for n in range(count):
        store.inventory_put_if_absent(
            InventoryItem(f"item-{n:02d}", n % 7, Decimal(f"{(n * 13) % 10}.50"), f"desc {n}")
        )
    return Catalogue(_MemoryBackend(), store, default_threshold=2), store


def _walk(found: Catalogue, **query: object) -> list[str]:
    names: list[str] = []
    cursor = None
    while True:
        page = found.query(cursor=cursor, limit=5, **query)  # type: ignore[arg-type]
        names += [i.item_name for i in page.items]
        if not page.next_cursor:
            return names
        cursor = page.next_cursor


@pytest.mark.parametrize("sort", ["name", "stock", "price"])
@pytest.mark.parametrize("descending", [False, True])
def test_cursor_pages_walk_every_item_once_in_order(sort: str, descending: bool) -> None:
    found, store = _catalogue()
    rows = list(store.inventory.values())
    key = {
        "name": lambda i: (i.item_name.casefold(), i.item_name),
        "stock": lambda i: (i.stock, i.item_name),
        "price": lambda i: (i.price, i.item_name),
    }[sort]
    expected = [i.item_name for i in sorted(rows, key=key, reverse=descending)]
    assert _walk(found, sort=sort, descending=descending) == expected


def test_search_and_low_stock_filter_count_every_match() -> None:
    found, _ = _catalogue()
    page = found.query(search="DESC 1", limit=5)
    assert [i.item_name for i in page.items] == [
        "item-01",
        "item-10",
        "item-11",
        "item-12",
        "item-13",
    ]
    assert page.matching == 11  # desc 1, desc 10..19
    assert _walk(found, search="^item-2") == ["item-20", "item-21", "item-22"]
    low = _walk(found, low_only=True)
    assert low == [f"item-{n:02d}" for n in range(23) if n % 7 <= 2]


def test_a_cursor_of_another_sort_or_made_up_is_refused() -> None:
    found, _ = _catalogue()
    cursor = found.query(limit=5).next_cursor
    with pytest.raises(BadCatalogueCursor):
        found.query(cursor=cursor, sort="price")
    with pytest.raises(BadCatalogueCursor):
        found.query(cursor="bm90IG91cnM")


def test_a_portal_write_during_a_rebuild_is_not_undone() -> None:
    # Given a catalogue whose rebuild scans while the portal writes an item
    found, store = _catalogue(3)
    found.refresh()
    original_scan = store.inventory_scan

    def scan_then_write():  # type: ignore[no-untyped-def]
        rows = list(original_scan())  # the scan has read the old row ...
        changed = InventoryItem("item-01", 99, Decimal("1.00"), "new")
        store.inventory[changed.item_name] = changed  # ... when the portal writes
        found.note(changed)
        yield from rows

    store.inventory_scan = scan_then_write  # type: ignore[method-assign]

    # When the rebuild finishes
    found.refresh()

    # Then the copy has the portal's write, not the scanned old row
    assert found.items()["item-01"].stock == 99


def test_rows_shown_are_read_live_and_a_deleted_one_is_left_out() -> None:
    found, store = _catalogue(3)
    found.refresh()
    store.inventory["item-00"] = InventoryItem("item-00", 42, Decimal("1.50"), "changed")
    del store.inventory["item-02"]
    page = found.query()
    assert [(i.item_name, i.stock) for i in page.items] == [("item-00", 42), ("item-01", 1)]


def test_the_low_stock_count_is_the_current_copys_after_a_write() -> None:
    # Given the count of a copy (kept with that version of it)
    found, _ = _catalogue()
    assert found.low_stock_count() == sum(1 for n in range(23) if n % 7 <= 2)
    before = found.low_stock_count()

    # When the portal writes one more low item and raises another above the threshold
    found.note(InventoryItem("item-zz", 0, Decimal("1.00"), "new and low"))
    found.note(InventoryItem("item-00", 40, Decimal("1.00"), "restocked"))

    # Then the count is the new copy's
    assert found.low_stock_count() == before
    found.note(InventoryItem("item-zy", 1, Decimal("1.00"), "also low"))
    assert found.low_stock_count() == before + 1
