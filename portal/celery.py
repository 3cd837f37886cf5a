"""The portal's Celery app: DLQ replay jobs and the periodic re-queue of stranded orders.

Broker and result backend come from Django's settings (CELERY_BROKER_URL, default REDIS_URL);
run it with `celery -A portal worker` and `celery -A portal beat` next to the portal.
"""

from __future__ import annotations

import os

from celery import Celery

# As manage.py: a worker started by hand on a developer's machine gets the local settings.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
