#!/usr/bin/env python3
"""The seed's system test: drive a running order system over HTTP and print a summary.

Works against the local system (`./scripts/deploy.sh local`) and a deployed one:

    python scripts/test-order-system.py --endpoint http://127.0.0.1:8000 --api-key KEY

It checks that requests without a key (or with a wrong one) get 403 and that a malformed order
gets 400, submits a mix of orders, waits for each to reach a final status, and says which
outcomes were as expected. Exit status 0 when everything was, 1 otherwise. Standard library
only, so it runs with any Python 3.11+ without the project installed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

FINAL = {"REJECTED", "PAYMENT_FAILED", "SHIPPED", "MANUAL_INTERVENTION", "CANCELLED", "REFUNDED"}


@dataclass
class Reply:
    """An HTTP answer."""

    status: int
    body: Any
    headers: dict[str, str]


def call(method: str, url: str, *, key: str | None, body: Any = None, raw: bytes | None = None,
         timeout: float = 15.0) -> Reply:  # fmt: skip
    """One request; never raises for an HTTP error status."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("x-api-key", key)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            status, headers = response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        payload, status, headers = exc.read(), exc.code, dict(exc.headers)
    try:
        parsed = json.loads(payload) if payload else None
    except json.JSONDecodeError:
        parsed = payload.decode(errors="replace")
    return Reply(status, parsed, headers)


@dataclass
class Case:
    """One order to submit and the outcomes that would be right for it."""

    label: str
    body: dict[str, Any]
    expected: set[str]
    order_id: str | None = None
    final: dict[str, Any] = field(default_factory=dict)


def cases(seed_only: bool) -> list[Case]:
    """The orders the test submits. `seed_only` keeps to the seed's three items."""
    run = uuid.uuid4().hex[:6]
    result = [
        Case(
            "seed order (laptop, mouse, keyboard)",
            {"CustomerName": f"John Doe {run}", "Items": ["laptop", "mouse", "keyboard"]},
            # A deployed system approves 90% of payments: a decline is a right outcome too.
            {"SHIPPED", "PAYMENT_FAILED", "REJECTED"},
        ),
        Case(
            "quantities as objects",
            {
                "CustomerName": f"Jane Roe {run}",
                "Items": [{"ItemName": "mouse", "Quantity": 2}, {"ItemName": "keyboard"}],
            },
            {"SHIPPED", "PAYMENT_FAILED", "REJECTED"},
        ),
        Case(
            "unknown item is rejected",
            {"CustomerName": f"Ann Other {run}", "Items": [f"no-such-item-{run}"]},
            {"REJECTED"},
        ),
        Case(
            "more than the stock is rejected",
            {
                "CustomerName": f"Big Buyer {run}",
                "Items": [{"ItemName": "laptop", "Quantity": 1000}],
            },
            {"REJECTED"},
        ),
    ]
    if not seed_only:
        result += [
            Case(
                "declined card ends PAYMENT_FAILED",
                {
                    "CustomerName": f"Dee Clined {run}",
                    "Items": ["mouse"],
                    "PaymentToken": "tok_decline",
                },
                {"PAYMENT_FAILED", "REJECTED"},
            ),
            Case(
                "undeliverable address needs staff",
                {
                    "CustomerName": f"No Where {run}",
                    "Items": ["mouse"],
                    "PaymentToken": "tok_approve",
                    "ShippingAddress": {"Name": "No Where", "Line1": "1 Nowhere Rd",
                                        "City": "Nowhere", "PostalCode": "00000", "Country": "US"},
                },
                {"MANUAL_INTERVENTION", "REJECTED"},
            ),
        ]  # fmt: skip
    return result


def check(label: str, ok: bool, detail: str, results: list[tuple[str, bool, str]]) -> None:
    """Record and print one check."""
    results.append((label, ok, detail))
    print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {detail}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the system test."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--endpoint", default=os.environ.get("ORDER_API_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--api-key", default=os.environ.get("ORDER_API_KEY"))
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait per order")
    parser.add_argument("--seed-only", action="store_true", help="only the seed's own items")
    args = parser.parse_args(argv)
    if not args.api_key:
        parser.error(
            "an API key is needed: --api-key or ORDER_API_KEY (./scripts/deploy.sh apikey)"
        )
    base = args.endpoint.rstrip("/")
    results: list[tuple[str, bool, str]] = []

    print(f"Testing {base}\n\n1. Authentication and validation")
    sample = {"CustomerName": "Auth Check", "Items": ["mouse"]}
    reply = call("POST", f"{base}/submitorder", key=None, body=sample)
    check("no key is refused", reply.status == 403, f"HTTP {reply.status}", results)
    reply = call("POST", f"{base}/submitorder", key="not-a-real-key", body=sample)
    check("a wrong key is refused", reply.status == 403, f"HTTP {reply.status}", results)
    reply = call("POST", f"{base}/submitorder", key=args.api_key, raw=b'{"CustomerName": ')
    check("malformed JSON is a 400", reply.status == 400, f"HTTP {reply.status}", results)
    reply = call("POST", f"{base}/submitorder", key=args.api_key, body={"Items": []})
    check(
        "missing fields are a 400",
        reply.status == 400,
        f"HTTP {reply.status} {reply.body}",
        results,
    )

    print("\n2. Orders")
    todo = cases(args.seed_only)
    for case in todo:
        reply = call("POST", f"{base}/submitorder", key=args.api_key, body=case.body)
        accepted = reply.status == 200 and isinstance(reply.body, dict) and "OrderId" in reply.body
        if accepted:
            case.order_id = reply.body["OrderId"]
        check(
            f"submit: {case.label}",
            accepted,
            f"HTTP {reply.status} {case.order_id or reply.body}",
            results,
        )

    print("\n3. Waiting for final statuses")
    waiting = [c for c in todo if c.order_id]
    deadline = time.monotonic() + args.timeout
    while waiting and time.monotonic() < deadline:
        for case in list(waiting):
            reply = call("GET", f"{base}/orders/{case.order_id}", key=args.api_key)
            if reply.status == 200 and reply.body.get("Status") in FINAL:
                case.final = reply.body
                waiting.remove(case)
                print(f"  {case.order_id} {case.final['Status']:<20} {case.label}", flush=True)
        if waiting:
            print(f"  ... {len(waiting)} still in progress", flush=True)
            time.sleep(2)
    for case in todo:
        if not case.order_id:
            continue
        status = case.final.get("Status", "TIMED OUT")
        detail = f"{status}: {case.final.get('StatusReason', 'no final status in time')}"
        check(f"outcome: {case.label}", status in case.expected, detail, results)

    passed = sum(ok for _, ok, _ in results)
    print(f"\nSummary: {passed} of {len(results)} checks passed")
    shipped = [c for c in todo if c.final.get("Status") == "SHIPPED"]
    for case in shipped:
        shipment = case.final.get("Shipment", {})
        carrier, tracking = shipment.get("Carrier"), shipment.get("TrackingNumber")
        due = shipment.get("EstimatedDelivery")
        print(f"  shipped {case.order_id}: {carrier} {tracking}, due {due}")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
