"""The dashboard's kept counters and charts: stack alarm names, minute buckets, escaped SVG."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from operations.charts import bar_chart, line_chart
from operations.counters import STATUS_METRICS, is_stack_alarm, read_counters, stack_name


@pytest.mark.parametrize(
    ("name", "ours"),
    [
        ("orders-local-DeadLetterQueueAlarm", True),  # the local runtime's name
        ("orders-local-DeadLetterQueueAlarm-1A2B3C4D5E6F", True),  # CloudFormation's
        ("orders-local-2-DeadLetterQueueAlarm", False),  # a longer stack name
        ("orders-local-DeadLetterQueue", False),  # not one of the template's alarms
        ("other-DeadLetterQueueAlarm", False),
        ("orders-local-deadAlarm", False),  # logical ids start with a capital
    ],
)
def test_an_alarm_belongs_to_the_stack_only_by_its_full_name(name: str, ours: bool):
    assert is_stack_alarm(name, "orders-local") is ours


def test_the_stack_name_comes_from_the_dashboard_name():
    assert stack_name({"CLOUDWATCH_DASHBOARD": "shop-prod-operations"}) == "shop-prod"
    assert stack_name({"CLOUDWATCH_DASHBOARD": "-operations"}) is None
    assert stack_name({"CLOUDWATCH_DASHBOARD": "something-else"}) is None
    assert stack_name({}) is None


class OnePageOfMetrics:
    """A CloudWatch answer for read_counters: orders in two minutes, statuses over the day,
    split over two pages as CloudWatch may split it."""

    def __init__(self, now: datetime):
        self.now = now
        self.requests: list[dict[str, Any]] = []

    def get_metric_data(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        minute = self.now.replace(second=0, microsecond=0)
        if "NextToken" not in request:
            return {
                "MetricDataResults": [
                    {
                        "Id": "rate",
                        "Timestamps": [minute - timedelta(minutes=5), minute],
                        "Values": [3.0, 4.0],
                    },
                    {"Id": "s1", "Timestamps": [minute], "Values": [6.0]},  # RESERVED
                ],
                "NextToken": "more",
            }
        return {
            "MetricDataResults": [
                {"Id": "s1", "Timestamps": [minute - timedelta(hours=3)], "Values": [2.0]},
                {"Id": "s2", "Timestamps": [minute], "Values": [2.0]},  # REJECTED
            ]
        }


def test_counters_fill_every_minute_and_sum_each_status_across_pages():
    now = datetime(2026, 5, 1, 12, 30, 40, tzinfo=UTC)
    cloudwatch = OnePageOfMetrics(now)

    found = read_counters(cloudwatch, now=now)

    # One request per page, every query in it: a view's cost does not grow with the data
    assert len(cloudwatch.requests) == 2
    assert len(cloudwatch.requests[0]["MetricDataQueries"]) == 1 + len(STATUS_METRICS)
    assert len(found.per_minute) == 60
    assert sum(v for _, v in found.per_minute) == 7.0
    assert found.per_minute[-1] == (datetime(2026, 5, 1, 12, 30, tzinfo=UTC), 4.0)
    assert found.per_status_day["RESERVED"] == 8.0
    assert found.per_status_day["REJECTED"] == 2.0
    assert found.reservation_success == pytest.approx(0.8)
    assert found.payment_success is None  # nothing paid or declined: no rate, not 0 %
    assert found.age_seconds == 40


def test_charts_escape_their_text():
    svg = bar_chart([("<script>", 3.0)], title='a "title"')
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert 'data-value="3"' in svg
    line = line_chart([(datetime(2026, 1, 1, tzinfo=UTC), 2.0)], title="<b>")
    assert "<b>" not in line and "<polyline" in line


def test_the_metrics_summary_sums_each_counter_in_one_request():
    import boto3
    from moto import mock_aws

    from pipeline import metric_names as names
    from pipeline.observability import metrics_summary

    with mock_aws():
        cloudwatch = boto3.client(
            "cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )
        for metric, value in (
            (names.RESERVATIONS_SUCCEEDED, 3.0),
            (names.RESERVATIONS_SUCCEEDED, 1.0),
            (names.RESERVATIONS_REJECTED, 1.0),
            (names.API_REQUESTS_THROTTLED, 2.0),
        ):
            service = names.SERVICE_OF[metric]
            cloudwatch.put_metric_data(
                Namespace=names.NAMESPACE,
                MetricData=[
                    {
                        "MetricName": metric,
                        "Dimensions": [{"Name": "service", "Value": service}] if service else [],
                        "Value": value,
                    }
                ],
            )
        calls: list[str] = []
        cloudwatch.meta.events.register("before-call", lambda model, **_: calls.append(model.name))

        found = metrics_summary(cloudwatch, minutes=60)

    assert calls == ["GetMetricData"]
    assert found["counts"][names.RESERVATIONS_SUCCEEDED] == 4.0
    assert found["counts"][names.API_REQUESTS_THROTTLED] == 2.0
    assert found["counts"][names.ORDERS_SHIPPED] == 0.0
    assert found["ratios"]["reservation_success"] == pytest.approx(0.8)
    assert found["ratios"]["payment_success"] is None
