"""`manage.py populate_inventory`: the seed's catalogue in the Inventory table, re-runnable."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipeline import wiring
from pipeline.config import MissingSetting
from pipeline.domain import InventoryItem
from pipeline.errors import InventoryItemExists
from pipeline.inventory import inventory_create, inventory_reset

# The seed's laptop, mouse and keyboard first, then a shop's worth more. Prices are Decimal:
# DynamoDB refuses floats (the seed's "Float types not supported" trap).
CATALOGUE: tuple[InventoryItem, ...] = (
    InventoryItem("laptop", 50, Decimal("999.99"), "15-inch laptop, 16 GB RAM, 512 GB SSD"),
    InventoryItem("mouse", 200, Decimal("25.50"), "Wireless optical mouse"),
    InventoryItem("keyboard", 150, Decimal("75.00"), "Mechanical keyboard, US layout"),
    InventoryItem("monitor", 40, Decimal("249.00"), "27-inch 1440p IPS monitor"),
    InventoryItem("headphones", 80, Decimal("129.95"), "Over-ear noise-cancelling headphones"),
    InventoryItem("webcam", 60, Decimal("59.99"), "1080p webcam with microphone"),
    InventoryItem("usb-c-hub", 120, Decimal("39.90"), "7-port USB-C hub with HDMI"),
    InventoryItem("docking-station", 30, Decimal("189.00"), "Thunderbolt docking station"),
    InventoryItem("external-ssd", 70, Decimal("109.00"), "1 TB portable SSD"),
    InventoryItem("desk-lamp", 90, Decimal("34.75"), "LED desk lamp, dimmable"),
    InventoryItem("office-chair", 20, Decimal("329.00"), "Ergonomic office chair"),
    InventoryItem("mouse-pad", 300, Decimal("9.99"), "Large cloth mouse pad"),
    InventoryItem("laptop-stand", 100, Decimal("45.00"), "Adjustable aluminium laptop stand"),
)


class Command(BaseCommand):
    """Create the catalogue's items that are missing; with --reset, set all of them back."""

    help = (
        "Fill the Inventory table with the sample catalogue. Existing items keep their stock "
        "and price unless --reset is given."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--reset."""
        parser.add_argument(
            "--reset",
            action="store_true",
            help="set existing items back to the catalogue's stock, price and description",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Write each item through its use case and report what happened to it."""
        try:
            store = wiring.dynamo_store()
        except MissingSetting as exc:
            raise CommandError(
                f"{exc}: start the local runtime (python -m pipeline.local) or set the "
                "pipeline's environment"
            ) from exc
        reset = options["reset"]
        created = kept = overwritten = 0
        total = len(CATALOGUE)
        self.stdout.write(f"Populating {store.inventory_table} with {total} items...")
        for number, item in enumerate(CATALOGUE, start=1):
            where = f"[{number:>2}/{total}] {item.item_name:<16}"
            fields = {
                "item_name": item.item_name,
                "stock": item.stock,
                "price": item.price,
                "description": item.description,
            }
            if reset:
                inventory_reset(store=store, **fields)
                overwritten += 1
                self.stdout.write(f"{where} reset: stock {item.stock}, price {item.price}")
                continue
            try:
                inventory_create(store=store, **fields)
            except InventoryItemExists:
                kept += 1
                self.stdout.write(f"{where} exists: kept as it is")
            else:
                created += 1
                self.stdout.write(f"{where} created: stock {item.stock}, price {item.price}")
        summary = f"Done: {created} created, {kept} kept, {overwritten} reset."
        self.stdout.write(self.style.SUCCESS(summary))
