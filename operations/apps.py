"""The operations app's Django configuration."""

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    """Staff pages under /ops/, their audit log and background jobs."""

    name = "operations"
    verbose_name = "Operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Load the Celery app, so the tasks' shared_task binds to it in every process; keep
        the role groups (operations/roles.py) present after every migrate or flush."""
        from django.db.models.signals import post_migrate

        import portal.celery  # noqa: F401 (importing configures it)
        from operations.roles import restore_missing_roles

        post_migrate.connect(restore_missing_roles, sender=self)
