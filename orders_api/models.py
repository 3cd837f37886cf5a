"""API keys of the order API's clients and the usage plans that limit them."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from rest_framework_api_key.models import AbstractAPIKey, BaseAPIKeyManager


@dataclass(frozen=True)
class Limits:
    """What a usage plan allows: a token bucket (rate, burst) and a daily quota (None: none)."""

    rate_limit: float
    burst_limit: int
    daily_quota: int | None


class UsagePlan(models.Model):
    """A named set of limits, like an API Gateway usage plan; keys without one get the seed's."""

    name = models.CharField(max_length=50, unique=True)
    rate_limit = models.FloatField(
        default=50.0,
        validators=[MinValueValidator(0.01)],
        help_text="Requests per second sustained (the token bucket's refill rate).",
    )
    burst_limit = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(1)],
        help_text="Requests allowed at once after a quiet period (the bucket's size).",
    )
    daily_quota = models.PositiveIntegerField(
        default=10_000,
        null=True,
        blank=True,
        help_text="Requests per UTC day; empty for no quota.",
    )
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        quota = f"{self.daily_quota}/day" if self.daily_quota is not None else "no daily quota"
        return f"{self.name} ({self.rate_limit:g}/s, burst {self.burst_limit}, {quota})"

    @property
    def limits(self) -> Limits:
        """The plan's numbers."""
        return Limits(self.rate_limit, self.burst_limit, self.daily_quota)


def default_limits() -> Limits:
    """The limits of a key without a plan (settings.DEFAULT_USAGE_PLAN: the seed's plan)."""
    plan = settings.DEFAULT_USAGE_PLAN
    quota = plan.get("daily_quota")
    return Limits(float(plan["rate_limit"]), int(plan["burst_limit"]), quota or None)


class ClientAPIKeyManager(BaseAPIKeyManager):
    """Finds keys with their plan in one query."""

    def get_usable_keys(self) -> models.QuerySet[ClientAPIKey]:
        """Unrevoked keys, each with its plan joined in."""
        return super().get_usable_keys().select_related("plan")

    def find(self, raw_key: str) -> ClientAPIKey | None:
        """The key `raw_key` names and matches (revoked and expired ones included), or None."""
        prefix, dot, _ = raw_key.partition(".")
        if not dot or not prefix:
            return None
        try:
            # prefix is unique: one indexed lookup, the plan joined in.
            key = self.select_related("plan").get(prefix=prefix)
        except self.model.DoesNotExist:
            return None
        return key if key.is_valid(raw_key) else None


class ClientAPIKey(AbstractAPIKey):
    """An API client's key (stored hashed); its prefix is the client id written on orders."""

    plan = models.ForeignKey(
        UsagePlan,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="keys",
        help_text="Limits for this key; empty for the default plan (50/s, burst 100, 10,000/day).",
    )

    objects = ClientAPIKeyManager()

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "client API key"
        verbose_name_plural = "client API keys"
        # Operators add and remove a key's webhook endpoints (orders_api/webhook_admin.py).
        permissions = [("manage_webhooks", "Can manage the webhook endpoints of API keys")]

    @property
    def client_id(self) -> str:
        """The key's public, stable id: stored on its orders as ClientId."""
        return self.prefix

    @property
    def limits(self) -> Limits:
        """The limits that apply to this key."""
        return self.plan.limits if self.plan is not None else default_limits()
