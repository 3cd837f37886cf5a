"""The portal's Celery app: DLQ replay jobs and the periodic re-queue of stranded orders.

Broker and result backend come from Django's settings (CELERY_BROKER_URL, default REDIS_URL);
run it with `celery -A portal worker` and `celery -A portal beat` next to the portal.
"""

from __future__ import annotations

import os

from celery import Celery

# As portal/wsgi.py: a worker started without DJANGO_SETTINGS_MODULE gets the production
# settings, which refuse to start without their secrets, never the local ones (DEBUG, a known
# key). deploy.sh local and the tests name their settings themselves.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.production")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
