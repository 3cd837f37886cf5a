"""Settings for pytest-django: real PostgreSQL and Redis on 127.0.0.1, fast password hashing."""

from __future__ import annotations

import dj_database_url

from portal.settings.base import *  # noqa: F403 (settings modules extend base by design)
from portal.settings.base import env_bool, env_float, env_int, env_str

DEBUG = False
SECRET_KEY = "test-only-secret-key-not-for-any-deployed-environment-0123456789"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

# pytest-django creates test_orders_portal (test_orders_portal_gwN under xdist) from this.
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orders_portal"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}

# A database of its own; every test also gets its own key prefix (tests/integration/api).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/9")
# base derived these from its own REDIS_URL; follow the test database's.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
# Tasks run in the test's process unless a test starts a real worker (and says so).
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", True)

# Every dashboard view reads its tables afresh, as the tests of its calls and parts expect; the
# tests of the kept counts turn keeping on themselves (tests/integration/ops/).
OPS_DASHBOARD_TABLE_COUNT_SECONDS = env_float("OPS_DASHBOARD_TABLE_COUNT_SECONDS", 0.0)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Serve static files from the apps' folders, as in development: no collectstatic in tests.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT = None
