#!/usr/bin/env python3
"""The seed's populate script: sample inventory into the Inventory table (idempotent).

    python scripts/populate-inventory.py [--reset]

Locally it writes to the running local system (its .local/pipeline.env); against AWS it uses
the environment (ORDERS_TABLE_NAME, INVENTORY_TABLE_NAME and your credentials). It is
`manage.py populate_inventory`, so the sample data is defined once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "populate_inventory", *sys.argv[1:]])
