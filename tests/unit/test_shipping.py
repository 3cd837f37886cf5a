"""Unit tests of the mock carriers: carrier rules, delivery dates, tracking numbers, failures."""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest

from pipeline.adapters.mock_carriers import (
    CARRIER_DOWN_POSTCODE,
    FEDEX_PRIORITY,
    UNDELIVERABLE_POSTCODE,
    UPS_GROUND,
    USPS_GROUND,
    MockCarriers,
    add_business_days,
    select_service,
    tracking_number,
)
from pipeline.errors import AddressRejected, CarrierUnavailable
from pipeline.ports import Shipment

FRIDAY = date(2024, 5, 3)
ADDRESS = {"Line1": "1 Main St", "City": "Springfield", "PostalCode": "12345"}


# -- independent check-digit computations (written from the carriers' descriptions) ----------


def ups_is_valid(number: str) -> bool:
    """UPS 1Z: letters become (ord - 63) mod 10 (A=2 ... I=0, J=1 ...); the check digit makes
    sum(odd positions) + 2 * sum(even positions) + check a multiple of 10."""
    if not re.fullmatch(r"1Z[0-9A-Z]{15}[0-9]", number):
        return False
    values = [int(c) if c.isdigit() else (ord(c) - 63) % 10 for c in number[2:17]]
    odd = sum(values[0::2])  # positions 1, 3, 5, ... counted from 1
    even = sum(values[1::2])
    return (odd + 2 * even + int(number[17])) % 10 == 0


def fedex_is_valid(number: str) -> bool:
    """FedEx Express 12 digits: weights 1, 3, 7 from the digit left of the check digit
    leftwards; the weighted sum mod 11 (10 counts as 0) is the check digit."""
    if not re.fullmatch(r"\d{12}", number):
        return False
    weights = [1, 3, 7]
    body = number[:11][::-1]
    total = sum(int(d) * weights[i % 3] for i, d in enumerate(body))
    return total % 11 % 10 == int(number[11])


def usps_is_valid(number: str) -> bool:
    """USPS IMpb mod 10: counted from the right, the check digit weighs 1, then 3, 1, 3, ...;
    the weighted sum of all 22 digits is a multiple of 10."""
    if not re.fullmatch(r"\d{22}", number):
        return False
    total = sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(reversed(number)))
    return total % 10 == 0


def test_the_independent_checks_accept_published_sample_numbers() -> None:
    # Given sample numbers the carriers publish, and the same numbers with the last digit changed
    # When the independent checks look at them
    # Then the samples pass and the altered ones fail (so the checks can tell)
    assert ups_is_valid("1Z999AA10123456784")
    assert not ups_is_valid("1Z999AA10123456785")
    assert fedex_is_valid("986578788855")
    assert not fedex_is_valid("986578788856")


# -- carrier selection ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "units", "expected"),
    [
        (Decimal("0"), 1, USPS_GROUND),
        (Decimal("499.99"), 1, USPS_GROUND),
        (Decimal("499.99"), 10, USPS_GROUND),
        (Decimal("500"), 1, FEDEX_PRIORITY),
        (Decimal("500.00"), 1, FEDEX_PRIORITY),
        (Decimal("2500"), 1, FEDEX_PRIORITY),
        (Decimal("500"), 50, FEDEX_PRIORITY),
        (Decimal("0"), 11, UPS_GROUND),
        (Decimal("499.99"), 11, UPS_GROUND),
        (Decimal("10"), 1000, UPS_GROUND),
    ],
)
def test_select_service_boundaries(total: Decimal, units: int, expected: object) -> None:
    # Given an order value and unit count around the 500 and 10-unit boundaries
    # When the service is selected
    # Then value 500 or more goes insured express (even if bulky), more than 10 units by UPS
    # ground, everything else by USPS
    assert select_service(total_value=total, units=units) == expected


def test_service_levels_name_carrier_service_and_days() -> None:
    # Given the three service levels
    # When they are read
    # Then each names its carrier and how many business days it takes
    assert (FEDEX_PRIORITY.carrier, FEDEX_PRIORITY.business_days) == ("FedEx", 1)
    assert (UPS_GROUND.carrier, UPS_GROUND.business_days) == ("UPS", 3)
    assert (USPS_GROUND.carrier, USPS_GROUND.business_days) == ("USPS", 5)


# -- business days ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "days", "expected"),
    [
        (date(2024, 5, 3), 1, date(2024, 5, 6)),  # Friday + 1 -> Monday
        (date(2024, 5, 4), 1, date(2024, 5, 6)),  # Saturday + 1 -> Monday
        (date(2024, 5, 5), 1, date(2024, 5, 6)),  # Sunday + 1 -> Monday
        (date(2024, 5, 6), 1, date(2024, 5, 7)),  # Monday + 1 -> Tuesday
        (date(2024, 5, 8), 3, date(2024, 5, 13)),  # Wednesday + 3 -> Monday
        (date(2024, 5, 6), 5, date(2024, 5, 13)),  # Monday + 5 -> next Monday
        (date(2024, 5, 3), 5, date(2024, 5, 10)),  # Friday + 5 -> next Friday
        (date(2024, 5, 3), 10, date(2024, 5, 17)),  # two weekends
        (date(2024, 12, 31), 3, date(2025, 1, 3)),  # across the year end
        (date(2024, 2, 28), 2, date(2024, 3, 1)),  # across a leap day
        (date(2024, 5, 4), 0, date(2024, 5, 4)),  # zero days: the start itself
    ],
)
def test_add_business_days_skips_weekends(start: date, days: int, expected: date) -> None:
    # Given a start date and a number of working days
    # When they are added
    # Then weekends are not counted
    assert add_business_days(start, days) == expected


def test_add_business_days_agrees_with_counting_weekdays() -> None:
    # Given every start day over four weeks and 1..12 days
    for offset in range(28):
        start = date(2024, 1, 1) + timedelta(days=offset)
        for days in range(1, 13):
            # When the result is computed
            result = add_business_days(start, days)

            # Then it is a weekday, and exactly `days` weekdays lie in (start, result]
            span = [start + timedelta(days=i) for i in range(1, (result - start).days + 1)]
            assert result.weekday() < 5
            assert sum(d.weekday() < 5 for d in span) == days


# -- tracking numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_ups_tracking_numbers_are_1z_plus_16_with_a_valid_check_digit(seed: int) -> None:
    # Given a seeded random source
    rng = random.Random(seed)

    # When 200 UPS numbers are made
    numbers = [tracking_number("UPS", rng) for _ in range(200)]

    # Then each is 1Z + 6-character shipper + service 03 + 7 digits + check digit
    for number in numbers:
        assert len(number) == 18
        assert re.fullmatch(r"1Z[0-9A-Z]{6}03\d{7}\d", number), number
        assert ups_is_valid(number), number
    # and letters do occur in the shipper part (the letter mapping is exercised)
    assert any(re.search(r"[A-Z]", n[2:8]) for n in numbers)


@pytest.mark.parametrize("seed", range(5))
def test_fedex_tracking_numbers_are_12_digits_with_a_valid_check_digit(seed: int) -> None:
    # Given a seeded random source
    rng = random.Random(seed)

    # When 200 FedEx numbers are made
    numbers = [tracking_number("FedEx", rng) for _ in range(200)]

    # Then each is 12 digits whose last digit is the mod-11 check digit
    assert all(fedex_is_valid(n) for n in numbers), [n for n in numbers if not fedex_is_valid(n)]


@pytest.mark.parametrize("seed", range(5))
def test_usps_tracking_numbers_are_22_digits_from_9400_with_a_valid_check_digit(
    seed: int,
) -> None:
    # Given a seeded random source
    rng = random.Random(seed)

    # When 200 USPS numbers are made
    numbers = [tracking_number("USPS", rng) for _ in range(200)]

    # Then each is 22 digits starting 9400 whose last digit is the mod-10 check digit
    for number in numbers:
        assert re.fullmatch(r"9400\d{18}", number), number
        assert usps_is_valid(number), number


def test_check_digits_catch_a_single_changed_digit() -> None:
    # Given a USPS and a FedEx number
    rng = random.Random(11)
    usps = tracking_number("USPS", rng)
    fedex = tracking_number("FedEx", rng)

    # When any one digit of the USPS number is changed
    # Then the check fails (weights 1 and 3 are prime to 10)
    for i in range(len(usps)):
        for d in "0123456789":
            if d != usps[i]:
                assert not usps_is_valid(usps[:i] + d + usps[i + 1 :])
    # and a changed FedEx check digit fails too
    wrong = str((int(fedex[-1]) + 1) % 10)
    assert not fedex_is_valid(fedex[:-1] + wrong)


def test_tracking_numbers_are_reproducible_with_the_same_seed() -> None:
    # Given two random sources with the same seed
    a, b = random.Random(42), random.Random(42)

    # When numbers are made from each
    first = [tracking_number(c, a) for c in ("UPS", "FedEx", "USPS") * 10]
    second = [tracking_number(c, b) for c in ("UPS", "FedEx", "USPS") * 10]

    # Then they are the same, and differ among themselves
    assert first == second
    assert len(set(first)) == 30


# -- booking ----------------------------------------------------------------------------------


def test_book_selects_the_carrier_and_estimates_delivery() -> None:
    # Given carriers that never fail
    carriers = MockCarriers(rng=random.Random(1))

    # When three parcels are booked on a Friday
    usps = carriers.book(total_value=Decimal("50"), units=2, address=ADDRESS, today=FRIDAY)
    ups = carriers.book(total_value=Decimal("50"), units=20, address=ADDRESS, today=FRIDAY)
    fedex = carriers.book(total_value=Decimal("999"), units=1, address=ADDRESS, today=FRIDAY)

    # Then each uses the rule's carrier, its number format and its business days
    assert (usps.carrier, usps.service, usps.estimated_delivery) == (
        "USPS",
        "Ground Advantage",
        "2024-05-10",
    )
    assert usps_is_valid(usps.tracking_number)
    assert (ups.carrier, ups.estimated_delivery) == ("UPS", "2024-05-08")
    assert ups_is_valid(ups.tracking_number)
    assert (fedex.carrier, fedex.service, fedex.estimated_delivery) == (
        "FedEx",
        "Priority Overnight (insured)",
        "2024-05-06",
    )
    assert fedex_is_valid(fedex.tracking_number)
    assert fedex.shipped_at.endswith("Z")


def test_book_without_an_address_still_books() -> None:
    # Given carriers and an order without a shipping address (the seed's orders have none)
    carriers = MockCarriers(rng=random.Random(1))

    # When it is booked
    shipment = carriers.book(total_value=Decimal("10"), units=1, address=None, today=FRIDAY)

    # Then a shipment is made
    assert shipment.carrier == "USPS"


@pytest.mark.parametrize("postcode", [UNDELIVERABLE_POSTCODE, " 00000 "])
def test_the_undeliverable_test_postcode_is_rejected(postcode: str) -> None:
    # Given an address with the undeliverable test postal code
    carriers = MockCarriers(rng=random.Random(1))

    # When it is booked
    # Then the address is rejected (a person must fix it: not retried)
    with pytest.raises(AddressRejected, match="00000"):
        carriers.book(
            total_value=Decimal("10"), units=1, address={"PostalCode": postcode}, today=FRIDAY
        )


def test_the_carrier_down_test_postcode_is_a_transient_failure() -> None:
    # Given an address with the carrier-down test postal code, and no random failures
    carriers = MockCarriers(failure_rate=0.0, rng=random.Random(1))

    # When it is booked several times
    # Then each attempt fails as CarrierUnavailable (retried by the state machine)
    for _ in range(3):
        with pytest.raises(CarrierUnavailable, match="test address"):
            carriers.book(
                total_value=Decimal("10"),
                units=1,
                address={"PostalCode": CARRIER_DOWN_POSTCODE},
                today=FRIDAY,
            )


def test_failure_rate_fails_that_share_of_bookings_with_a_seeded_rng() -> None:
    # Given carriers failing 30% of bookings, with a seeded random source
    carriers = MockCarriers(failure_rate=0.3, rng=random.Random(2024))

    # When 2,000 bookings are attempted
    failures = 0
    for _ in range(2_000):
        try:
            carriers.book(total_value=Decimal("10"), units=1, address=ADDRESS, today=FRIDAY)
        except CarrierUnavailable:
            failures += 1

    # Then about 30% failed
    assert abs(failures / 2_000 - 0.3) <= 0.03, failures


def test_failure_rate_is_reproducible_with_the_same_seed() -> None:
    # Given two carriers with the same seed and failure rate
    def run(seed: int) -> list[str]:
        carriers = MockCarriers(failure_rate=0.5, rng=random.Random(seed))
        outcomes = []
        for _ in range(50):
            try:
                shipment = carriers.book(
                    total_value=Decimal("10"), units=1, address=ADDRESS, today=FRIDAY
                )
                outcomes.append(shipment.tracking_number)
            except CarrierUnavailable:
                outcomes.append("failed")
        return outcomes

    # When each books 50 parcels
    first, second, other = run(7), run(7), run(8)

    # Then the same seed gives the same failures and tracking numbers; another seed does not
    assert first == second
    assert "failed" in first and any(o != "failed" for o in first)
    assert first != other


@pytest.mark.parametrize(("rate", "fails"), [(0.0, False), (1.0, True)])
def test_failure_rate_bounds(rate: float, fails: bool) -> None:
    # Given carriers that never or always fail
    carriers = MockCarriers(failure_rate=rate, rng=random.Random(3))

    # When 100 bookings are attempted
    outcomes = set()
    for _ in range(100):
        try:
            carriers.book(total_value=Decimal("10"), units=1, address=ADDRESS, today=FRIDAY)
            outcomes.add("booked")
        except CarrierUnavailable:
            outcomes.add("failed")

    # Then the outcome is always the same one
    assert outcomes == ({"failed"} if fails else {"booked"})


def test_from_env_reads_the_failure_rate() -> None:
    # Given the environment with and without SHIPPING_FAILURE_RATE
    # When carriers are made
    # Then the rate is read, and defaults to 0
    assert MockCarriers.from_env({"SHIPPING_FAILURE_RATE": "0.25"}).failure_rate == 0.25
    assert MockCarriers.from_env({}).failure_rate == 0.0
    assert MockCarriers.from_env({"SHIPPING_FAILURE_RATE": ""}).failure_rate == 0.0


def test_shipment_as_item_is_the_stored_shape() -> None:
    # Given a shipment
    shipment = Shipment("UPS", "Ground", "1Z999AA10123456784", "2024-05-08", "2024-05-03T12:00Z")

    # When it is stored on the order
    # Then the attribute names are the Shipment map's
    assert shipment.as_item() == {
        "Carrier": "UPS",
        "Service": "Ground",
        "TrackingNumber": "1Z999AA10123456784",
        "EstimatedDelivery": "2024-05-08",
        "ShippedAt": "2024-05-03T12:00Z",
    }
