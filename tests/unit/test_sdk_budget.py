"""The SDK's timeouts and retries fit inside every function's timeout and API Gateway's 29 s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config

from pipeline import aws
from pipeline.local.cfn import load_template

REPO_ROOT = Path(__file__).resolve().parents[2]
API_GATEWAY_LIMIT_S = 29  # API Gateway's integration timeout, not configurable upwards


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    """template.yaml, short tags expanded."""
    return load_template(REPO_ROOT / "template.yaml")


def test_the_worst_call_is_every_attempt_timing_out_plus_the_backoff(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a client built the way the pipeline builds them
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.reset_clients()
    config: Config = aws.client("dynamodb").meta.config
    aws.reset_clients()
    retries = config.retries or {}

    # Then the budget is computed from the settings the built client really uses (botocore's
    # total_max_attempts counts the first try too)
    assert retries["mode"] == "standard"
    assert retries["total_max_attempts"] == aws.SDK_ATTEMPTS
    assert (config.connect_timeout, config.read_timeout) == (
        aws.SDK_CONNECT_TIMEOUT_S,
        aws.SDK_READ_TIMEOUT_S,
    )
    # 3 attempts of (2 s connect + 5 s read), 1 s + 2 s of backoff between them
    assert aws.worst_call_seconds() == 3 * (2 + 5) + 1 + 2


def test_one_call_fits_inside_every_functions_timeout(template: dict[str, Any]) -> None:
    # Given every function of the template with its timeout
    default = template["Globals"]["Function"]["Timeout"]
    functions = {
        name: resource["Properties"].get("Timeout", default)
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert functions

    # Then a call that exhausts its retries still fails inside the function, which can report
    # it (the workflow's Retry or the batch's partial failure takes over), instead of being
    # killed mid-call by Lambda
    too_short = {name: t for name, t in functions.items() if t <= aws.worst_call_seconds()}
    assert too_short == {}


def test_one_call_fits_inside_api_gateway_and_the_portals_timeout() -> None:
    # Given the portal's Lambda timeout (Zappa) and API Gateway's limit
    stages = json.loads((REPO_ROOT / "zappa_settings.json").read_text())
    portal_timeout = stages["dev"]["timeout_seconds"]

    # Then a request whose one DynamoDB write exhausts its retries answers before API
    # Gateway gives up with a 504 (which would hide whether the order was written)
    assert aws.worst_call_seconds() < API_GATEWAY_LIMIT_S <= portal_timeout
