"""The local runtime's metrics: points of one series in one second are folded into one datum,
and CloudWatch's statistics over them are what the single points give."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from pipeline.local.telemetry import aggregate

T0 = datetime(2026, 12, 6, 12, 0, 0, tzinfo=UTC)


def _point(name: str, value: float, at: datetime, function: str = "Pay", unit: str = "Count"):
    return {
        "Namespace": "AWS/Lambda",
        "MetricName": name,
        "Dimensions": [{"Name": "FunctionName", "Value": function}],
        "Timestamp": at,
        "Value": value,
        "Unit": unit,
    }


def test_points_of_one_series_in_one_second_become_one_datum() -> None:
    ms = timedelta(milliseconds=1)
    points = [
        _point("Duration", 12.0, T0 + 100 * ms, unit="Milliseconds"),
        _point("Duration", 30.0, T0 + 900 * ms, unit="Milliseconds"),
        _point("Duration", 18.0, T0 + 400 * ms, unit="Milliseconds"),
        _point("Duration", 50.0, T0 + 1000 * ms, unit="Milliseconds"),  # the next second
        _point("Duration", 7.0, T0 + 200 * ms, function="Ship", unit="Milliseconds"),
        _point("Invocations", 1.0, T0 + 300 * ms),
    ]

    folded = aggregate(points)

    assert folded[0] == {
        "Namespace": "AWS/Lambda",
        "MetricName": "Duration",
        "Dimensions": [{"Name": "FunctionName", "Value": "Pay"}],
        "StatisticValues": {"SampleCount": 3.0, "Sum": 60.0, "Minimum": 12.0, "Maximum": 30.0},
        "Timestamp": T0,
        "Unit": "Milliseconds",
    }
    # and points alone in their series and second go as they came
    assert folded[1:] == [points[3], points[4], points[5]]


@pytest.fixture
def cloudwatch() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client(
            "cloudwatch", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
        )


def test_statistics_over_folded_points_are_those_of_the_points(cloudwatch: Any) -> None:
    # Given the same points published one by one and folded, under two namespaces
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    points = [
        _point("Duration", float(v), now + timedelta(milliseconds=37 * i), unit="Milliseconds")
        for i, v in enumerate([5, 9, 2, 40, 11, 3, 8, 25, 6, 1, 14, 30, 4, 7, 19])
    ]
    for namespace, data in (("Raw", points), ("Folded", aggregate(points))):
        cloudwatch.put_metric_data(
            Namespace=namespace,
            MetricData=[{k: v for k, v in d.items() if k != "Namespace"} for d in data],
        )

    # When their statistics are asked for over one period
    def stats(namespace: str) -> dict[str, float]:
        answer = cloudwatch.get_metric_statistics(
            Namespace=namespace, MetricName="Duration",
            Dimensions=[{"Name": "FunctionName", "Value": "Pay"}],
            StartTime=now - timedelta(minutes=1), EndTime=now + timedelta(minutes=1),
            Period=120, Statistics=["Sum", "Average", "Minimum", "Maximum", "SampleCount"],
        )["Datapoints"]  # fmt: skip
        assert len(answer) == 1
        return {k: v for k, v in answer[0].items() if k not in ("Timestamp", "Unit")}

    # Then they are the same
    assert len(aggregate(points)) < len(points)
    assert stats("Folded") == stats("Raw")
    assert stats("Raw")["SampleCount"] == 15.0
