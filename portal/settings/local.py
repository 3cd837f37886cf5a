"""Settings for a developer's machine: DEBUG on, SQLite, the local runtime's env file loaded."""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import load_dotenv

from portal.settings.base import *  # noqa: F403 (settings modules extend base by design)
from portal.settings.base import BASE_DIR, DEFAULT_SQLITE_PATH, env_list, env_str

# `python -m pipeline.local` writes the endpoints and resource names here (its
# DEFAULT_ENV_FILE); variables already set win, so a shell can point the portal elsewhere.
PIPELINE_ENV_FILE = Path(env_str("PIPELINE_ENV_FILE", str(BASE_DIR / ".local" / "pipeline.env")))
if PIPELINE_ENV_FILE.exists():
    load_dotenv(PIPELINE_ENV_FILE, override=False)

DEBUG = True
LOGGING["handlers"]["console"]["formatter"] = env_str("DJANGO_LOG_FORMAT", "plain")  # noqa: F405
# Only for this machine: production refuses to start without its own DJANGO_SECRET_KEY.
SECRET_KEY = env_str("DJANGO_SECRET_KEY", "django-insecure-local-only-not-for-production")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

if not os.environ.get("DATABASE_URL"):
    DEFAULT_SQLITE_PATH.parent.mkdir(parents=True, exist_ok=True)

# Static files come from the apps' folders (WhiteNoise does this when DEBUG is on).
STATIC_ROOT = None
