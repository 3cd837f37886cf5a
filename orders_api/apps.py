"""The order API's Django app configuration."""

from django.apps import AppConfig


class OrdersApiConfig(AppConfig):
    """API keys, usage plans and the order endpoints."""

    name = "orders_api"
    verbose_name = "Order API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the OpenAPI extension for the x-api-key scheme, and the key cache's signal
        handlers: every process that saves a key or plan (the admin, a management command, a
        shell) must tell the API's workers, even one that never served a request."""
        from orders_api import key_cache, schema  # noqa: F401 (importing registers them)
