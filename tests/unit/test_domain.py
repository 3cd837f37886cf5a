"""Unit tests of pipeline.domain: parsing order requests and the order's stored form."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

import pytest

from pipeline.domain import (
    MAX_CUSTOMER_NAME,
    MAX_DISTINCT_ITEMS,
    MAX_ITEM_NAME,
    MAX_LINES,
    MAX_QUANTITY,
    Order,
    OrderLine,
    StatusChange,
    customer_prefix,
    customer_search_key,
    execution_name,
    parse_items,
    to_json,
    utc_now,
    validate_customer_name,
    validate_item_name,
    validate_payment_token,
    validate_shipping_address,
)
from pipeline.errors import InvalidOrder
from pipeline.statuses import OrderStatus

T0 = "2024-05-01T10:00:00.000Z"
T1 = "2024-05-01T10:00:01.500Z"
T2 = "2024-05-01T10:05:00.000Z"


def _errors(raw: object) -> dict[str, object]:
    with pytest.raises(InvalidOrder) as info:
        parse_items(raw)
    return info.value.errors


# -- parse_items: accepted shapes -------------------------------------------------------------


def test_parse_items_accepts_the_seeds_plain_names() -> None:
    # Given the seed's request shape, a list of item names
    raw = ["laptop", "mouse"]

    # When it is parsed
    lines = parse_items(raw)

    # Then each name is one unit, in request order
    assert lines == (OrderLine("laptop", 1), OrderLine("mouse", 1))


def test_parse_items_accepts_objects_with_quantities() -> None:
    # Given the object shape with a quantity
    raw = [{"ItemName": "laptop", "Quantity": 2}]

    # When it is parsed
    lines = parse_items(raw)

    # Then the quantity is kept
    assert lines == (OrderLine("laptop", 2),)


def test_parse_items_defaults_a_missing_quantity_to_one() -> None:
    # Given an object without Quantity
    # When it is parsed
    lines = parse_items([{"ItemName": "keyboard"}])

    # Then it counts as one unit
    assert lines == (OrderLine("keyboard", 1),)


def test_parse_items_accepts_both_shapes_mixed() -> None:
    # Given names and objects in one list
    raw = ["laptop", {"ItemName": "mouse", "Quantity": 3}, "keyboard"]

    # When it is parsed
    lines = parse_items(raw)

    # Then every entry becomes a line, in order
    assert lines == (
        OrderLine("laptop", 1),
        OrderLine("mouse", 3),
        OrderLine("keyboard", 1),
    )


def test_parse_items_adds_up_duplicates_in_first_seen_order() -> None:
    # Given the same items named several times, in both shapes
    raw = [
        "mouse",
        {"ItemName": "laptop", "Quantity": 2},
        "mouse",
        {"ItemName": "mouse", "Quantity": 5},
        "laptop",
    ]

    # When it is parsed
    lines = parse_items(raw)

    # Then each item is one line with the total, ordered by its first appearance
    assert lines == (OrderLine("mouse", 7), OrderLine("laptop", 3))


def test_parse_items_strips_names_before_adding_up() -> None:
    # Given the same name with surrounding spaces
    # When it is parsed
    lines = parse_items(["  laptop", "laptop  ", {"ItemName": " laptop ", "Quantity": 2}])

    # Then the cleaned names are one line
    assert lines == (OrderLine("laptop", 4),)


def test_parse_items_treats_names_case_sensitively() -> None:
    # Given names differing only in case (Inventory keys are case-sensitive)
    # When they are parsed
    lines = parse_items(["Laptop", "laptop"])

    # Then they stay two items
    assert lines == (OrderLine("Laptop", 1), OrderLine("laptop", 1))


# -- parse_items: rejected input --------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "laptop", {"ItemName": "laptop"}, 3, ("laptop",)])
def test_parse_items_rejects_anything_but_a_list(raw: object) -> None:
    # Given Items that is not a JSON array
    # When it is parsed
    errors = _errors(raw)

    # Then the whole field is reported
    assert list(errors) == ["Items"]
    assert "list" in str(errors["Items"])


def test_parse_items_rejects_an_empty_list() -> None:
    # Given no items at all
    # When it is parsed
    errors = _errors([])

    # Then the field says how many entries it needs
    assert errors == {"Items": f"must hold between 1 and {MAX_LINES} entries"}


def test_parse_items_accepts_exactly_the_maximum_number_of_entries() -> None:
    # Given MAX_LINES entries naming few distinct items
    raw = ["laptop"] * MAX_LINES

    # When it is parsed
    lines = parse_items(raw)

    # Then they add up into one line
    assert lines == (OrderLine("laptop", MAX_LINES),)


def test_parse_items_rejects_more_than_the_maximum_number_of_entries() -> None:
    # Given one entry more than allowed
    # When it is parsed
    errors = _errors(["laptop"] * (MAX_LINES + 1))

    # Then the count is the problem
    assert errors == {"Items": f"must hold between 1 and {MAX_LINES} entries"}


def test_parse_items_accepts_the_maximum_number_of_distinct_items() -> None:
    # Given 99 different items (one transaction holds 99 items plus the order)
    raw = [f"item-{i}" for i in range(MAX_DISTINCT_ITEMS)]

    # When it is parsed
    lines = parse_items(raw)

    # Then all of them are lines
    assert len(lines) == MAX_DISTINCT_ITEMS == 99


def test_parse_items_rejects_more_distinct_items_than_one_transaction_holds() -> None:
    # Given 100 different items (100 entries is allowed, 100 distinct items is not)
    raw = [f"item-{i}" for i in range(MAX_DISTINCT_ITEMS + 1)]

    # When it is parsed
    errors = _errors(raw)

    # Then the distinct count is the problem
    assert list(errors) == ["Items"]
    assert f"at most {MAX_DISTINCT_ITEMS} different items" in str(errors["Items"])


def test_parse_items_reports_every_bad_entry_by_index() -> None:
    # Given a list where entries 1, 3 and 4 are wrong in different ways
    raw = [
        "laptop",
        {"ItemName": "mouse", "Quantity": 0},
        "keyboard",
        42,
        {"Quantity": 2},
    ]

    # When it is parsed
    errors = _errors(raw)

    # Then each bad entry is named by its index, the good ones are not
    assert set(errors) == {"Items[1]", "Items[3]", "Items[4]"}
    assert errors["Items[1]"] == f"Quantity must be between 1 and {MAX_QUANTITY}"
    assert errors["Items[3]"] == "must be an item name or an object {ItemName, Quantity}"
    assert errors["Items[4]"] == "ItemName is required"


def test_parse_items_reports_unexpected_fields() -> None:
    # Given an object with a misspelt field
    # When it is parsed
    errors = _errors([{"ItemName": "laptop", "Qty": 2, "Colour": "red"}])

    # Then the unknown fields are named, sorted
    assert errors == {"Items[0]": "unexpected field(s): Colour, Qty"}


def test_invalid_order_message_joins_every_error() -> None:
    # Given two bad entries
    # When parsing fails
    with pytest.raises(InvalidOrder) as info:
        parse_items([None, ""])

    # Then the exception text names both, for logs
    assert "Items[0]:" in str(info.value)
    assert "Items[1]: item name must not be empty" in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "quantity",
    [True, False, 2.0, 1.5, "2", None, [2], Decimal("2")],
    ids=["true", "false", "float-whole", "float", "str", "null", "list", "decimal"],
)
def test_parse_items_rejects_quantities_that_are_not_whole_numbers(quantity: object) -> None:
    # Given a quantity of the wrong type (JSON true must not mean one laptop)
    # When it is parsed
    errors = _errors([{"ItemName": "laptop", "Quantity": quantity}])

    # Then the entry is rejected as not a whole number
    assert errors == {"Items[0]": "Quantity must be a whole number"}


@pytest.mark.parametrize("quantity", [0, -1, MAX_QUANTITY + 1, 10**9])
def test_parse_items_rejects_quantities_out_of_range(quantity: int) -> None:
    # Given a whole number outside 1..1000
    # When it is parsed
    errors = _errors([{"ItemName": "laptop", "Quantity": quantity}])

    # Then the range is named
    assert errors == {"Items[0]": f"Quantity must be between 1 and {MAX_QUANTITY}"}


@pytest.mark.parametrize("quantity", [1, MAX_QUANTITY])
def test_parse_items_accepts_quantities_at_the_bounds(quantity: int) -> None:
    # Given the smallest and the largest allowed quantity
    # When it is parsed
    lines = parse_items([{"ItemName": "laptop", "Quantity": quantity}])

    # Then it is kept as is
    assert lines == (OrderLine("laptop", quantity),)


def test_parse_items_accepts_duplicates_summing_to_exactly_the_maximum() -> None:
    # Given two lines of the same item adding up to exactly 1000
    raw = [{"ItemName": "laptop", "Quantity": 600}, {"ItemName": "laptop", "Quantity": 400}]

    # When it is parsed
    lines = parse_items(raw)

    # Then the total is allowed
    assert lines == (OrderLine("laptop", MAX_QUANTITY),)


def test_parse_items_rejects_duplicates_summing_above_the_maximum() -> None:
    # Given lines that are each fine but add up to 1001 for one item, and a fine other item
    raw = [
        {"ItemName": "laptop", "Quantity": 600},
        "mouse",
        {"ItemName": "laptop", "Quantity": 400},
        "laptop",
    ]

    # When it is parsed
    errors = _errors(raw)

    # Then the item whose total is too large is named
    assert errors == {"Items": f"total quantity of laptop exceeds {MAX_QUANTITY}"}


# -- item names -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["laptop", "USB-C cable 2.0", "a", "9", "item_1", "A" * MAX_ITEM_NAME],
)
def test_validate_item_name_accepts_the_allowed_charset(name: str) -> None:
    # Given a name of letters, digits, spaces, '.', '_' and '-', starting with a letter or digit
    # When it is validated
    # Then it comes back unchanged
    assert validate_item_name(name) == name


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "item name must not be empty"),
        ("   ", "item name must not be empty"),
        ("A" * (MAX_ITEM_NAME + 1), f"item name must be at most {MAX_ITEM_NAME} characters"),
        ("-laptop", "must start with a letter or digit"),
        (".hidden", "must start with a letter or digit"),
        ("lap/top", "may hold letters, digits"),
        ("laptop; DROP TABLE", "may hold letters, digits"),
        ("café", "may hold letters, digits"),
        ("lap\ntop", "may hold letters, digits"),
        ("lap\ttop", "may hold letters, digits"),
    ],
)
def test_validate_item_name_rejects_bad_names(name: str, message: str) -> None:
    # Given an empty, too long or badly spelt name
    # When it is validated
    with pytest.raises(ValueError) as info:
        validate_item_name(name)

    # Then the message says what is wrong
    assert message in str(info.value)


def test_validate_item_name_measures_length_after_stripping() -> None:
    # Given a name of exactly the maximum length inside spaces
    name = "  " + "A" * MAX_ITEM_NAME + "  "

    # When it is validated
    # Then the spaces do not count
    assert validate_item_name(name) == "A" * MAX_ITEM_NAME


@pytest.mark.parametrize("name", [None, 5, ["laptop"]])
def test_validate_item_name_rejects_non_strings(name: object) -> None:
    # Given an ItemName that is not a string
    # When it is validated
    # Then it is rejected
    with pytest.raises(ValueError, match="item name must be a string"):
        validate_item_name(name)


# -- customer names ---------------------------------------------------------------------------


def test_validate_customer_name_strips_and_returns_the_name() -> None:
    # Given a name with surrounding whitespace
    # When it is validated
    # Then the cleaned name comes back
    assert validate_customer_name("  Ada Lovelace\n") == "Ada Lovelace"


def test_validate_customer_name_accepts_unicode_and_the_maximum_length() -> None:
    # Given a non-ASCII name and a name of exactly the maximum length
    # When they are validated
    # Then both are accepted
    assert validate_customer_name("José Müller-Øberg") == "José Müller-Øberg"
    assert validate_customer_name("x" * MAX_CUSTOMER_NAME) == "x" * MAX_CUSTOMER_NAME


@pytest.mark.parametrize("raw", [None, "", "   ", 42, ["Ada"]])
def test_validate_customer_name_requires_a_non_empty_string(raw: object) -> None:
    # Given a missing, blank or non-string name
    # When it is validated
    with pytest.raises(InvalidOrder) as info:
        validate_customer_name(raw)

    # Then CustomerName is the field in error
    assert info.value.errors == {"CustomerName": "is required and must be a non-empty string"}


def test_validate_customer_name_rejects_names_that_are_too_long() -> None:
    # Given a name one character over the limit
    # When it is validated
    with pytest.raises(InvalidOrder) as info:
        validate_customer_name("x" * (MAX_CUSTOMER_NAME + 1))

    # Then the limit is named
    assert info.value.errors == {"CustomerName": f"must be at most {MAX_CUSTOMER_NAME} characters"}


@pytest.mark.parametrize("raw", ["Ada\x00", "Ada\x1b[31mRed", "Ada\tLovelace", "Ada\nLovelace"])
def test_validate_customer_name_rejects_c0_control_characters(raw: str) -> None:
    # Given a name with a C0 control character inside it
    # When it is validated
    with pytest.raises(InvalidOrder) as info:
        validate_customer_name(raw)

    # Then it is rejected
    assert info.value.errors == {"CustomerName": "must not contain control characters"}


@pytest.mark.parametrize("raw", ["Ada\x7f", "Ada\x9b31mRed"], ids=["DEL", "C1-CSI"])
def test_validate_customer_name_rejects_del_and_c1_control_characters(raw: str) -> None:
    # Given a name with DEL or a C1 control character (Unicode category Cc)
    # When it is validated
    # Then it is rejected like the C0 controls
    with pytest.raises(InvalidOrder):
        validate_customer_name(raw)


# -- Order: new, history, stored form ---------------------------------------------------------


def _new_order(**overrides: object) -> Order:
    kwargs: dict[str, object] = {
        "customer_name": "Ada",
        "lines": [OrderLine("laptop", 2), OrderLine("mouse", 1)],
        "order_id": "order-1",
        "now": T0,
    }
    kwargs.update(overrides)
    return Order.new(**kwargs)  # type: ignore[arg-type]


def test_order_new_is_pending_with_its_first_history_entry() -> None:
    # Given a customer and lines
    # When a new order is made at T0
    order = _new_order()

    # Then it is PENDING, dated T0, with one history entry saying it was received
    assert order.status is OrderStatus.PENDING
    assert order.order_date == order.last_updated == T0
    assert order.status_reason == "Order received"
    assert order.history == (StatusChange(OrderStatus.PENDING, T0, "Order received"),)
    assert order.lines == (OrderLine("laptop", 2), OrderLine("mouse", 1))
    assert order.attempt == 0
    assert order.total is None


def test_order_new_generates_a_uuid_and_timestamp_when_not_given() -> None:
    # Given no order id and no time
    # When two orders are made
    first = Order.new(customer_name="Ada", lines=[OrderLine("laptop", 1)])
    second = Order.new(customer_name="Ada", lines=[OrderLine("laptop", 1)])

    # Then each has its own UUID and an ISO 8601 UTC millisecond timestamp
    uuid_re = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert uuid_re.match(first.order_id)
    assert first.order_id != second.order_id
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", first.order_date)


def test_utc_now_is_parseable_iso_8601_in_utc() -> None:
    # Given the clock
    # When the current time is formatted
    text = utc_now()

    # Then it ends in Z and parses as an aware UTC datetime
    assert text.endswith("Z")
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_with_status_appends_history_and_leaves_the_original_alone() -> None:
    # Given a new order
    order = _new_order()

    # When it moves to RESERVED then PAID
    reserved = order.with_status(OrderStatus.RESERVED, "Reserved 3 unit(s)", T1)
    paid = reserved.with_status(OrderStatus.PAID, "Payment approved", T2)

    # Then the history grows one entry per move, status fields follow, the order date stays
    assert [c.status for c in paid.history] == ["PENDING", "RESERVED", "PAID"]
    assert paid.history[-1] == StatusChange(OrderStatus.PAID, T2, "Payment approved")
    assert (paid.status, paid.status_reason, paid.last_updated) == (
        OrderStatus.PAID,
        "Payment approved",
        T2,
    )
    assert paid.order_date == T0
    # and the earlier objects are unchanged (frozen copies)
    assert order.status is OrderStatus.PENDING
    assert len(order.history) == 1
    assert len(reserved.history) == 2


def test_as_item_uses_the_seed_attribute_names_and_omits_empty_optionals() -> None:
    # Given a new order without optional fields
    # When its stored form is built
    item = _new_order().as_item()

    # Then exactly the seed's attributes plus history, attempt and the search keys are there
    assert item == {
        "OrderId": "order-1",
        "CustomerName": "Ada",
        "Items": [{"ItemName": "laptop", "Quantity": 2}, {"ItemName": "mouse", "Quantity": 1}],
        "Status": "PENDING",
        "OrderDate": T0,
        "LastUpdated": T0,
        "StatusReason": "Order received",
        "StatusHistory": [{"Status": "PENDING", "At": T0, "Reason": "Order received"}],
        "Attempt": 0,
        "CustomerKey": "ada",
        "CustomerPrefix": "ada",
    }
    assert type(item["Status"]) is str


def _full_order() -> Order:
    order = _new_order(
        client_id="client-7",
        payment_token="tok_approve",
        shipping_address={"Line1": "1 Main St", "City": "Springfield", "PostalCode": "12345"},
        request_hash="sha256:abc",
    )
    order = order.with_status(OrderStatus.RESERVED, "Reserved 3 unit(s) across 2 item(s)", T1)
    return replace(
        order,
        attempt=1,
        reservation={
            "Lines": [
                {"ItemName": "laptop", "Quantity": 2, "UnitPrice": Decimal("999.99")},
                {"ItemName": "mouse", "Quantity": 1, "UnitPrice": Decimal("25.5")},
            ],
            "Total": Decimal("2025.48"),
            "Currency": "USD",
            "ReservedAt": T1,
        },
        payment={"TransactionId": "txn_1", "Amount": Decimal("2025.48"), "Currency": "USD"},
        shipment={"Carrier": "FedEx", "TrackingNumber": "986578788855"},
        rejection=({"ItemName": "cable", "Requested": 2, "Available": 0},),
        extra={"Channel": "api", "Notes": ["gift"]},
    )


def test_as_item_and_from_item_round_trip_every_field() -> None:
    # Given an order with every optional field and an attribute this code does not know
    order = _full_order()

    # When it is written and read back
    item = order.as_item()
    again = Order.from_item(item)

    # Then nothing is lost, unknown attributes included
    assert again == order
    assert again.as_item() == item
    assert item["Channel"] == "api"
    assert again.extra == {"Channel": "api", "Notes": ["gift"]}
    assert again.total == Decimal("2025.48")


def test_from_item_reads_the_seeds_plain_string_items() -> None:
    # Given an item as the seed's system wrote it: plain names, no history, no LastUpdated
    item = {
        "OrderId": "seed-1",
        "CustomerName": "John Doe",
        "Items": ["laptop", "mouse", "keyboard"],
        "Status": "PENDING",
        "OrderDate": T0,
    }

    # When it is read
    order = Order.from_item(item)

    # Then each name is one unit, LastUpdated falls back to OrderDate, defaults fill the rest
    assert order.lines == (
        OrderLine("laptop", 1),
        OrderLine("mouse", 1),
        OrderLine("keyboard", 1),
    )
    assert order.status is OrderStatus.PENDING
    assert order.last_updated == T0
    assert order.history == ()
    assert order.attempt == 0
    assert order.status_reason == ""
    assert order.extra == {}
    # and writing it back uses the object shape
    assert order.as_item()["Items"][0] == {"ItemName": "laptop", "Quantity": 1}


def test_from_item_adds_up_repeated_seed_names() -> None:
    # Given a seed-era PENDING order that asks for two laptops by naming it twice
    item = {
        "OrderId": "seed-2",
        "CustomerName": "John Doe",
        "Items": ["laptop", "laptop", "mouse"],
        "Status": "PENDING",
        "OrderDate": T0,
    }

    # When it is read
    order = Order.from_item(item)

    # Then it has one line per item, as parse_items would have made
    assert order.lines == (OrderLine("laptop", 2), OrderLine("mouse", 1))


def test_from_item_reads_dynamodb_decimals_as_ints() -> None:
    # Given numbers as boto3's deserializer returns them (Decimal)
    item = {
        "OrderId": "order-9",
        "CustomerName": "Ada",
        "Items": [{"ItemName": "laptop", "Quantity": Decimal("3")}, {"ItemName": "mouse"}],
        "Status": "RESERVED",
        "OrderDate": T0,
        "LastUpdated": T1,
        "Attempt": Decimal("2"),
        "StatusHistory": [
            {"Status": "PENDING", "At": T0, "Reason": "Order received"},
            {"Status": "RESERVED", "At": T1},
        ],
    }

    # When it is read
    order = Order.from_item(item)

    # Then quantities and the attempt are ints, a history entry without Reason gets ""
    assert order.lines == (OrderLine("laptop", 3), OrderLine("mouse", 1))
    assert type(order.lines[0].quantity) is int
    assert order.attempt == 2
    assert type(order.attempt) is int
    assert order.history[1] == StatusChange(OrderStatus.RESERVED, T1, "")


def test_from_item_rejects_an_unknown_status() -> None:
    # Given an item whose Status is not one of ours
    item = {"OrderId": "o", "Items": [], "Status": "Processing", "OrderDate": T0}

    # When it is read
    # Then it fails loudly rather than inventing a status
    with pytest.raises(ValueError, match="Processing"):
        Order.from_item(item)


def test_as_json_turns_decimals_into_json_numbers() -> None:
    # Given an order holding DynamoDB Decimals
    order = _full_order()

    # When it is shown as JSON
    shown = order.as_json()

    # Then json.dumps can write it and the numbers keep their value
    text = json.dumps(shown)
    assert json.loads(text)["Reservation"]["Total"] == 2025.48
    assert shown["Reservation"]["Lines"][1]["UnitPrice"] == 25.5
    assert shown["Attempt"] == 1
    assert shown["Rejection"] == [{"ItemName": "cable", "Requested": 2, "Available": 0}]


def test_to_json_converts_nested_decimals() -> None:
    # Given Decimals in dicts, lists, tuples and sets, next to other values
    value = {
        "whole": Decimal("5"),
        "whole_with_zeros": Decimal("5.000"),
        "fraction": Decimal("0.1"),
        "list": [Decimal("1"), {"deep": Decimal("2.5")}],
        "tuple": (Decimal("3"),),
        "set": {Decimal("7")},
        "text": "x",
        "none": None,
        "flag": True,
    }

    # When it is converted
    result = to_json(value)

    # Then whole numbers become ints, the rest floats, containers lists, others untouched
    assert result == {
        "whole": 5,
        "whole_with_zeros": 5,
        "fraction": 0.1,
        "list": [1, {"deep": 2.5}],
        "tuple": [3],
        "set": [7],
        "text": "x",
        "none": None,
        "flag": True,
    }
    assert type(result["whole"]) is int
    assert type(result["whole_with_zeros"]) is int
    assert type(result["fraction"]) is float
    json.dumps(result)


@pytest.mark.parametrize(
    ("attempt", "expected"),
    [(0, "order-1"), (1, "order-1"), (2, "order-1-2"), (3, "order-1-3"), (17, "order-1-17")],
)
def test_execution_name_is_the_order_id_for_the_first_attempt(attempt: int, expected: str) -> None:
    # Given an order's reservation attempt
    # When the workflow execution name is derived
    # Then the first attempt uses the bare order id and later ones a suffix
    assert execution_name("order-1", attempt) == expected


def test_execution_names_are_unique_per_attempt_and_fit_step_functions() -> None:
    # Given a UUID order id and many attempts
    order_id = "0f8fad5b-d9cb-469f-a165-70867728950e"

    # When execution names are derived for attempts 1..50
    names = [execution_name(order_id, n) for n in range(1, 51)]

    # Then they are all different and within Step Functions' 80 characters and charset
    assert len(set(names)) == 50
    assert all(len(n) <= 80 and re.match(r"^[A-Za-z0-9_-]+$", n) for n in names)


# -- PaymentToken and ShippingAddress ---------------------------------------------------------


@pytest.mark.parametrize("raw", [None, "tok_approve", "tok_flaky_2", "A-b_9" * 40])
def test_validate_payment_token_accepts_tokens_and_absence(raw: object) -> None:
    # Given a token of letters, digits, '_' and '-' (or none)
    # When it is validated
    # Then it comes back unchanged
    assert validate_payment_token(raw) == raw


@pytest.mark.parametrize("raw", ["", "tok approve", "tök", 12, True, "x" * 201, ["tok"]])
def test_validate_payment_token_refuses_anything_else(raw: object) -> None:
    # Given a token that is empty, of the wrong type, too long or with other characters
    # When it is validated
    with pytest.raises(InvalidOrder) as info:
        validate_payment_token(raw)
    # Then the error names the field
    assert set(info.value.errors) == {"PaymentToken"}


def test_validate_shipping_address_cleans_a_full_address() -> None:
    # Given an address with padding and an empty optional line
    raw = {"Name": " Ada ", "Line1": "1 Main St", "Line2": "", "City": "Springfield",
           "PostalCode": "12345", "Country": "US"}  # fmt: skip
    # When it is validated
    address = validate_shipping_address(raw)
    # Then it is stripped and the empty optional line dropped
    assert address == {"Name": "Ada", "Line1": "1 Main St", "City": "Springfield",
                       "PostalCode": "12345", "Country": "US"}  # fmt: skip


def test_validate_shipping_address_names_every_bad_field() -> None:
    # Given an address missing City, with a bad postcode, a control character and an extra field
    raw = {"Name": "A\x07", "Line1": "1 St", "PostalCode": "12#45", "Country": "US", "Zip": "1"}
    # When it is validated
    with pytest.raises(InvalidOrder) as info:
        validate_shipping_address(raw)
    # Then every problem is reported by its dotted field name
    assert set(info.value.errors) == {
        "ShippingAddress.Name",
        "ShippingAddress.City",
        "ShippingAddress.PostalCode",
        "ShippingAddress.Zip",
    }


@pytest.mark.parametrize("raw", ["home", ["1 Main St"], 5])
def test_validate_shipping_address_refuses_non_objects(raw: object) -> None:
    # Given an address that is not an object
    with pytest.raises(InvalidOrder) as info:
        validate_shipping_address(raw)
    # Then the error is on the field itself
    assert set(info.value.errors) == {"ShippingAddress"}


def test_find_shortages_names_unknown_and_short_lines_only() -> None:
    # Given stock for two items and an order of three lines
    from pipeline.errors import Shortage, find_shortages

    available = {"laptop": 2, "mouse": 10}
    # When the lines are checked
    short = find_shortages([("laptop", 3), ("mouse", 10), ("unicorn", 1)], available)
    # Then the short and the unknown lines are named, the covered one is not
    assert short == [Shortage("laptop", 3, 2), Shortage("unicorn", 1, None)]


def test_customer_search_key_ignores_case_accents_and_spacing() -> None:
    # Given names typed with accents, capitals and extra spaces
    # Then they compare as one lower-case, accent-free, single-spaced form
    assert customer_search_key("  José   Ñúñez ") == "jose nunez"
    assert customer_search_key("ÅSA") == customer_search_key("asa")
    # And the prefix index partition is its first three characters
    assert customer_prefix("Jo") == "jo"
    assert customer_prefix("José Ñúñez") == "jos"


def test_a_staff_history_entry_keeps_its_actor_and_a_pipeline_entry_has_none() -> None:
    staff = StatusChange(OrderStatus.CANCELLED, T1, "Cancelled by staff: phoned", "olga")
    assert staff.as_item()["Actor"] == "olga"
    assert StatusChange.from_item(staff.as_item()) == staff
    pipeline = StatusChange(OrderStatus.RESERVED, T1, "Reserved")
    assert "Actor" not in pipeline.as_item()
    assert StatusChange.from_item(pipeline.as_item()).actor is None
