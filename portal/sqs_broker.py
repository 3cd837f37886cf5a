"""kombu SQS transport options for the portal's tasks queue (no Django: settings import it)."""

from __future__ import annotations

import os


def sqs_transport_options(
    queue_url: str, queue_name: str, region: str | None = None
) -> dict[str, object]:
    """CELERY_BROKER_TRANSPORT_OPTIONS for `sqs://` with `queue_name` (the Celery queue) at
    `queue_url` (the stack's PortalTasksQueue).

    predefined_queues names the queue's URL, so kombu never calls ListQueues or CreateQueue
    (the portal's role grants neither, and the template, not Celery, defines the queue).
    Credentials and the endpoint are the SDK's own (the function's role; AWS_ENDPOINT_URL in
    tests), as for every other client of the portal.
    """
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    return {
        "predefined_queues": {queue_name: {"url": queue_url}},
        **({"region": region} if region else {}),
        # Publishing happens inside a web request (a replay click) or a schedule event: give up
        # in seconds, like the Redis broker's socket timeouts in base.py.
        "client-config": {"connect_timeout": 3, "read_timeout": 10, "retries": {"max_attempts": 2}},
    }
