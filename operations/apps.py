"""The operations app's Django configuration."""

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Staff pages under /ops/, their audit log and background jobs."""

    name = "operations"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Load the Celery app, so the tasks' shared_task binds to it in every process."""
        import portal.celery  # noqa: F401 (importing configures it)
