"""The inventory CSV import as a background job: every row validated first (nothing is written
from a file with any bad row), then a clean file applied as creates and absolute sets, each one
a guarded write with its own audit entry; a row that already matches writes nothing, so
importing the same file again changes nothing."""

from __future__ import annotations

import base64
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from operations import catalogue, inventory_csv
from operations.audit import Action, audited
from operations.background import Progress, runs, start_job
from operations.models import BackgroundJob
from pipeline import wiring
from pipeline.domain import InventoryItem
from pipeline.errors import InventoryChangedMeanwhile, InventoryItemExists, InventoryItemNotFound
from pipeline.inventory import inventory_create, inventory_edit, inventory_set_stock
from pipeline.ports import InventoryStore

log = logging.getLogger(__name__)

OBJECT_TYPE = "operations.inventoryitem"
BATCH = 100  # rows read per BatchGetItem, and between progress writes


def start_import(
    data: bytes, *, user: AbstractBaseUser | AnonymousUser | None, reason: str, filename: str
) -> BackgroundJob:
    """Queue the import of an uploaded file (its bytes travel in the job's row, so the worker
    validates exactly what was uploaded). JobRefused while another import runs."""
    return start_job(
        BackgroundJob.Kind.INVENTORY_IMPORT,
        user=user,
        reason=reason,
        params={"filename": filename[:200], "csv_b64": base64.b64encode(data).decode()},
    )


def details(item: InventoryItem) -> dict[str, Any]:
    """What the audit log keeps of an item."""
    return {
        "stock": item.stock,
        "price": str(item.price),
        "description": item.description,
        "low_stock_threshold": item.low_stock_threshold,
    }


@runs(BackgroundJob.Kind.INVENTORY_IMPORT)
def run_import(job: BackgroundJob, progress: Progress) -> dict[str, Any]:
    """Validate the whole file; if clean, apply it row by row (see the module docstring)."""
    data = base64.b64decode(job.params.get("csv_b64", ""))
    parsed = inventory_csv.parse(
        data,
        max_bytes=settings.INVENTORY_IMPORT_MAX_BYTES,
        max_rows=settings.INVENTORY_IMPORT_MAX_ROWS,
    )
    if not parsed.ok:
        progress(0, 0)
        return {
            "valid": False,
            "error_count": parsed.error_count,
            "errors": [e.as_json() for e in parsed.errors],
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "conflicts": [],
        }
    return apply_items(
        parsed.items, store=wiring.dynamo_store(), user=job.requested_by, job=job, progress=progress
    )


def apply_items(
    items: list[InventoryItem],
    *,
    store: InventoryStore,
    user: Any,
    job: BackgroundJob,
    progress: Progress,
) -> dict[str, Any]:
    """Create the absent items and set the others to the file's values, each write guarded on
    the row as read just before it; a row changed meanwhile is reported, never overwritten."""
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    conflicts: list[dict[str, str]] = []
    progress(0, len(items))
    for start in range(0, len(items), BATCH):
        batch = items[start : start + BATCH]
        current = store.inventory_get_many(i.item_name for i in batch)
        for item in batch:
            try:
                outcome = _apply_one(item, current.get(item.item_name), store, user, job)
            except (InventoryChangedMeanwhile, InventoryItemExists, InventoryItemNotFound) as exc:
                conflicts.append({"item": item.item_name, "reason": str(exc)})
                continue
            counts[outcome] += 1
        progress(start + len(batch), None)
    return {"valid": True, "errors": [], "error_count": 0, **counts, "conflicts": conflicts}


def _apply_one(
    item: InventoryItem,
    row: InventoryItem | None,
    store: InventoryStore,
    user: Any,
    job: BackgroundJob,
) -> str:
    name = item.item_name
    reason = f"CSV import ({job.params.get('filename', 'file')}, job {job.pk})"
    ref = (OBJECT_TYPE, name)
    if row is None:
        with audited(
            user,
            Action.INVENTORY_CREATE,
            ref,
            after=details(item),
            reason=reason,
            refusals=(InventoryItemExists,),
            item_name=name,
            actor=job.actor,
        ) as entry:
            created = inventory_create(
                store=store,
                item_name=name,
                stock=item.stock,
                price=item.price,
                description=item.description,
                low_stock_threshold=item.low_stock_threshold,
            )
            entry.message = f"Created {name} from a CSV import."
        catalogue.note_written(created)
        return "created"
    wrote = False
    new_details = (item.price, item.description, item.low_stock_threshold)
    if new_details != (row.price, row.description, row.low_stock_threshold):
        with audited(
            user,
            Action.INVENTORY_UPDATE,
            ref,
            before=details(row),
            after={**details(row), **_detail_fields(item)},
            reason=reason,
            refusals=(InventoryChangedMeanwhile, InventoryItemNotFound),
            item_name=name,
            actor=job.actor,
        ) as entry:
            row = inventory_edit(
                store=store,
                seen=row,
                price=item.price,
                description=item.description,
                low_stock_threshold=item.low_stock_threshold,
            )
            entry.message = f"Price, description and threshold of {name} set from a CSV import."
        wrote = True
    if item.stock != row.stock:
        with audited(
            user,
            Action.INVENTORY_ADJUST,
            ref,
            before={"stock": row.stock},
            after={"stock": item.stock},
            reason=reason,
            refusals=(InventoryChangedMeanwhile, InventoryItemNotFound),
            item_name=name,
            actor=job.actor,
            detail={"set": True},
        ) as entry:
            row = inventory_set_stock(
                store=store, item_name=name, seen_stock=row.stock, stock=item.stock
            )
            entry.message = f"Stock of {name} set to {item.stock} from a CSV import."
        wrote = True
    if wrote:
        catalogue.note_written(row)
    return "updated" if wrote else "unchanged"


def _detail_fields(item: InventoryItem) -> dict[str, Any]:
    return {
        "price": str(item.price),
        "description": item.description,
        "low_stock_threshold": item.low_stock_threshold,
    }
