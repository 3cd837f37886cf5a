"""Webhook rules without AWS: signatures, endpoint checks, events, the retry schedule."""

from __future__ import annotations

import json

import pytest

from orders_api.serializers import ORDER_FIELDS
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus
from pipeline.webhooks import (
    ALL_EVENTS,
    DEFAULT_EVENTS,
    PUBLIC_ORDER_FIELDS,
    InvalidEndpoint,
    RetryPolicy,
    check_endpoint,
    check_events,
    event_body,
    signature,
    status_change_event,
    verify,
)

SECRET = "whsec_test"


def test_a_signature_verifies_and_any_change_or_an_old_timestamp_fails():
    # Given a body signed at t=1000
    body = b'{"EventId":"e1"}'
    header = signature(SECRET, 1000, body)
    assert header.startswith("t=1000,v1=")
    # Then it verifies at t=1000 and within 5 minutes
    assert verify(SECRET, header, body, now=1000)
    assert verify(SECRET, header, body, now=1299)
    # And not with another body, secret, timestamp, or later than 5 minutes (a replay)
    assert not verify(SECRET, header, b'{"EventId":"e2"}', now=1000)
    assert not verify("whsec_other", header, body, now=1000)
    assert not verify(SECRET, header.replace("t=1000", "t=1001"), body, now=1000)
    assert not verify(SECRET, header, body, now=1301)
    assert not verify(SECRET, "v1=abc", body, now=1000)


def test_the_event_names_the_change_with_a_stable_id_and_a_sequence():
    # Given an order that went PENDING -> REJECTED
    pending = Order.new(
        customer_name="Ann", lines=[OrderLine("laptop", 1)], client_id="k1", payment_token="tok"
    )
    rejected = pending.with_status(OrderStatus.REJECTED, "Insufficient stock", "2026-01-01T00:00Z")

    # When the events of its two writes are made
    first = status_change_event(None, pending)
    second = status_change_event(pending, rejected)
    again = status_change_event(pending, rejected)

    # Then each says what happened, in sequence, with the public fields only
    assert first is not None and second is not None
    assert (first["Type"], first["Sequence"], first["PreviousStatus"]) == (
        "order.pending",
        1,
        None,
    )
    assert (second["Type"], second["Sequence"], second["PreviousStatus"]) == (
        "order.rejected",
        2,
        "PENDING",
    )
    assert second["Reason"] == "Insufficient stock"
    assert set(second["Order"]) <= set(PUBLIC_ORDER_FIELDS)
    assert "PaymentToken" not in second["Order"] and "ClientId" not in second["Order"]
    # And the same change always has the same id (redeliveries can be dropped)
    assert again == second and first["EventId"] != second["EventId"]
    # And a write that keeps the status makes no event
    assert status_change_event(rejected, rejected) is None
    # And the body is plain JSON
    assert json.loads(event_body(second)) == second


def test_public_fields_are_the_apis():
    assert set(PUBLIC_ORDER_FIELDS) == set(ORDER_FIELDS)


def test_default_events_are_the_final_statuses():
    assert set(DEFAULT_EVENTS) == {
        "order.rejected",
        "order.payment_failed",
        "order.shipped",
        "order.manual_intervention",
        "order.cancelled",
        "order.refunded",
    }
    assert check_events(["order.shipped", "order.pending"]) == ("order.pending", "order.shipped")
    assert len(ALL_EVENTS) == len(OrderStatus)
    with pytest.raises(InvalidEndpoint, match="unknown"):
        check_events(["order.lost"])
    with pytest.raises(InvalidEndpoint, match="at least one"):
        check_events([])


def public(host: str, port: int) -> list[str]:
    return ["93.184.216.34"]


@pytest.mark.parametrize(
    ("url", "allow_local", "resolved", "problem"),
    [
        ("http://example.com/hook", False, ["93.184.216.34"], "https"),
        ("ftp://example.com/hook", False, ["93.184.216.34"], "https"),
        ("http://127.0.0.1:9000/hook", False, ["127.0.0.1"], "https"),
        ("https://127.0.0.1:9000/hook", False, ["127.0.0.1"], "private, loopback"),
        ("https://metadata.example/hook", False, ["169.254.169.254"], "private, loopback"),
        ("https://intranet.example/hook", False, ["10.0.0.5"], "private, loopback"),
        ("https://v6.example/hook", False, ["::1"], "private, loopback"),
        ("https://mapped.example/hook", False, ["::ffff:192.168.1.1"], "private, loopback"),
        ("https://mixed.example/hook", False, ["93.184.216.34", "172.16.0.1"], "private"),
        ("https://user:pw@example.com/hook", False, ["93.184.216.34"], "user name"),
        ("https://example.com/ho ok", False, ["93.184.216.34"], "spaces"),
        ("https:///hook", False, [], "no host"),
        ("", False, [], "enter"),
        ("http://10.0.0.1/hook", True, ["10.0.0.1"], "https"),
    ],
)
def test_endpoints_that_are_refused(url, allow_local, resolved, problem):
    # When the URL is checked, Then it is refused, saying why
    with pytest.raises(InvalidEndpoint, match=problem):
        check_endpoint(url, allow_local=allow_local, resolver=lambda h, p: resolved)


def test_endpoints_that_are_taken():
    ok = check_endpoint("https://example.com/hooks?x=1", allow_local=False, resolver=public)
    assert (ok.scheme, ok.host, ok.port, ok.addresses) == (
        "https",
        "example.com",
        443,
        ("93.184.216.34",),
    )
    local = check_endpoint("http://localhost:8123/h", allow_local=True, resolver=public)
    assert (local.scheme, local.port, local.addresses) == ("http", 8123, ("127.0.0.1",))


def test_retries_back_off_and_last_more_than_a_day():
    policy = RetryPolicy()
    delays = [policy.delay_after(n) for n in range(1, 9)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600]
    # Walk the schedule: attempts keep coming for at least 24 hours, then it gives up
    t, failures = 0.0, 0
    while True:
        failures += 1
        if policy.gives_up(0.0, t, failures):
            break
        t += policy.delay_after(failures)
    assert 24 * 3600 <= t <= policy.window_s
    assert failures > 25


@pytest.mark.parametrize("doc", ["README.md", "docs/webhooks.md"])
def test_the_documented_verification_snippet_verifies(doc):
    # Given the receiver's snippet as the documentation gives it
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    snippet = text.split("```python\nimport hashlib, hmac, time", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec("import hashlib, hmac, time" + snippet, namespace)
    documented = namespace["verify"]
    # When it checks what the delivery function sends
    import time

    body = b'{"EventId":"e1","Type":"order.shipped"}'
    now = int(time.time())
    header = signature(SECRET, now, body)
    # Then it accepts that, and refuses another body, another secret and an old timestamp
    assert documented(SECRET, header, body)
    assert not documented(SECRET, header, body + b" ")
    assert not documented("whsec_other", header, body)
    assert not documented(SECRET, signature(SECRET, now - 301, body), body)


def test_the_order_events_filter_passes_exactly_the_status_changes():
    # Given OrderEventsFunction's filter patterns in template.yaml
    from pathlib import Path

    from pipeline.local.cfn import load_template
    from pipeline.local.filters import compile_pattern, matches_any_filter
    from pipeline.statuses import ALLOWED_TRANSITIONS

    template = load_template(Path(__file__).resolve().parents[2] / "template.yaml")
    function = template["Resources"]["OrderEventsFunction"]["Properties"]
    filters = function["Events"]["OrdersStream"]["Properties"]["FilterCriteria"]["Filters"]
    patterns = [compile_pattern(f["Pattern"]) for f in filters]

    def record(old: str | None, new: str, client: bool = True) -> dict:
        image = {"OrderId": {"S": "o"}, "Status": {"S": str(new)}}
        if client:
            image["ClientId"] = {"S": "k"}
        dynamodb = {"NewImage": image}
        if old is not None:
            dynamodb["OldImage"] = {"OrderId": {"S": "o"}, "Status": {"S": str(old)}}
        return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": dynamodb}

    # Then every allowed transition of an API client's order passes, in every status
    for old, targets in ALLOWED_TRANSITIONS.items():
        for new in targets:
            assert matches_any_filter(patterns, record(old, new)), (old, new)
        # And a write that keeps the status does not
        assert not matches_any_filter(patterns, record(old, old)), old
    # And a new order passes; orders without a ClientId never do
    assert matches_any_filter(patterns, record(None, "PENDING"))
    assert not matches_any_filter(patterns, record(None, "PENDING", client=False))
    assert not matches_any_filter(patterns, record("PENDING", "RESERVED", client=False))
