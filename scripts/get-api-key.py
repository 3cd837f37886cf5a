#!/usr/bin/env python3
"""The seed's get-api-key script: create an API key and print it alone on the last line.

    python scripts/get-api-key.py [CLIENT_NAME] [--plan NAME] [--expires ISO]

Keys live (hashed) in the portal's database, so a key is created rather than looked up: the
portal never stores a key it could show again. It is `manage.py create_api_key`.
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

    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        args = ["local-client", *args]
    execute_from_command_line(["manage.py", "create_api_key", *args])
