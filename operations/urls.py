"""The operations pages' routes, mounted at /ops/ by portal/urls.py.

The dead-letter queues, replay jobs and audit log live in the admin now; their old addresses
here redirect there (a POST to one lands on the page where the action is now, changing
nothing), so links and bookmarks keep working.
"""

from typing import Any

from django.http import HttpRequest, HttpResponseRedirect
from django.urls import path, register_converter, reverse

from operations.models import ReplayJob
from operations.views.dashboard import dashboard_view
from operations.views.inventory import (
    inventory_adjust_view,
    inventory_create_view,
    inventory_delete_view,
    inventory_edit_view,
    inventory_view,
)
from operations.views.jobs import job_progress_view, job_start_view, job_view, jobs_view
from operations.views.orders import order_action_view, order_detail_view, orders_view
from operations.views.preferences import preferences_view

app_name = "operations"


# The queues whose pages lived here; the webhook DLQ never had one (its replays start from a
# key's webhooks page).
QUEUE_PAGES = {
    ReplayJob.Queue.ORDERS_DLQ: "admin:operations_ordersdeadletter_changelist",
    ReplayJob.Queue.STREAM_FAILURES: "admin:operations_streamfailure_changelist",
}


class DeadLetterQueueConverter:
    """A dead-letter queue in an old URL: one of QUEUE_PAGES' keys."""

    regex = "|".join(QUEUE_PAGES)

    def to_python(self, value: str) -> str:
        """The value as it is."""
        return value

    def to_url(self, value: str) -> str:
        """The value as it is."""
        return value


register_converter(DeadLetterQueueConverter, "dlq")


def moved(name: str, *, queue_page: bool = False, job: bool = False) -> Any:
    """A view sending an old /ops/ address to the admin page that replaced it."""

    def redirect_view(request: HttpRequest, **kwargs: Any) -> HttpResponseRedirect:
        if queue_page:
            target = reverse(QUEUE_PAGES[kwargs.get("queue", ReplayJob.Queue.ORDERS_DLQ)])
        elif job:
            target = reverse(name, args=[kwargs["job_id"]])
        else:
            target = reverse(name)
        query = request.GET.urlencode()
        return HttpResponseRedirect(target + (f"?{query}" if query and not job else ""))

    return redirect_view


to_queue = moved("", queue_page=True)
to_job = moved("admin:operations_replayjob_change", job=True)

urlpatterns = [
    path("", dashboard_view, name="dashboard"),
    path("preferences/", preferences_view, name="preferences"),
    path("orders/", orders_view, name="orders"),
    # Kept for old links and bookmarks: the re-queue now runs as a background job.
    path(
        "orders/requeue-stranded/",
        job_start_view,
        {"kind": "requeue_stranded"},
        name="requeue-stranded",
    ),
    path("orders/<str:order_id>/", order_detail_view, name="order"),
    path("orders/<str:order_id>/<slug:action>/", order_action_view, name="order-action"),
    path("inventory/", inventory_view, name="inventory"),
    path("inventory/new/", inventory_create_view, name="inventory-create"),
    path("inventory/<str:name>/adjust/", inventory_adjust_view, name="inventory-adjust"),
    path("inventory/<str:name>/edit/", inventory_edit_view, name="inventory-edit"),
    path("inventory/<str:name>/delete/", inventory_delete_view, name="inventory-delete"),
    # Moved to the admin: the dead-letter queues, their replay jobs, the audit log.
    path("dlq/", to_queue, name="dlq"),
    path("dlq/replay/", to_queue, name="dlq-replay"),
    path("dlq/messages/<str:message_id>/delete/", to_queue, name="dlq-delete"),
    path("dlq/jobs/<uuid:job_id>/", to_job, name="replay-job"),
    path(
        "dlq/jobs/<uuid:job_id>/progress/", moved("admin:operations_replayjob_progress", job=True)
    ),
    path("dlq/jobs/<uuid:job_id>/cancel/", to_job),
    path("dlq/jobs/<uuid:job_id>/resume/", to_job),
    path("dlq/<dlq:queue>/", to_queue, name="dlq-queue"),
    path("dlq/<dlq:queue>/look/", to_queue),
    path("dlq/<dlq:queue>/replay/", to_queue),
    path("dlq/<dlq:queue>/purge/", to_queue),
    path("dlq/<dlq:queue>/messages/<str:message_id>/delete/", to_queue),
    path("audit/", moved("admin:operations_auditlogentry_changelist"), name="audit"),
    path("jobs/", jobs_view, name="jobs"),
    path("jobs/<slug:kind>/start/", job_start_view, name="job-start"),
    path("jobs/<uuid:job_id>/", job_view, name="job"),
    path("jobs/<uuid:job_id>/progress/", job_progress_view, name="job-progress"),
]
