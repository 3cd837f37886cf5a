"""/ops/ keeps its table sizes for a short while, shared through Redis, and shows their age."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.test import Client

from operations import kept_reads
from pipeline import wiring
from pipeline.domain import Order, OrderLine
from pipeline.statuses import OrderStatus
from tests.integration.ops.aws_calls import view_with_aws_calls

pytestmark = pytest.mark.integration


@pytest.fixture
def keeping(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Table sizes kept for 30 s (tests/settings read them afresh), under this test's own
    Redis keys, which are removed afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}:kept:"
    monkeypatch.setattr(kept_reads, "KEY_PREFIX", prefix)
    kept_reads.reset_for_tests()
    settings.OPS_DASHBOARD_TABLE_COUNT_SECONDS = 30.0
    url = settings.REDIS_URL  # read now: a test may point REDIS_URL at a dead port
    yield settings
    kept_reads.reset_for_tests()
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _view(staff: Client, path: str = "/ops/") -> tuple[str, list[str]]:
    """The page, and the AWS operations the view made."""
    return view_with_aws_calls(staff, path)


def _orders_row(page: str) -> re.Match[str]:
    row = re.search(r'<th scope="row">Orders</th>\s*<td>(\d+) [^<]*<span class="ops-muted">'
                    r"\(approximate, read (\d+) s ago\)", page)  # fmt: skip
    assert row, "no Orders row with its age"
    return row


def _add_order() -> None:
    # Written already REJECTED: the stream's PENDING filter leaves it alone.
    order = Order.new(customer_name=f"kept-{uuid.uuid4().hex[:8]}", lines=[OrderLine("x", 1)])
    wiring.dynamo_store().order_put_new(
        order.with_status(OrderStatus.REJECTED, "rejected in setup", order.last_updated)
    )


def test_table_sizes_are_kept_within_the_window_and_read_again_after_it(
    staff: Client, runtime_env: dict[str, str], keeping: Any
):
    # Given a first view, which reads both tables' sizes
    first, first_calls = _view(staff)
    assert first_calls.count("dynamodb.DescribeTable") == 2
    counted = int(_orders_row(first).group(1))

    # When an order is added and the page is viewed again within the window
    _add_order()
    second, second_calls = _view(staff)

    # Then the sizes are the kept ones, with their age, and no table was described again
    assert "dynamodb.DescribeTable" not in second_calls
    assert int(_orders_row(second).group(1)) == counted
    # While everything else was read afresh, as on the first view
    assert [c for c in second_calls if not c.startswith("dynamodb.")] == [
        c for c in first_calls if not c.startswith("dynamodb.")
    ]
    assert "cloudwatch.GetMetricData" in second_calls

    # When the window has passed (shortened to 1 s, a second after the sizes were read)
    time.sleep(1.1)
    keeping.OPS_DASHBOARD_TABLE_COUNT_SECONDS = 1.0
    third, third_calls = _view(staff)

    # Then the sizes are read again, and include the new order
    assert third_calls.count("dynamodb.DescribeTable") == 2
    assert int(_orders_row(third).group(1)) == counted + 1


def test_exact_counts_are_never_kept(staff: Client, runtime_env: dict[str, str], keeping: Any):
    # Given sizes kept by a view
    _view(staff)
    _add_order()

    # When exact counts are asked for
    page, calls = _view(staff, "/ops/?exact=1")

    # Then the tables are scanned now, and the page does not call them approximate
    assert "dynamodb.Scan" in calls and "dynamodb.DescribeTable" not in calls
    assert "(approximate" not in page


def test_a_failed_read_is_not_kept_and_a_dead_redis_keeps_nothing(keeping: Any, refused_port: int):
    # Given a read that fails, then succeeds
    answers: list[Any] = [RuntimeError("throttled"), {"n": 1}, {"n": 2}]

    def read() -> Any:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    # Then the failure reaches the caller and the next view reads again
    with pytest.raises(RuntimeError):
        kept_reads.kept("flaky", read, seconds=30)
    assert kept_reads.kept("flaky", read, seconds=30).value == {"n": 1}
    # And a value read is kept
    assert kept_reads.kept("flaky", read, seconds=30).value == {"n": 1}

    # And something else under a key is no kept value: it is read afresh (and replaced)
    client = redis.Redis.from_url(keeping.REDIS_URL)
    try:
        client.set(f"{kept_reads.KEY_PREFIX}garbled", b"not json")
        assert kept_reads.kept("garbled", lambda: 7, seconds=30).value == 7
        assert kept_reads.kept("garbled", lambda: 8, seconds=30).value == 7
    finally:
        client.close()

    # When Redis cannot be reached
    keeping.REDIS_URL = f"redis://127.0.0.1:{refused_port}/0"
    kept_reads.reset_for_tests()
    reads = []

    def counted_read() -> int:
        reads.append(1)
        return len(reads)

    # Then every call reads afresh, and none fails
    assert [kept_reads.kept("k", counted_read, seconds=30).value for _ in range(3)] == [1, 2, 3]
