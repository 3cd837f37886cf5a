"""The inventory catalogue: a copy of the Inventory table in Redis that search, filters, sorting
and paging read, so a page view never scans the table (docs/design.md, "Inventory catalogue").

DynamoDB has no text search and no secondary sort on the Inventory table, so the portal keeps
one Redis hash per table (item name -> its name, description, stock, price and threshold as
JSON) plus a version number bumped on every change. Each process keeps the decoded entries
and reuses them until the version moves: a page view costs one GET (and an HGETALL when
something changed), then filtering and sorting 10,000 entries in memory.

Freshness: every write made through the portal updates the copy at once (`note`, `forget`).
Writes made elsewhere (orders reserving stock, scripts) reach it when it is rebuilt from a Scan:
by the Celery beat task every INVENTORY_CATALOGUE_REFRESH_SECONDS, and by a page view that finds
it older than INVENTORY_CATALOGUE_MAX_AGE_SECONDS. The rows a page shows are read again from the
table (one BatchGetItem), so the numbers on screen are current; only which items match a stock
filter or where they sort may lag by that bound.

Without Redis (a local run without it) the copy lives in the process's memory instead, with the
same rules; each process then has its own.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import redis
from django.conf import settings

from pipeline import wiring
from pipeline.domain import DEFAULT_LOW_STOCK_THRESHOLD, InventoryItem
from pipeline.ports import InventoryStore

log = logging.getLogger(__name__)

SORTS = ("name", "stock", "price")
MAX_SEARCH = 200


class BadCatalogueCursor(ValueError):
    """A cursor this portal did not make, or one for another sort."""


@dataclass(frozen=True)
class CataloguePage:
    """One page of the catalogue, in the order asked for."""

    items: list[InventoryItem]
    next_cursor: str  # '' on the last page
    matching: int  # items matching the search and filters, over all pages
    total: int  # items in the catalogue
    refreshed_at: float  # when the copy was last rebuilt from the table (epoch seconds)


# -- storage: Redis, or this process's memory -----------------------------------------------------


class _Backend(Protocol):
    def version(self) -> str | None: ...
    def entries(self) -> dict[str, str]: ...
    def put(self, name: str, raw: str) -> None: ...
    def remove(self, name: str) -> None: ...
    def replace_all(self, entries: Mapping[str, str], refreshed_at: float) -> list[str]: ...
    def refreshed_at(self) -> float | None: ...
    def try_lock(self, seconds: int) -> bool: ...
    def start_rebuild(self) -> None: ...


class _RedisBackend:
    """The shared copy: a hash, a version counter, the time of the last rebuild, and the names
    written while a rebuild was running (re-read after it, so a rebuild never undoes them)."""

    def __init__(self, client: Any, key: str) -> None:
        self.r = client
        self.key = key

    def version(self) -> str | None:
        raw = self.r.get(f"{self.key}:version")
        return None if raw is None else raw.decode()

    def entries(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self.r.hgetall(self.key).items()}

    def put(self, name: str, raw: str) -> None:
        pipe = self.r.pipeline()
        pipe.hset(self.key, name, raw)
        pipe.sadd(f"{self.key}:dirty", name)
        pipe.incr(f"{self.key}:version")
        pipe.execute()

    def remove(self, name: str) -> None:
        pipe = self.r.pipeline()
        pipe.hdel(self.key, name)
        pipe.sadd(f"{self.key}:dirty", name)
        pipe.incr(f"{self.key}:version")
        pipe.execute()

    def replace_all(self, entries: Mapping[str, str], refreshed_at: float) -> list[str]:
        """Swap in a rebuilt copy; the names written while it was built (to read again)."""
        tmp = f"{self.key}:building"
        self.r.delete(tmp)
        items = list(entries.items())
        for start in range(0, len(items), 1000):
            self.r.hset(tmp, mapping=dict(items[start : start + 1000]))
        pipe = self.r.pipeline()
        if items:
            pipe.rename(tmp, self.key)
        else:
            pipe.delete(self.key)
        pipe.smembers(f"{self.key}:dirty")
        pipe.delete(f"{self.key}:dirty")
        pipe.set(f"{self.key}:at", repr(refreshed_at))
        pipe.incr(f"{self.key}:version")
        results = pipe.execute()
        return [n.decode() for n in results[1]]

    def start_rebuild(self) -> None:
        self.r.delete(f"{self.key}:dirty")

    def refreshed_at(self) -> float | None:
        raw = self.r.get(f"{self.key}:at")
        return None if raw is None else float(raw)

    def try_lock(self, seconds: int) -> bool:
        return bool(self.r.set(f"{self.key}:lock", "1", nx=True, ex=seconds))


class _MemoryBackend:
    """The same, in this process only (no Redis)."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}
        self.dirty: set[str] = set()
        self.counter = 0
        self.at: float | None = None
        self.lock_until = 0.0

    def version(self) -> str | None:
        return None if self.at is None else str(self.counter)

    def entries(self) -> dict[str, str]:
        return dict(self.data)

    def put(self, name: str, raw: str) -> None:
        self.data[name] = raw
        self.dirty.add(name)
        self.counter += 1

    def remove(self, name: str) -> None:
        self.data.pop(name, None)
        self.dirty.add(name)
        self.counter += 1

    def start_rebuild(self) -> None:
        self.dirty = set()

    def replace_all(self, entries: Mapping[str, str], refreshed_at: float) -> list[str]:
        self.data = dict(entries)
        dirty, self.dirty = sorted(self.dirty), set()
        self.at = refreshed_at
        self.counter += 1
        return dirty

    def refreshed_at(self) -> float | None:
        return self.at

    def try_lock(self, seconds: int) -> bool:
        now = time.monotonic()
        if now < self.lock_until:
            return False
        self.lock_until = now + seconds
        return True


# -- entries ----------------------------------------------------------------------------------


def _encode(item: InventoryItem) -> str:
    return json.dumps(
        [item.stock, str(item.price), item.description, item.low_stock_threshold],
        separators=(",", ":"),
    )


def _decode(name: str, raw: str) -> InventoryItem:
    stock, price, description, threshold = json.loads(raw)
    return InventoryItem(name, int(stock), Decimal(price), description, threshold)


def _sort_key(sort: str, item: InventoryItem) -> tuple[Any, str]:
    if sort == "stock":
        return (item.stock, item.item_name)
    if sort == "price":
        return (item.price, item.item_name)
    return (item.item_name.casefold(), item.item_name)


def encode_cursor(sort: str, descending: bool, item: InventoryItem) -> str:
    """The opaque cursor for "after this item" in this sort."""
    value = _sort_key(sort, item)[0]
    raw = json.dumps([sort, descending, str(value), item.item_name], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(token: str, sort: str, descending: bool) -> tuple[Any, str]:
    if len(token) > 2000:
        raise BadCatalogueCursor("cursor too long")
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        c_sort, c_desc, value, name = raw
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadCatalogueCursor("cursor is not valid") from exc
    if c_sort != sort or c_desc is not descending or not isinstance(name, str):
        raise BadCatalogueCursor("cursor belongs to another sort order")
    try:
        if sort == "stock":
            return (int(value), name)
        if sort == "price":
            return (Decimal(value), name)
        return (str(value), name)
    except (ValueError, ArithmeticError) as exc:
        raise BadCatalogueCursor("cursor is not valid") from exc


class _Snapshot:
    """One version of the copy, decoded, with its sort orders and folded text made once."""

    def __init__(self, items: dict[str, InventoryItem]) -> None:
        self.items = items
        self._orders: dict[str, tuple[list[InventoryItem], list[tuple[Any, str]]]] = {}
        self._folded: dict[str, tuple[str, str]] | None = None
        self._low: dict[int, int] = {}  # default threshold -> items at or below theirs
        self._lock = threading.Lock()

    def ordered(self, sort: str) -> tuple[list[InventoryItem], list[tuple[Any, str]]]:
        """The items in ascending `sort` order, and their sort keys."""
        with self._lock:
            if sort not in self._orders:
                pairs = sorted(((_sort_key(sort, i), i) for i in self.items.values()),
                               key=lambda pair: pair[0])  # fmt: skip
                self._orders[sort] = ([i for _, i in pairs], [k for k, _ in pairs])
            return self._orders[sort]

    def folded(self) -> dict[str, tuple[str, str]]:
        """Each item's name and description, case-folded for search."""
        with self._lock:
            if self._folded is None:
                self._folded = {
                    n: (n.casefold(), i.description.casefold()) for n, i in self.items.items()
                }
            return self._folded

    def low_count(self, default_threshold: int) -> int:
        """How many items are at or below their threshold: counted once per version, as the
        dashboard asks on every view."""
        with self._lock:
            if default_threshold not in self._low:
                self._low[default_threshold] = sum(
                    1 for item in self.items.values() if item.is_low(default_threshold)
                )
            return self._low[default_threshold]


# -- the catalogue ----------------------------------------------------------------------------


class Catalogue:
    """Search, filter, sort and page the inventory from its copy; keep the copy current."""

    def __init__(
        self,
        backend: _Backend,
        store: InventoryStore,
        *,
        default_threshold: int = DEFAULT_LOW_STOCK_THRESHOLD,
        max_age: float = 300.0,
    ) -> None:
        self.backend = backend
        self.store = store
        self.default_threshold = default_threshold
        self.max_age = max_age
        self._cached_version: str | None = None
        self._cached: _Snapshot | None = None
        self._mutex = threading.Lock()

    # writes -------------------------------------------------------------------------------

    def note(self, item: InventoryItem) -> None:
        """An item as the portal just wrote it."""
        self.backend.put(item.item_name, _encode(item))

    def forget(self, name: str) -> None:
        """An item the portal just deleted."""
        self.backend.remove(name)

    def refresh(self) -> int:
        """Rebuild the copy from a Scan of the table; the number of items."""
        self.backend.start_rebuild()
        started = time.time()
        entries = {item.item_name: _encode(item) for item in self.store.inventory_scan()}
        dirty = self.backend.replace_all(entries, started)
        if dirty:
            # Written through the portal while the Scan ran: the table has the last word.
            rows = self.store.inventory_get_many(dirty)
            for name in dirty:
                if name in rows:
                    self.backend.put(name, _encode(rows[name]))
                else:
                    self.backend.remove(name)
        log.info("inventory catalogue rebuilt", extra={"items": len(entries)})
        return len(entries)

    def ensure_fresh(self) -> None:
        """Rebuild when there is no copy yet, or it is older than max_age (one process at a
        time rebuilds an old copy; a missing one is built by whoever needs it)."""
        at = self.backend.refreshed_at()
        stale = at is not None and time.time() - at > self.max_age
        if at is None or (stale and self.backend.try_lock(60)):
            self.refresh()

    # reads --------------------------------------------------------------------------------

    def items(self) -> dict[str, InventoryItem]:
        """Every entry of the copy (decoded once per version, per process)."""
        return self._snapshot().items

    def _snapshot(self) -> _Snapshot:
        self.ensure_fresh()
        version = self.backend.version()
        with self._mutex:
            if version is None or version != self._cached_version or self._cached is None:
                entries = self.backend.entries()
                self._cached = _Snapshot({n: _decode(n, raw) for n, raw in entries.items()})
                self._cached_version = version
            return self._cached

    def query(
        self,
        *,
        search: str = "",
        low_only: bool = False,
        sort: str = "name",
        descending: bool = False,
        cursor: str | None = None,
        limit: int = 50,
        live: bool = True,
    ) -> CataloguePage:
        """One page: `search` (`^text`: names starting with text; otherwise text anywhere in
        the name or description, any case), only low-stock items, sorted by name, stock or
        price, after `cursor`. With `live`, the page's rows are read again from the table."""
        if sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        search = search.strip()[:MAX_SEARCH]
        snapshot = self._snapshot()
        ordered, keys = snapshot.ordered(sort)
        # Where the page starts in the ascending order (items may have moved since the cursor
        # was made: it names a position, not an item).
        if descending:
            start = len(ordered) - 1
            if cursor:
                start = bisect.bisect_left(keys, _decode_cursor(cursor, sort, True)) - 1
            positions: Iterable[int] = range(start, -1, -1)
        else:
            start = bisect.bisect_right(keys, _decode_cursor(cursor, sort, False)) if cursor else 0
            positions = range(start, len(ordered))
        wanted = self._predicate(search, low_only, snapshot)
        page: list[InventoryItem] = []
        more = False
        for position in positions:
            item = ordered[position]
            if wanted is None or wanted(item):
                if len(page) == limit:
                    more = True
                    break
                page.append(item)
        matching = len(ordered) if wanted is None else sum(1 for i in ordered if wanted(i))
        last = page[-1] if page else None
        if live and page:
            page = self._live(page)
        return CataloguePage(
            items=page,
            next_cursor=encode_cursor(sort, descending, last) if more and last else "",
            matching=matching,
            total=len(ordered),
            refreshed_at=self.backend.refreshed_at() or 0.0,
        )

    def _predicate(
        self, search: str, low_only: bool, snapshot: _Snapshot
    ) -> Callable[[InventoryItem], bool] | None:
        """The test an item must pass (None: every item does)."""
        default = self.default_threshold
        folded = snapshot.folded()
        needle = search[1:].casefold() if search.startswith("^") else search.casefold()

        text: Callable[[InventoryItem], bool]
        if search.startswith("^"):
            # Names with the prefix are one run of the name order: found by bisection.
            by_name, keys = snapshot.ordered("name")
            low = bisect.bisect_left(keys, (needle,))
            high = bisect.bisect_left(keys, (needle + "\U0010ffff",))
            prefixed = {item.item_name for item in by_name[low:high]}
            text = lambda item: item.item_name in prefixed  # noqa: E731
        else:

            def text(item: InventoryItem) -> bool:
                name, description = folded[item.item_name]
                return needle in name or needle in description

        if search and low_only:
            return lambda item: item.is_low(default) and text(item)
        if search:
            return text
        if low_only:
            return lambda item: item.is_low(default)
        return None

    def _live(self, page: list[InventoryItem]) -> list[InventoryItem]:
        """The page's rows as the table has them now; a row deleted meanwhile is left out.

        Differences are shown, not written back: under orders every view would find some stock
        moved, and each write-back makes every process decode the copy again. The rebuild
        (beat) brings the copy up to date."""
        rows = self.store.inventory_get_many((i.item_name for i in page), consistent=False)
        return [rows[i.item_name] for i in page if i.item_name in rows]

    def low_stock_count(self) -> int:
        """How many items are at or below their threshold (from the copy)."""
        return self._snapshot().low_count(self.default_threshold)


# -- the portal's catalogue -------------------------------------------------------------------

_lock = threading.Lock()
_instances: dict[str, Catalogue] = {}
_memory: dict[str, _MemoryBackend] = {}
_redis_down_until = 0.0


def _key(table: str) -> str:
    # One copy per table and endpoint: test workers and local runs share one Redis.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_DYNAMODB") or os.environ.get("AWS_ENDPOINT_URL", "")
    digest = hashlib.sha256(f"{endpoint}|{table}".encode()).hexdigest()[:16]
    return f"{settings.INVENTORY_CATALOGUE_KEY_PREFIX}{digest}"


def catalogue() -> Catalogue:
    """The catalogue of the configured Inventory table: in Redis when it answers, else in this
    process's memory (checked again after a minute)."""
    global _redis_down_until
    store = wiring.dynamo_store()
    key = _key(store.inventory_table)
    use_redis = time.monotonic() >= _redis_down_until
    name = f"{'redis' if use_redis else 'memory'}:{key}"
    with _lock:
        found = _instances.get(name)
        if found is not None:
            found.store = store
            return found
        backend: _Backend
        if use_redis:
            client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=1.0, socket_connect_timeout=0.5
            )
            try:
                client.ping()
                backend = _RedisBackend(client, key)
            except redis.RedisError:
                log.warning("Redis unreachable: the inventory catalogue is kept in memory")
                _redis_down_until = time.monotonic() + 60
                name = f"memory:{key}"
                backend = _memory.setdefault(key, _MemoryBackend())
        else:
            backend = _memory.setdefault(key, _MemoryBackend())
        made = Catalogue(
            backend,
            store,
            default_threshold=settings.INVENTORY_LOW_STOCK_DEFAULT,
            max_age=settings.INVENTORY_CATALOGUE_MAX_AGE_SECONDS,
        )
        _instances[name] = made
        return made


def reset_for_tests() -> None:
    """Forget every process-level catalogue (tests that switch tables or Redis)."""
    global _redis_down_until
    with _lock:
        _instances.clear()
        _memory.clear()
        _redis_down_until = 0.0


def note_written(item: InventoryItem | None) -> None:
    """After a portal write: keep the copy current (a failure here only delays it until the
    next rebuild, so it is logged, never raised over the write that succeeded)."""
    if item is None:
        return
    try:
        catalogue().note(item)
    except (redis.RedisError, OSError):
        log.warning("catalogue not updated after a write", extra={"item": item.item_name})


def note_deleted(name: str) -> None:
    """After a portal delete (see note_written)."""
    try:
        catalogue().forget(name)
    except (redis.RedisError, OSError):
        log.warning("catalogue not updated after a delete", extra={"item": name})


def low_stock_count() -> int:
    """Items at or below their low-stock threshold, for the dashboard and the metric."""
    return catalogue().low_stock_count()
