"""The order API's management command: create_api_key."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from orders_api.models import ClientAPIKey
from tests.integration.api.conftest import post_order

pytestmark = pytest.mark.integration


def run(*args: str) -> str:
    """Run a command; return what it printed."""
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# -- create_api_key -------------------------------------------------------------------------


@pytest.mark.django_db
def test_create_api_key_prints_a_working_key_on_its_last_line(api, make_plan: Any):
    # Given a plan
    make_plan("gold", rate_limit=200, burst_limit=400, daily_quota=None)

    # When a key is created for a client on it, expiring next year
    output = run("create_api_key", "Acme Corp", "--plan", "gold", "--expires", "2099-01-01")

    # Then the last line is the key alone, and it is stored hashed with the plan and expiry
    raw = output.strip().splitlines()[-1]
    prefix = raw.split(".")[0]
    key = ClientAPIKey.objects.get(prefix=prefix)
    assert key.name == "Acme Corp"
    assert key.plan is not None and key.plan.name == "gold"
    assert key.expiry_date == datetime(2099, 1, 1, tzinfo=UTC)
    assert raw not in key.hashed_key and raw not in key.id
    assert "unlimited/day" in output
    # And the key submits orders
    response = post_order(api, raw, {"CustomerName": "Acme", "Items": ["laptop"]})
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Acme", "--plan", "platinum"], "no usage plan named 'platinum'"),
        (["Acme", "--expires", "tomorrow"], "not an ISO 8601"),
        (["Acme", "--expires", "2001-01-01"], "in the past"),
        (["x" * 51], "1 to 50 characters"),
    ],
)
def test_create_api_key_refuses_bad_arguments(args: list[str], message: str):
    # When the command gets a bad argument, Then it says which, and creates nothing
    with pytest.raises(CommandError, match=message):
        run("create_api_key", *args)
    assert not ClientAPIKey.objects.exists()
