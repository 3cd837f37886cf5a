"""Settings shared by every environment, read from the environment (twelve-factor style)."""

from __future__ import annotations

import os
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parents[2]


def env_str(name: str, default: str = "") -> str:
    """A string from the environment; an empty value counts as unset."""
    return os.environ.get(name) or default


def env_bool(name: str, default: bool) -> bool:
    """A yes/no switch from the environment (1/true/yes/on and 0/false/no/off)."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, got {raw!r}")


def env_int(name: str, default: int) -> int:
    """A whole number from the environment."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    """A number from the environment."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated list from the environment."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return list(default)
    return [part.strip() for part in raw.split(",") if part.strip()]


# Each environment's module sets or demands it; base never invents one.
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    # Before the admin: its templates/admin/index.html adds the operations links to the index.
    "operations",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Needed even with our own key model: AbstractAPIKey lives beside its concrete APIKey.
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "orders_api",
]

MIDDLEWARE = [
    "orders_api.middleware.ApiJsonErrorsMiddleware",  # first: JSON for every API error, never HTML
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, the docs UI's assets) are served by the app itself: under Zappa
    # there is no other web server, and nothing may come from a CDN.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The staff member's time zone for every date shown (none read for API clients).
    "operations.time_zones.StaffTimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "portal" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite unless DATABASE_URL says otherwise (PostgreSQL in tests and production). Persistent
# connections save a connect per request; health checks drop ones the server closed meanwhile.
DEFAULT_SQLITE_PATH = BASE_DIR / ".local" / "portal.sqlite3"
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# The zone the portal shows dates in (an IANA name); each staff member may choose their own
# on /ops/preferences/ (operations/time_zones.py). Stored times stay UTC.
TIME_ZONE = env_str("PORTAL_TIME_ZONE", "UTC")
try:
    ZoneInfo(TIME_ZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"PORTAL_TIME_ZONE must be an IANA time zone name such as Europe/Paris, got {TIME_ZONE!r}"
    ) from None
USE_I18N = True
USE_TZ = True

STATIC_URL = env_str("DJANGO_STATIC_URL", "static/")
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# -- The order API ---------------------------------------------------------------------------

# The seed's clients send `x-api-key`, as API Gateway wanted.
API_KEY_CUSTOM_HEADER = "HTTP_X_API_KEY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["orders_api.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["orders_api.auth.HasClientApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["orders_api.throttling.UsagePlanThrottle"],
    # JSON only: no browsable API (a template render per request) and no form parsing.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["orders_api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "orders_api.exception_handler.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # No request.user is needed by the API; None skips building an AnonymousUser.
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Order API",
    "DESCRIPTION": (
        "Submit orders to the order pipeline and follow them to shipping. Every request needs "
        "an API key in the `x-api-key` header; each key has a usage plan (requests per second, "
        "burst, requests per day)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs UI's JavaScript and CSS come from drf-spectacular-sidecar, served by us.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two choice sets share the field name Status: name both, for stable generated clients.
    "ENUM_NAME_OVERRIDES": {
        "OrderStatusEnum": "pipeline.statuses.OrderStatus",
        "SubmittedStatusEnum": ["PENDING"],
    },
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
}

# Largest request body /submitorder reads; a bigger one is refused with 413 unread.
ORDERS_API_MAX_BODY_BYTES = env_int("ORDERS_API_MAX_BODY_BYTES", 64 * 1024)

# Per-key limits shared by every process and Lambda instance (see orders_api/ratelimit.py).
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
RATE_LIMIT_ENABLED = env_bool("RATE_LIMIT_ENABLED", True)
# How long a process may answer from its cache of API keys (orders_api/key_cache.py) when a
# key changes behind the ORM's back (a change through the ORM, as the admin's, is seen by every
# process at its next request through a version number in Redis under the key below; without
# Redis nothing is cached). 0: no cache.
API_KEY_CACHE_SECONDS = env_float("API_KEY_CACHE_SECONDS", 10.0)
API_KEY_CACHE_VERSION_KEY = env_str("API_KEY_CACHE_VERSION_KEY", "orders-api:api-keys:version")
RATE_LIMIT_KEY_PREFIX = env_str("RATE_LIMIT_KEY_PREFIX", "orders-api:")
# What to do while Redis cannot be reached: "allow" keeps taking orders (keys are still
# checked) and counts RateLimiterUnavailable, which template.yaml alarms on; "deny" answers
# 503 instead. Allow is the default on purpose: an outage of the limiter's store should not
# stop order intake, and the alarm makes the unlimited spell visible (docs/security.md).
RATE_LIMIT_ON_REDIS_ERROR = env_str("RATE_LIMIT_ON_REDIS_ERROR", "allow")
if RATE_LIMIT_ON_REDIS_ERROR not in ("allow", "deny"):
    raise ImproperlyConfigured("RATE_LIMIT_ON_REDIS_ERROR must be 'allow' or 'deny'")
RATE_LIMIT_REDIS_TIMEOUT = env_float("RATE_LIMIT_REDIS_TIMEOUT", 0.25)
# After a Redis failure, skip Redis for this long instead of waiting on every request.
RATE_LIMIT_REDIS_RETRY_SECONDS = env_float("RATE_LIMIT_REDIS_RETRY_SECONDS", 5.0)
# Failed authentications per client address, counted in the same Redis (docs/security.md):
# after LIMIT failures within WINDOW seconds of the first one, the address gets 429 until the
# window ends, before its credentials are even looked up. A limit of 0 turns one off.
API_KEY_FAILURE_LIMIT = env_int("API_KEY_FAILURE_LIMIT", 20)
API_KEY_FAILURE_WINDOW = env_float("API_KEY_FAILURE_WINDOW", 300.0)
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 10)
LOGIN_FAILURE_WINDOW = env_float("LOGIN_FAILURE_WINDOW", 900.0)
# Proxies of our own in front of the entry point (API Gateway under Zappa, gunicorn elsewhere)
# that append to X-Forwarded-For; 0 ignores that header, which any client can write.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
# The seed's usage plan, for keys that have none of their own.
DEFAULT_USAGE_PLAN = {
    "rate_limit": env_float("DEFAULT_PLAN_RATE_LIMIT", 50.0),
    "burst_limit": env_int("DEFAULT_PLAN_BURST_LIMIT", 100),
    "daily_quota": env_int("DEFAULT_PLAN_DAILY_QUOTA", 10_000),
}

# CloudWatch embedded metrics: under Zappa, stdout lines become metrics in this namespace.
METRICS_NAMESPACE = env_str("POWERTOOLS_METRICS_NAMESPACE", "OrderProcessing")
METRICS_ENABLED = env_bool("ORDERS_API_METRICS_ENABLED", True)

# JSON lines (Powertools' formatter): CloudWatch Logs Insights can query every field, and a
# line about an order carries its order_id. DJANGO_LOG_FORMAT=plain for a terminal.
LOG_FORMAT = env_str("DJANGO_LOG_FORMAT", "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "aws_lambda_powertools.logging.formatter.LambdaPowertoolsFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env_str("DJANGO_LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # The SDK logs every endpoint lookup at INFO.
        "botocore": {"level": "WARNING"},
        "boto3": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}

# -- Operations pages and background jobs (operations app, Celery) -------------------------------

# Celery's broker and result backend; both default to REDIS_URL. The worker and beat read the
# same settings (celery -A portal worker / beat), so set these where the portal's are set.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", CELERY_BROKER_URL)
# Runs tasks in the calling process (tests, or a portal without a worker): no Redis needed.
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
# The queue the portal's tasks go to and its worker reads (`-Q`); tests use one of their own.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "portal")
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A click on "replay" must not hang while Redis is down: give up fast and say so on the page.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu's folder transport: the local system's broker on a machine without Redis.
    CELERY_FILESYSTEM_DIR = Path(env_str("CELERY_FILESYSTEM_DIR", str(BASE_DIR / ".local/celery")))
    for folder in ("queue", "processed", "control"):
        (CELERY_FILESYSTEM_DIR / folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_FILESYSTEM_DIR / "queue"),
        "data_folder_out": str(CELERY_FILESYSTEM_DIR / "queue"),
        "processed_folder": str(CELERY_FILESYSTEM_DIR / "processed"),
        # kombu keeps its exchange tables (*.exchange) here; its default is ./control in the
        # working directory, which put runtime files in the repository.
        "control_folder": str(CELERY_FILESYSTEM_DIR / "control"),
        "store_processed": False,
    }
# The safety net for RESERVED orders whose queue message was lost (celery beat).
OPS_REQUEUE_STRANDED_SECONDS = env_float("OPS_REQUEUE_STRANDED_SECONDS", 300.0)
# Leave orders reserved less than this long ago (their message may be on its way), and orders
# already re-sent this many times (their message keeps failing: a person must look).
OPS_REQUEUE_STRANDED_MIN_AGE = env_float("OPS_REQUEUE_STRANDED_MIN_AGE", 120.0)
OPS_REQUEUE_STRANDED_MAX = env_int("OPS_REQUEUE_STRANDED_MAX", 3)
# The stranded-order sweepers (pipeline/sweeps.py, docs/operations.md): how often beat runs
# them, how long an order must sit still before it counts as stranded (PENDING: its stream
# record is lost; RESERVED / PAID: no live workflow), how many workflow runs and re-sends of a
# run's message an order gets before it is released (RESERVED) or flagged (PAID), and how many
# orders one run reads at most. A sweep beat sent while no worker ran expires rather than pile
# up (the next one does the same work).
OPS_SWEEP_SECONDS = env_float("OPS_SWEEP_SECONDS", 60.0)
OPS_SWEEP_PENDING_MIN_AGE = env_float("OPS_SWEEP_PENDING_MIN_AGE", 120.0)
OPS_SWEEP_RESERVED_MIN_AGE = env_float("OPS_SWEEP_RESERVED_MIN_AGE", 300.0)
OPS_SWEEP_PAID_MIN_AGE = env_float("OPS_SWEEP_PAID_MIN_AGE", 300.0)
OPS_SWEEP_MAX_RUNS = env_int("OPS_SWEEP_MAX_RUNS", 3)
OPS_SWEEP_MAX_RESENDS = env_int("OPS_SWEEP_MAX_RESENDS", 3)
OPS_SWEEP_MAX_ORDERS = env_int("OPS_SWEEP_MAX_ORDERS", 100)
# Inventory (operations/catalogue.py): the low-stock threshold of items without their own; the
# catalogue copy in Redis that search and paging read, rebuilt from the table by beat every
# REFRESH seconds and by a page view that finds it older than MAX_AGE (the staleness bound for
# writes made outside the portal); the beat task also publishes the LowStockItems metric.
INVENTORY_LOW_STOCK_DEFAULT = env_int("INVENTORY_LOW_STOCK_DEFAULT", 10)
INVENTORY_CATALOGUE_REFRESH_SECONDS = env_float("INVENTORY_CATALOGUE_REFRESH_SECONDS", 60.0)
INVENTORY_CATALOGUE_MAX_AGE_SECONDS = env_float("INVENTORY_CATALOGUE_MAX_AGE_SECONDS", 300.0)
INVENTORY_CATALOGUE_KEY_PREFIX = env_str("INVENTORY_CATALOGUE_KEY_PREFIX", "ops:catalogue:")
# CSV imports: the largest file accepted, and the most rows in it.
INVENTORY_IMPORT_MAX_BYTES = env_int("INVENTORY_IMPORT_MAX_BYTES", 5 * 1024 * 1024)
INVENTORY_IMPORT_MAX_ROWS = env_int("INVENTORY_IMPORT_MAX_ROWS", 20_000)
if INVENTORY_LOW_STOCK_DEFAULT < 0:
    raise ImproperlyConfigured("INVENTORY_LOW_STOCK_DEFAULT must be 0 or more")
# A background job (operations.BackgroundJob) whose worker has not written its row for this
# long is taken as dead and may be run again; a worker writes at least every batch.
OPS_JOB_STALE_SECONDS = env_float("OPS_JOB_STALE_SECONDS", 120.0)
# How many RESERVED orders one staff-run re-queue examines (one DescribeExecution each).
OPS_REQUEUE_STRANDED_MAX_ORDERS = env_int("OPS_REQUEUE_STRANDED_MAX_ORDERS", 1000)
CELERY_BEAT_SCHEDULE = {
    "inventory-catalogue-refresh": {
        "task": "operations.refresh_inventory_catalogue",
        "schedule": INVENTORY_CATALOGUE_REFRESH_SECONDS,
        "options": {"expires": INVENTORY_CATALOGUE_REFRESH_SECONDS},
    },
    "requeue-stranded-orders": {
        "task": "operations.requeue_stranded_orders",
        "schedule": OPS_REQUEUE_STRANDED_SECONDS,
    },
    "sweep-stranded-pending": {
        "task": "operations.sweep_stranded_pending",
        "schedule": OPS_SWEEP_SECONDS,
        "options": {"expires": OPS_SWEEP_SECONDS},
    },
    "sweep-stranded-reserved": {
        "task": "operations.sweep_stranded_reserved",
        "schedule": OPS_SWEEP_SECONDS,
        "options": {"expires": OPS_SWEEP_SECONDS},
    },
    "sweep-stranded-paid": {
        "task": "operations.sweep_stranded_paid",
        "schedule": OPS_SWEEP_SECONDS,
        "options": {"expires": OPS_SWEEP_SECONDS},
    },
}

# Orders listed per page (one StatusIndex / CustomerPrefixIndex query each).
OPS_ORDERS_PAGE_SIZE = env_int("OPS_ORDERS_PAGE_SIZE", 25)
# The dashboard counts orders per status up to about this many each (COUNT queries cost reads).
OPS_STATUS_COUNT_CAP = env_int("OPS_STATUS_COUNT_CAP", 10_000)
# How long the dashboard's table sizes (DescribeTable's estimate, which DynamoDB refreshes about
# every six hours) are kept in Redis for every process; the page shows their age. 0: read on
# every view.
OPS_DASHBOARD_TABLE_COUNT_SECONDS = env_float("OPS_DASHBOARD_TABLE_COUNT_SECONDS", 60.0)
# The DLQ page shows at most this many messages, each hidden this long while looked at.
OPS_DLQ_PEEK_MAX = env_int("OPS_DLQ_PEEK_MAX", 50)
OPS_DLQ_PEEK_VISIBILITY = env_int("OPS_DLQ_PEEK_VISIBILITY", 30)
# DLQ replays (operations/jobs.py): messages sent per second by default (at most 500, the cap of
# SQS's own redrive; the default leaves room under Step Functions' StartExecution refill);
# how long a received message stays hidden while a replay holds it; the long poll (it must end
# before the SDK's 5 s read timeout in pipeline/aws.py, or the receive is retried as timed out);
# and how long a running job's row may go unwritten before its worker counts as dead (it writes
# the row after every batch, and a batch waits at most one long poll).
OPS_REPLAY_RATE = env_float("OPS_REPLAY_RATE", 100.0)
OPS_REPLAY_VISIBILITY = env_int("OPS_REPLAY_VISIBILITY", 60)
OPS_REPLAY_WAIT_SECONDS = env_int("OPS_REPLAY_WAIT_SECONDS", 3)
OPS_REPLAY_STALE_SECONDS = env_float("OPS_REPLAY_STALE_SECONDS", 60.0)
if not 0 < OPS_REPLAY_RATE <= 500:
    raise ImproperlyConfigured("OPS_REPLAY_RATE must be more than 0 and at most 500")
if not 0 <= OPS_REPLAY_WAIT_SECONDS <= 3:
    raise ImproperlyConfigured("OPS_REPLAY_WAIT_SECONDS must be 0 to 3 (under the SDK's timeout)")
if OPS_REPLAY_STALE_SECONDS <= 2 * OPS_REPLAY_WAIT_SECONDS:
    raise ImproperlyConfigured("OPS_REPLAY_STALE_SECONDS must be more than twice the long poll")
