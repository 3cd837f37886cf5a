"""/ops/: the dashboard shows every part of the pipeline, and each part's error when it fails."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import boto3
import pytest
from django.test import Client

from pipeline import wiring
from pipeline.adapters.dynamodb import DynamoStore
from pipeline.adapters.sqs import SqsQueue
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus
from tests.integration.ops.orders import make_order

pytestmark = pytest.mark.integration


def _count_on_page(page: str, status: str) -> int:
    match = re.search(rf'data-status="{status}">(?:&ge; )?(\d+)<', page)
    assert match, f"no count for {status}"
    return int(match.group(1))


def _scanned_counts(env: dict[str, str]) -> dict[str, int]:
    """Orders per status in the runtime's Orders table, from a consistent scan of the table
    itself (not the StatusIndex the dashboard queries)."""
    dynamodb = boto3.client(
        "dynamodb", endpoint_url=env["AWS_ENDPOINT_URL_DYNAMODB"], region_name=env["AWS_REGION"]
    )
    found: Counter[str] = Counter()
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=env["ORDERS_TABLE_NAME"],
        ProjectionExpression="#s",
        ExpressionAttributeNames={"#s": "Status"},
        ConsistentRead=True,
    )
    for page in pages:
        found.update(item["Status"]["S"] for item in page["Items"])
    return {str(status): found[status] for status in OrderStatus}


def _counts_while_settled(staff: Client, env: dict[str, str]) -> tuple[dict[str, int], str]:
    """The scanned counts and a dashboard page read while no order moved (the scans before
    and after the page agree): an earlier test's workflow may still be moving its order."""
    for _ in range(40):
        before = _scanned_counts(env)
        page = staff.get("/ops/").content.decode()
        if _scanned_counts(env) == before:
            return before, page
        time.sleep(0.25)
    raise AssertionError("orders kept changing status for 10 s")


def _part(page: str, part_id: str) -> str:
    start = page.index(f'id="{part_id}"')
    end = page.find('<div class="module"', start + 1)
    return page[start : end if end > 0 else len(page)]


@pytest.fixture
def alarm_in_alarm_state(runtime_env: dict[str, str]) -> Iterator[str]:
    """A CloudWatch alarm of this test's own in ALARM (missing data counts as breaching, so
    the runtime's evaluator agrees)."""
    cloudwatch = boto3.client(
        "cloudwatch",
        endpoint_url=runtime_env["AWS_ENDPOINT_URL"],
        region_name=runtime_env["AWS_REGION"],
    )
    name = f"ops-test-{uuid.uuid4().hex[:8]}"
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="OpsTest",
        MetricName="Nothing",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        TreatMissingData="breaching",
    )
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="test breach")
    yield name
    cloudwatch.delete_alarms(AlarmNames=[name])


def test_dashboard_shows_tables_queues_alarms_and_metrics_of_the_running_system(
    staff: Client, runtime_env: dict[str, str], dlq: SqsQueue, alarm_in_alarm_state: str
):
    # Given the running local runtime with one message waiting in the DLQ
    dlq.send_json({"OrderId": "dashboard-test", "Attempt": 1})
    # And two orders written already REJECTED, which the stream's PENDING filter leaves alone
    runtime_store = wiring.dynamo_store()
    for _ in range(2):
        order = Order.new(customer_name=f"dash-{uuid.uuid4().hex[:8]}", lines=[OrderLine("x", 1)])
        runtime_store.order_put_new(
            order.with_status(OrderStatus.REJECTED, "rejected in setup", order.last_updated)
        )

    # When a staff member opens the dashboard with a one-day metrics window
    response = staff.get("/ops/?minutes=1440")
    page = response.content.decode()

    # Then every part answered: no part shows an error
    assert response.status_code == 200
    assert "Could not read this part" not in page
    assert "ops-error" not in page.replace(".ops-error", "")
    # And the table counts, the three queues and the per-status counts are there
    assert "Orders" in _part(page, "tables") and "Inventory" in _part(page, "tables")
    queues = _part(page, "queues")
    for label in ("Orders queue", "Dead-letter queue", "Stream-failure queue"):
        assert label in queues
    # And the waiting DLQ message is shown in red, with a link to replay it
    assert re.search(r'<td class="ops-alarm">1</td>', queues)
    assert 'href="/ops/dlq/"' in queues
    # And each status shows exactly the orders the table holds in it
    expected, settled = _counts_while_settled(staff, runtime_env)
    assert expected["REJECTED"] >= 2
    assert {str(s): _count_on_page(settled, s) for s in OrderStatus} == expected
    assert "&ge;" not in _part(settled, "order-counts")  # far below the cap: exact counts
    # And alarms are listed, the one in ALARM in red
    alarms = _part(page, "alarms")
    assert "DeadLetterQueueAlarm" in alarms
    assert re.search(
        rf'<td class="ops-alarm">ALARM</td>\s*<td[^>]*>{alarm_in_alarm_state}</td>', alarms
    )
    # And the metrics cover the chosen window, with the success ratios
    metrics = _part(page, "metrics")
    assert "Metrics, last 1 day" in metrics
    for ratio in ("reservation success", "payment success", "shipping success", "order success"):
        assert ratio in metrics
    assert "OrdersProcessed" in metrics


def test_order_counts_per_status_come_from_the_status_index(staff: Client, store: DynamoStore):
    # Given the counts as they are
    before = staff.get("/ops/").content.decode()
    rejected, manual = (_count_on_page(before, s) for s in ("REJECTED", "MANUAL_INTERVENTION"))

    # When two orders are rejected and one needs a person
    make_order(store, OrderStatus.REJECTED)
    make_order(store, OrderStatus.REJECTED)
    make_order(store, OrderStatus.MANUAL_INTERVENTION)

    # Then the dashboard counts them under their statuses
    after = staff.get("/ops/").content.decode()
    assert _count_on_page(after, "REJECTED") == rejected + 2
    assert _count_on_page(after, "MANUAL_INTERVENTION") == manual + 1
    # And the exact table count (a scan) agrees with the index counts in total
    exact = staff.get("/ops/?exact=1").content.decode()
    orders_row = re.search(r"<th scope=\"row\">Orders</th>\s*<td>(\d+)", exact)
    assert orders_row
    assert int(orders_row.group(1)) == sum(_count_on_page(exact, s) for s in OrderStatus)


def test_with_the_runtime_down_every_part_shows_its_error_and_the_page_renders(
    staff: Client, monkeypatch: pytest.MonkeyPatch, dead_endpoint: str
):
    # Given resource names but every endpoint dead (the local runtime is stopped)
    for name, value in {
        "ORDERS_TABLE_NAME": "orders",
        "INVENTORY_TABLE_NAME": "inventory",
        "ORDERS_QUEUE_URL": f"{dead_endpoint}/123456789012/orders",
        "ORDERS_DLQ_URL": f"{dead_endpoint}/123456789012/dlq",
        "STREAM_FAILURE_QUEUE_URL": f"{dead_endpoint}/123456789012/stream-failures",
        "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:x",
    }.items():
        monkeypatch.setenv(name, value)

    # When the dashboard is opened
    response = staff.get("/ops/")
    page = response.content.decode()

    # Then it renders, and each part says why it is empty
    assert response.status_code == 200
    for part in ("tables", "queues", "order-counts", "alarms", "metrics"):
        assert "EndpointConnectionError" in _part(page, part), part
    assert page.count("EndpointConnectionError") >= 8  # 2 tables, 3 queues, counts, alarms, metrics


def test_without_the_pipeline_settings_the_page_names_the_missing_variables(staff: Client):
    # Given no resource names in the environment (the portal was never wired to a stack)
    # When the dashboard is opened
    page = staff.get("/ops/").content.decode()

    # Then each part names what is missing, and the page still renders
    assert "ORDERS_TABLE_NAME is not set" in _part(page, "tables")
    assert "ORDERS_QUEUE_URL is not set" in _part(page, "queues")
    assert "ORDERS_DLQ_URL is not set" in _part(page, "queues")
    assert "STREAM_FAILURE_QUEUE_URL is not set" in _part(page, "queues")


def test_an_unknown_metrics_window_falls_back_to_an_hour(staff: Client):
    # When the window is not one the page offers
    page = staff.get("/ops/?minutes=13").content.decode()

    # Then the last hour is shown
    assert '<option value="60" selected>' in page
