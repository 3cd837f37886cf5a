"""/ops/: the dashboard shows every part of the pipeline at a fixed cost, and each part's error."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from django.test import Client

from operations.counters import STATUS_METRICS, stack_name
from pipeline import metric_names as names
from pipeline import wiring
from pipeline.adapters.sqs import SqsQueue
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus
from tests.integration.ops.aws_calls import view_with_aws_calls

pytestmark = pytest.mark.integration


def _bar(page: str, status: str) -> float:
    match = re.search(rf'data-label="{status}" data-value="([\d.]+)"', page)
    assert match, f"no bar for {status}"
    return float(match.group(1))


def _part(page: str, part_id: str) -> str:
    start = page.index(f'id="{part_id}"')
    end = page.find('<div class="module"', start + 1)
    return page[start : end if end > 0 else len(page)]


def _cloudwatch(env: dict[str, str]) -> Any:
    return boto3.client(
        "cloudwatch", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_REGION"]
    )


def _put_breaching_alarm(cloudwatch: Any, name: str) -> None:
    """An alarm in ALARM (missing data counts as breaching, so the runtime's evaluator agrees)."""
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


@pytest.fixture
def alarm_in_alarm_state(runtime_env: dict[str, str]) -> Iterator[str]:
    """An alarm named as CloudFormation names this stack's alarms, in ALARM; and one of another
    stack (a longer name starting with this stack's), also in ALARM, that must not show."""
    cloudwatch = _cloudwatch(runtime_env)
    stack = stack_name(runtime_env)
    assert stack, "the runtime's env names its dashboard"
    ours = f"{stack}-OpsTest{uuid.uuid4().hex[:6]}Alarm-{uuid.uuid4().hex[:8].upper()}"
    theirs = f"{stack}-2-DeadLetterQueueAlarm"
    _put_breaching_alarm(cloudwatch, ours)
    _put_breaching_alarm(cloudwatch, theirs)
    yield ours
    cloudwatch.delete_alarms(AlarmNames=[ours, theirs])


def test_dashboard_shows_tables_queues_alarms_and_metrics_of_the_running_system(
    staff: Client, runtime_env: dict[str, str], dlq: SqsQueue, alarm_in_alarm_state: str
):
    # Given the running local runtime with one message waiting in the DLQ
    dlq.send_json({"OrderId": "dashboard-test", "Attempt": 1})
    # And two dead-lettered webhook deliveries (taken out again at the end)
    webhook_dlq = SqsQueue(runtime_env["WEBHOOK_DLQ_URL"])
    for n in range(2):
        webhook_dlq.send_json({"EventId": f"dash-{n}", "ClientId": "dash", "Attempt": 9})
    # And two orders written already REJECTED, which the stream's PENDING filter leaves alone
    runtime_store = wiring.dynamo_store()
    for _ in range(2):
        order = Order.new(customer_name=f"dash-{uuid.uuid4().hex[:8]}", lines=[OrderLine("x", 1)])
        runtime_store.order_put_new(
            order.with_status(OrderStatus.REJECTED, "rejected in setup", order.last_updated)
        )

    # When a staff member opens the dashboard with a one-day metrics window
    try:
        response = staff.get("/ops/?minutes=1440")
    finally:
        webhook_dlq.purge()
    page = response.content.decode()

    # Then every part answered: no part shows an error
    assert response.status_code == 200
    assert "Could not read this part" not in page
    assert "ops-error" not in page.replace(".ops-error", "")
    # And the table counts, the three queues and the order charts are there
    assert "Orders" in _part(page, "tables") and "Inventory" in _part(page, "tables")
    queues = _part(page, "queues")
    labels = ("Orders queue", "Dead-letter queue", "Stream-failure queue", "Webhook dead-letter")
    for label in labels:
        assert label in queues
    # And the waiting DLQ message is shown in red, with a link to replay it
    assert re.search(r'<td class="ops-alarm">1</td>', queues)
    assert 'href="/ops/dlq/"' in queues
    # And so are the webhook dead letters, saying where they are replayed from
    assert re.search(r'Webhook dead-letter queue</th>\s*<td class="ops-alarm">2</td>', queues)
    assert 'id="webhook-dlq-help"' in queues
    orders = _part(page, "order-counts")
    assert orders.count("<svg") == 2 and "Orders per minute, last hour" in orders
    for status, _ in STATUS_METRICS:
        assert f'data-label="{status}"' in orders
    assert "Reservation success" in orders and "Payment success" in orders
    # And this stack's alarms are listed, the one in ALARM in red, and no other stack's
    alarms = _part(page, "alarms")
    assert "DeadLetterQueueAlarm" in alarms
    assert re.search(
        rf'<td class="ops-alarm">ALARM</td>\s*<td[^>]*>{alarm_in_alarm_state}</td>', alarms
    )
    assert "-2-DeadLetterQueueAlarm" not in alarms
    # And the metrics cover the chosen window, with the success ratios
    metrics = _part(page, "metrics")
    assert "Metrics, last 1 day" in metrics
    for ratio in ("reservation success", "payment success", "shipping success", "order success"):
        assert ratio in metrics
    assert "OrdersProcessed" in metrics


def test_per_status_counts_come_from_the_kept_metrics(staff: Client, runtime_env: dict[str, str]):
    # Given the counts the dashboard shows now
    before = staff.get("/ops/").content.decode()
    rejected, stuck = (_bar(before, s) for s in ("REJECTED", "MANUAL_INTERVENTION"))

    # When the pipeline counts an order arriving, two rejections and one needing a person
    cloudwatch = _cloudwatch(runtime_env)
    for metric, value in (
        (names.ORDERS_PROCESSED, 1.0),
        (names.RESERVATIONS_REJECTED, 2.0),
        (names.ORDERS_NEEDING_INTERVENTION, 1.0),
    ):
        cloudwatch.put_metric_data(
            Namespace=names.NAMESPACE,
            MetricData=[
                {
                    "MetricName": metric,
                    "Dimensions": [{"Name": "service", "Value": names.SERVICE_OF[metric]}],
                    "Value": value,
                    "Unit": "Count",
                }
            ],
        )

    # Then the dashboard's bars count them under their statuses, with their freshness
    after = staff.get("/ops/").content.decode()
    assert _bar(after, "REJECTED") == rejected + 2
    assert _bar(after, "MANUAL_INTERVENTION") == stuck + 1
    freshness = re.search(r"Newest data point [\d-]+ [\d:]+ UTC \([^)]*\), (\d+) s", after)
    assert freshness and int(freshness.group(1)) < 120


def _aws_calls_of_one_view(staff: Client) -> list[str]:
    """Every AWS operation one dashboard view makes, sorted (its parts run in parallel)."""
    return view_with_aws_calls(staff)[1]


def test_a_view_costs_the_same_few_reads_whatever_the_number_of_orders(
    staff: Client, runtime_env: dict[str, str]
):
    # Given the AWS calls one view makes now
    before = _aws_calls_of_one_view(staff)
    # When 60 more orders are in the table
    runtime_store = wiring.dynamo_store()
    for _ in range(60):
        order = Order.new(customer_name=f"dash-{uuid.uuid4().hex[:8]}", lines=[OrderLine("x", 1)])
        runtime_store.order_put_new(
            order.with_status(OrderStatus.REJECTED, "rejected in setup", order.last_updated)
        )
    after = _aws_calls_of_one_view(staff)

    # Then a view makes exactly the same calls, none of which reads orders one by one
    assert after == before
    assert not [c for c in after if c.endswith((".Query", ".Scan", ".GetItem"))], after
    assert "cloudwatch.GetMetricData" in after
    assert len(after) <= 25, after


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
    for part in ("tables", "queues", "order-counts", "metrics"):
        assert "EndpointConnectionError" in _part(page, part), part
    assert page.count("EndpointConnectionError") >= 7  # 2 tables, 3 queues, counters, metrics
    # And the alarms say this stack is unknown (no dashboard name), showing no one else's
    assert "CLOUDWATCH_DASHBOARD is not set" in _part(page, "alarms")


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
