"""The mock carriers: carrier selection, carrier-shaped tracking numbers, delivery estimates."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from pipeline.config import rate_from_env
from pipeline.domain import utc_now
from pipeline.errors import AddressRejected, CarrierUnavailable
from pipeline.ports import Shipment

# Postal codes the mock carriers treat specially, like a carrier sandbox's test addresses.
UNDELIVERABLE_POSTCODE = "00000"
CARRIER_DOWN_POSTCODE = "99999"

HIGH_VALUE = Decimal("500")  # insured express at or above this
BULKY_UNITS = 10  # ground freight above this many units


@dataclass(frozen=True)
class ServiceLevel:
    """A carrier's service and how many business days it takes."""

    carrier: str
    service: str
    business_days: int


FEDEX_PRIORITY = ServiceLevel("FedEx", "Priority Overnight (insured)", 1)
UPS_GROUND = ServiceLevel("UPS", "Ground", 3)
USPS_GROUND = ServiceLevel("USPS", "Ground Advantage", 5)


def select_service(*, total_value: Decimal, units: int) -> ServiceLevel:
    """Valuable parcels go insured express, bulky ones by ground, the rest by the postal service."""
    if total_value >= HIGH_VALUE:
        return FEDEX_PRIORITY
    if units > BULKY_UNITS:
        return UPS_GROUND
    return USPS_GROUND


def add_business_days(start: date, days: int) -> date:
    """The date `days` working days (Monday to Friday) after `start`."""
    current = start
    remaining = days
    while remaining > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            remaining -= 1
    return current


def _ups_check_digit(body: str) -> str:
    # UPS: letters map to digits ((ord - 63) % 10), odd positions count once, even twice.
    digits = [int(c) if c.isdigit() else (ord(c) - 63) % 10 for c in body]
    total = sum(d if i % 2 == 0 else 2 * d for i, d in enumerate(digits))
    return str((10 - total % 10) % 10)


def _mod10_weighted(digits: str, weights: tuple[int, ...]) -> str:
    total = sum(int(d) * weights[i % len(weights)] for i, d in enumerate(reversed(digits)))
    return str((10 - total % 10) % 10)


def tracking_number(carrier: str, rng: random.Random) -> str:
    """A tracking number in the carrier's own format, with its check digit."""
    if carrier == "UPS":
        shipper = "".join(rng.choice("ABCDEFGHJKLMNPRSTVWXY0123456789") for _ in range(6))
        body = shipper + "03" + "".join(rng.choice("0123456789") for _ in range(7))
        return "1Z" + body + _ups_check_digit(body)
    if carrier == "FedEx":
        body = "".join(rng.choice("0123456789") for _ in range(11))
        check = sum(int(d) * (1, 3, 7)[i % 3] for i, d in enumerate(reversed(body))) % 11 % 10
        return body + str(check)
    # USPS Intelligent Mail package barcode: 94 service code, 20 digits, mod-10 check (3,1).
    body = "9400" + "".join(rng.choice("0123456789") for _ in range(17))
    return body + _mod10_weighted(body, (3, 1))


class MockCarriers:
    """Books shipments with the selected carrier; fails like a carrier API can."""

    def __init__(self, *, failure_rate: float = 0.0, rng: random.Random | None = None):
        self.failure_rate = failure_rate
        self._rng = rng or random.Random()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> MockCarriers:
        """SHIPPING_FAILURE_RATE: share of bookings that fail transiently (default 0)."""
        env = os.environ if environ is None else environ
        return cls(failure_rate=rate_from_env(env, "SHIPPING_FAILURE_RATE", 0.0))

    def book(
        self,
        *,
        total_value: Decimal,
        units: int,
        address: Mapping[str, str] | None,
        today: date | None = None,
    ) -> Shipment:
        """Book a shipment; raise AddressRejected or CarrierUnavailable."""
        postcode = str((address or {}).get("PostalCode", "")).strip()
        if postcode == UNDELIVERABLE_POSTCODE:
            raise AddressRejected(f"carrier cannot deliver to postal code {postcode}")
        if postcode == CARRIER_DOWN_POSTCODE:
            raise CarrierUnavailable("carrier booking API unavailable (test address)")
        if self._rng.random() < self.failure_rate:
            raise CarrierUnavailable("carrier booking API returned 503")
        level = select_service(total_value=total_value, units=units)
        shipped = today or datetime.now().date()
        return Shipment(
            carrier=level.carrier,
            service=level.service,
            tracking_number=tracking_number(level.carrier, self._rng),
            estimated_delivery=add_business_days(shipped, level.business_days).isoformat(),
            shipped_at=utc_now(),
        )
