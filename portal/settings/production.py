"""Settings for AWS (Zappa): secrets and URLs from the environment, HTTPS everywhere."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured

from portal.settings.base import *  # noqa: F403 (settings modules extend base by design)
from portal.settings.base import env_bool, env_int, env_list

DEBUG = False

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: production settings refuse to start without a secret key"
    )
if not os.environ.get("DATABASE_URL"):
    # SQLite on Lambda would live in /tmp and vanish with the instance: keys and users lost.
    raise ImproperlyConfigured("DATABASE_URL is not set: production needs PostgreSQL")

# The portal's own host names only: its API's `<api-id>.execute-api.<region>.amazonaws.com`
# and any custom domain (`deploy.sh deploy` sets the API's after `zappa deploy`). No default:
# a pattern such as `.execute-api.<region>.amazonaws.com` would accept the host of every API
# in the region, and "*" any host at all.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS is not set: production needs the portal's host name(s), e.g. "
        "abc123.execute-api.us-east-1.amazonaws.com"
    )
if "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must name the portal's hosts, not '*'")

# API Gateway terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# `collectstatic` runs before `zappa package` (scripts/build_portal_package.sh); hashed names
# let browsers cache the admin's and the docs UI's assets for good.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# X-Ray: under Zappa the function traces (xray_tracing in zappa_settings.json); the middleware
# adds a subsegment per request and the SDK patch one per DynamoDB, SQS or Step Functions call,
# so a trace runs from the API to the pipeline's functions. Only in Lambda: elsewhere there is
# no daemon and no segment, and the SDK would only log its absence on every request.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    INSTALLED_APPS = [*INSTALLED_APPS, "aws_xray_sdk.ext.django"]  # noqa: F405
    MIDDLEWARE = ["aws_xray_sdk.ext.django.middleware.XRayMiddleware", *MIDDLEWARE]  # noqa: F405
    XRAY_RECORDER = {
        "AWS_XRAY_TRACING_NAME": "order-portal",
        "AUTO_INSTRUMENT": False,  # Django's DB and template instrumentation: noise here
        "PATCH_MODULES": ["boto3"],
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    }

# -- Background tasks in AWS ------------------------------------------------------------------
# With the stack's PortalTasksQueue in the environment (PORTAL_TASKS_QUEUE_URL, from its
# Outputs: scripts/portal_stack_env.py) and no broker named, Celery sends the portal's tasks to
# that SQS queue, and Zappa's SQS event source runs them on this same function
# (portal/lambda_tasks.py): no worker, nothing always on. Results still go to REDIS_URL (base).
PORTAL_TASKS_QUEUE_URL = os.environ.get("PORTAL_TASKS_QUEUE_URL", "")
if PORTAL_TASKS_QUEUE_URL and not os.environ.get("CELERY_BROKER_URL"):
    from portal.sqs_broker import sqs_transport_options

    CELERY_BROKER_URL = "sqs://"
    CELERY_BROKER_TRANSPORT_OPTIONS = sqs_transport_options(
        PORTAL_TASKS_QUEUE_URL,
        CELERY_TASK_DEFAULT_QUEUE,  # noqa: F405
    )
