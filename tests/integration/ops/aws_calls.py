"""A page fetched with the AWS operations its view made, for tests of what a view costs."""

from __future__ import annotations

from typing import Any

from django.test import Client

from pipeline import aws


def view_with_aws_calls(staff: Client, path: str = "/ops/") -> tuple[str, list[str]]:
    """The page at `path` (200 expected), and every AWS operation its view made, sorted (the
    view's parts run in parallel, so their order is not the view's)."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(f"{model.service_model.service_name}.{model.name}")

    clients = [aws.client(service) for service in ("dynamodb", "sqs", "cloudwatch")]
    for client in clients:
        client.meta.events.register("before-call", record)
    try:
        response = staff.get(path)
    finally:
        for client in clients:
            client.meta.events.unregister("before-call", record)
    assert response.status_code == 200
    return response.content.decode(), sorted(calls)
