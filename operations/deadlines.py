"""How long a task may still run: the deadline the Lambda bridge puts in a task's request."""

from __future__ import annotations

import time
from collections.abc import Callable

# portal/lambda_tasks.py sets this request attribute to the time.monotonic() by which the task
# should have returned: the invocation's end, less the time it takes to save progress and queue
# a continuation. A Celery worker sets none, and its tasks run to the end.
DEADLINE = "deadline"


def stop_check(request: object) -> Callable[[], bool] | None:
    """A `should_stop` for a long job run by the task whose `request` this is (`self.request`
    of a bound task): true once its deadline has passed; None when it has no deadline."""
    deadline = getattr(request, DEADLINE, None)
    if deadline is None:
        return None
    return lambda: time.monotonic() >= float(deadline)
