"""What each kind of staff-started background job does (registered with operations.background).

The sweepers and the re-queue are the same functions beat runs on its schedule; run as a job
they are audited under the staff member's name.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from operations import sweepers
from operations.background import Progress, runs
from operations.models import BackgroundJob

Kind = BackgroundJob.Kind


@runs(Kind.REQUEUE_STRANDED)
def _requeue_stranded(job: BackgroundJob, progress: Progress) -> dict[str, Any]:
    cap = int(job.params.get("max_orders") or settings.OPS_REQUEUE_STRANDED_MAX_ORDERS)
    progress(0, None)
    # A progress write per examined order would cost as much as the DescribeExecution it
    # reports: every 25th is heartbeat enough.
    requeued = sweepers.requeue_stranded(
        job.actor,
        max_orders=cap,
        on_examined=lambda n: progress(n) if n % 25 == 0 else None,
        by_hand=True,
    )
    return {"requeued": requeued, "examined_at_most": cap}


def _sweep(run: Any) -> Any:
    def runner(job: BackgroundJob, progress: Progress) -> dict[str, Any]:
        progress(0, None)
        report = run(job.actor)
        progress(report["examined"], report["examined"])
        return report

    return runner


runs(Kind.SWEEP_PENDING)(_sweep(sweepers.sweep_pending))
runs(Kind.SWEEP_RESERVED)(_sweep(sweepers.sweep_reserved))
runs(Kind.SWEEP_PAID)(_sweep(sweepers.sweep_paid))

# The inventory CSV import registers its own runner (operations/inventory_import.py).
import operations.inventory_import  # noqa: E402, F401
