"""The order API's Django app configuration."""

from django.apps import AppConfig


class OrdersApiConfig(AppConfig):
    """API keys, usage plans and the order endpoints."""

    name = "orders_api"
    verbose_name = "Order API"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Register the OpenAPI extension for the x-api-key scheme."""
        from orders_api import schema  # noqa: F401 (importing registers it)
