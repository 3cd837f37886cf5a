"""Which address a request is counted against: the hop we trust, never a header it wrote."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import RequestFactory

from orders_api.throttling import client_address

# Loopback addresses only, written into the fake requests' META.
PEER = "127.0.0.7"


def request(**meta: Any) -> Any:
    """A GET whose META carries `meta` (REMOTE_ADDR defaults to PEER)."""
    return RequestFactory().get("/orders/x", **{"REMOTE_ADDR": PEER, **meta})


def test_the_peer_address_without_trusted_proxies() -> None:
    # Given X-Forwarded-For written by the client and no proxy of ours (the default)
    found = client_address(request(HTTP_X_FORWARDED_FOR="127.0.9.9, 127.0.9.8"))
    # Then the TCP peer is the address
    assert found == PEER


def test_api_gateways_source_ip_beats_zappas_remote_addr() -> None:
    # Given Zappa's environ: its REMOTE_ADDR guessed from X-Forwarded-For, and the raw event
    rest = {"requestContext": {"identity": {"sourceIp": "127.0.0.8"}}}
    http = {"requestContext": {"http": {"sourceIp": "127.0.0.9"}}}
    # Then API Gateway's own view of the caller is used (REST and HTTP API payloads)
    assert client_address(request(**{"lambda.event": rest})) == "127.0.0.8"
    assert client_address(request(**{"lambda.event": http})) == "127.0.0.9"


@pytest.mark.parametrize(
    ("hops", "expected"),
    [(1, "127.0.9.3"), (2, "127.0.9.2"), (3, "127.0.9.1"), (4, PEER)],
)
def test_trusted_proxies_take_the_entry_that_many_hops_from_the_right(
    settings: Any, hops: int, expected: str
) -> None:
    # Given N proxies of ours, each appending the address it saw
    settings.TRUSTED_PROXY_COUNT = hops
    forwarded = "127.0.9.1, 127.0.9.2, 127.0.9.3"
    # Then the address is the Nth from the right (a shorter chain falls back to the peer)
    assert client_address(request(HTTP_X_FORWARDED_FOR=forwarded)) == expected


def test_ipv6_addresses_are_counted_by_their_64_block() -> None:
    # Given two addresses of one /64 (what one host is usually given)
    first = client_address(request(REMOTE_ADDR="::1"))
    second = client_address(request(REMOTE_ADDR="::2"))
    # Then they share a counter; an IPv4-mapped address counts as its IPv4 one
    assert first == second == "::/64"
    assert client_address(request(REMOTE_ADDR="::ffff:127.0.0.7")) == PEER


def test_something_that_is_not_an_address_shares_one_counter() -> None:
    assert client_address(request(REMOTE_ADDR="not-an-address")) == "unknown"
    assert client_address(request(REMOTE_ADDR="")) == "unknown"
