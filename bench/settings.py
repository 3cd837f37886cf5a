"""The benchmarks' portal settings: production's, with the intake comparison endpoints mounted
and static files named as they are (no collectstatic manifest needed to render a page)."""

from portal.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.intake_site"
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
