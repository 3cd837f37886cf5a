"""A server's workers make their AWS clients as they start, and a client that cannot be made
yet is left for its first use to report."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.exceptions import NoRegionError

from pipeline import aws


def test_warming_makes_the_shared_clients_the_first_request_then_uses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a process with no clients yet
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()
    try:
        # When it warms SQS and CloudWatch
        aws.warm(("sqs", "cloudwatch"))
        warmed = dict(aws._clients)

        # Then those two clients exist, and are the ones a request gets
        assert sorted(key[0] for key in warmed) == ["cloudwatch", "sqs"]
        assert aws.client("sqs") is next(c for k, c in warmed.items() if k[0] == "sqs")
        assert len(aws._clients) == 2
    finally:
        aws.reset_clients()


def test_a_client_that_cannot_be_made_yet_is_left_for_its_first_use(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given no region anywhere (environment or config file)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    aws.reset_clients()
    try:
        # When a worker warms its clients, nothing is raised
        aws.warm(("sqs",))

        # Then the first real use reports the missing region
        with pytest.raises(NoRegionError):
            aws.client("sqs")
    finally:
        aws.reset_clients()
