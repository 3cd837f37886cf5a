"""`manage.py backfill_order_search`: put orders written before the customer search index in it."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pipeline import wiring


class Command(BaseCommand):
    """Write CustomerKey and CustomerPrefix on every order that lacks them (one table scan;
    each write conditional, so running it again, or while orders arrive, is safe)."""

    help = (
        "Add the customer search attributes to orders written before the CustomerPrefixIndex "
        "existed, so the admin's customer search finds them. Reads the whole Orders table once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the backfill and say how many orders it read and wrote."""
        read, written = wiring.dynamo_store().orders_backfill_search_keys()
        self.stdout.write(f"Read {read} order(s); added the search attributes to {written}.")
