"""`manage.py create_api_key <client name>`: a new key for a client; the key is printed once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from orders_api.models import ClientAPIKey, UsagePlan


def _parse_expiry(raw: str) -> datetime:
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--expires: not an ISO 8601 date or time: {raw!r}") from None
    # A date or a time without an offset is taken as UTC, the portal's only time zone.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Command(BaseCommand):
    """Create a key; its last line of output is the key alone, for scripts to capture."""

    help = "Create an API key for a client. The key is shown once and stored only hashed."

    def add_arguments(self, parser: CommandParser) -> None:
        """client name, --plan, --expires."""
        parser.add_argument("client_name", help="who the key is for (50 characters at most)")
        parser.add_argument("--plan", help="usage plan name (default: 50/s, burst 100, 10,000/day)")
        parser.add_argument(
            "--expires", help="ISO 8601 date or time after which the key stops working"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the key and print it."""
        name = options["client_name"].strip()
        if not name or len(name) > 50:
            raise CommandError("client name must be 1 to 50 characters")
        plan = None
        if options["plan"]:
            plan = UsagePlan.objects.filter(name=options["plan"]).first()
            if plan is None:
                names = ", ".join(UsagePlan.objects.values_list("name", flat=True)) or "none yet"
                raise CommandError(
                    f"no usage plan named {options['plan']!r} (plans: {names}); "
                    "create plans in the admin"
                )
        expiry = _parse_expiry(options["expires"]) if options["expires"] else None
        if expiry is not None and expiry <= datetime.now(UTC):
            raise CommandError("--expires is in the past")
        key_obj, key = ClientAPIKey.objects.create_key(name=name, plan=plan, expiry_date=expiry)
        limits = key_obj.limits
        quota = limits.daily_quota if limits.daily_quota is not None else "unlimited"
        self.stdout.write(f"Created API key {key_obj.prefix} for {name!r}")
        self.stdout.write(
            f"Plan: {plan.name if plan else 'default'} ({limits.rate_limit:g}/s, "
            f"burst {limits.burst_limit}, {quota}/day)"
        )
        self.stdout.write(f"Expires: {expiry.isoformat() if expiry else 'never'}")
        self.stdout.write(
            "Send it in the x-api-key header; it is stored hashed, never shown again:"
        )
        self.stdout.write(key)
