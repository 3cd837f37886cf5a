"""schemathesis on the API's own OpenAPI schema: no 5xx, answers as documented, valid data kept."""

# What runs: every operation of /api/schema/ in-process (the portal's WSGI app on the test
# database, DynamoDB Local and Redis), with a valid key, in positive mode (schema-valid
# requests: each must be accepted, 2xx, or 404 for an order id nobody has) and negative mode
# (schema-invalid ones: each must be refused with a documented 4xx), through the examples,
# coverage (boundary values) and fuzzing phases, with every default check: no 5xx, statuses,
# content types, headers and bodies as documented, undeclared methods 405, missing or bad keys
# refused. Deterministic by default, sized for the normal test run. A deeper, random run:
#
#     HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest -p no:cacheprovider -n 0 \
#         tests/integration/api/test_schemathesis.py -q
#
# (1000 examples per operation and phase instead of 60; a few minutes.) A failure prints the
# request as a curl command; no example database is kept in the repository.

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from hypothesis import HealthCheck, settings

from pipeline.domain import MAX_DISTINCT_ITEMS, MAX_QUANTITY
from tests.integration.api.conftest import KeyMaker

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
MAX_EXAMPLES = 1000 if LONG else 60

# Loading the schema needs no database: /api/schema/ is public and reads none.
schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application())
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=not LONG, database="none")
# A schema-valid request must be taken; schemathesis would also pass 401/403/409/429/5xx,
# which here could only mean the key or the limits got in the way.
schema.config.checks.positive_data_acceptance.expected_statuses = ["2xx", "404"]


def _positive(case: Any) -> bool:
    return case.meta is not None and case.meta.generation.mode.is_positive


def breaks_a_cross_line_rule(body: Any) -> bool:
    """Whether Items break a rule across lines, which no JSON Schema can state (the schema's
    description does): more than MAX_DISTINCT_ITEMS names, or a name totalling more than
    MAX_QUANTITY once repeated lines add up."""
    if not isinstance(body, dict) or not isinstance(body.get("Items"), list):
        return False
    totals: Counter[str] = Counter()
    for line in body["Items"]:
        if isinstance(line, str):
            totals[line.strip()] += 1
        elif isinstance(line, dict) and isinstance(line.get("ItemName"), str):
            totals[line["ItemName"].strip()] += line.get("Quantity", 1)
    return len(totals) > MAX_DISTINCT_ITEMS or any(n > MAX_QUANTITY for n in totals.values())


@schema.hook
def filter_case(context: Any, case: Any) -> bool:
    """Drop the schema-valid orders the cross-line rules refuse (400, rightly)."""
    return not (_positive(case) and breaks_a_cross_line_rule(case.body))


@schema.hook
def map_case(context: Any, case: Any) -> Any:
    """A fresh Idempotency-Key per schema-valid request (still within the header's pattern):
    generated keys repeat ("0"), and a key sent again with another body is rightly a 422,
    which would stop that order from being written and checked."""
    key = (case.headers or {}).get("Idempotency-Key")
    if _positive(case) and isinstance(key, str):
        case.headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4().hex}"
    # A cursor is opaque and signed: no generated string is one this API gave, and refusing it
    # (400) is right, so schema-valid listings are sent without one.
    if _positive(case) and case.query and "cursor" in case.query:
        del case.query["cursor"]
    return case


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """The test's own database connection kept open across in-process requests: Django closes
    it after each one (request_finished), which would end the test's transaction. Django's
    test client does the same."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def raw_key(
    store: Any, make_plan: Any, make_key: KeyMaker, in_process_requests: None, settings: Any
) -> str:
    """A key whose plan no run reaches; failed-key throttling off, since negative mode sends bad
    keys from the same address as the good one."""
    settings.API_KEY_FAILURE_LIMIT = 0
    plan = make_plan(rate_limit=1e6, burst_limit=1_000_000, daily_quota=None)
    return make_key("schemathesis", plan=plan)[1]


# What each operation's run must have seen, (mode, status) -> at least so many: proof that
# it got through (a run where every request got 403 would pass every check).
EXPECTED = {
    "test_submit_order_conforms_to_the_schema": {("positive", 200): 10, ("negative", 400): 10},
    "test_get_order_conforms_to_the_schema": {("positive", 404): 10},
    "test_list_orders_conforms_to_the_schema": {("positive", 200): 10, ("negative", 400): 5},
}


@pytest.fixture
def answers(request: pytest.FixtureRequest) -> Iterator[Counter[tuple[str, int]]]:
    """(mode, status) of every answer of the run, checked against EXPECTED at its end."""
    seen: Counter[tuple[str, int]] = Counter()
    yield seen
    for answer, least in EXPECTED[request.function.__name__].items():
        assert seen[answer] >= least, (answer, seen)


def check(case: Any, raw_key: str, answers: Counter[tuple[str, int]]) -> None:
    """Send one generated request with the key; call_and_validate runs every check."""
    response = case.call_and_validate(headers={"x-api-key": raw_key})
    mode = case.meta.generation.mode.value if case.meta else "explicit"
    answers[(mode, response.status_code)] += 1


def test_every_operation_of_the_schema_has_a_test_here():
    # Given the operations of the served schema
    ids = {result.ok().definition.raw["operationId"] for result in schema.get_all_operations()}

    # Then each has a test function of its own below: pytest 9 gives schemathesis'
    # per-operation items a single node id, which pytest-xdist would run only once
    assert ids == {"submitOrder", "getOrder", "listOrders"}


SETTINGS = settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)


@schema.include(operation_id="submitOrder").parametrize()
@SETTINGS
def test_submit_order_conforms_to_the_schema(
    case: Any, raw_key: str, answers: Counter[tuple[str, int]]
) -> None:
    # Given a generated order request (the key and its limits are shared by the run on purpose)
    # When it is sent with a valid key, Then every check passes on the answer
    check(case, raw_key, answers)


@schema.include(operation_id="getOrder").parametrize()
@SETTINGS
def test_get_order_conforms_to_the_schema(
    case: Any, raw_key: str, answers: Counter[tuple[str, int]]
) -> None:
    # Given a generated request for an order (mostly ids nobody has: 404, or ones seen before)
    # When it is sent with a valid key, Then every check passes on the answer
    check(case, raw_key, answers)


@schema.include(operation_id="listOrders").parametrize()
@SETTINGS
def test_list_orders_conforms_to_the_schema(
    case: Any, raw_key: str, answers: Counter[tuple[str, int]]
) -> None:
    # Given a generated listing query (statuses, date ranges, page sizes; bad ones in negative
    # mode) When it is sent with a valid key, Then every check passes on the answer
    check(case, raw_key, answers)
