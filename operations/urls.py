"""The operations pages' routes, mounted at /ops/ by portal/urls.py."""

from django.urls import path, register_converter

from operations.models import ReplayJob
from operations.views.audit import audit_view
from operations.views.dashboard import dashboard_view
from operations.views.dlq import (
    dlq_delete_view,
    dlq_look_view,
    dlq_purge_view,
    dlq_replay_view,
    dlq_view,
    replay_job_cancel_view,
    replay_job_progress_view,
    replay_job_resume_view,
    replay_job_view,
)
from operations.views.inventory import (
    inventory_adjust_view,
    inventory_create_view,
    inventory_delete_view,
    inventory_edit_view,
    inventory_view,
)
from operations.views.jobs import job_progress_view, job_start_view, job_view, jobs_view
from operations.views.order_actions import order_action_view
from operations.views.orders import order_detail_view, orders_view

app_name = "operations"


class DeadLetterQueueConverter:
    """A dead-letter queue in a URL: one of ReplayJob.Queue's values."""

    regex = "|".join(ReplayJob.Queue.values)

    def to_python(self, value: str) -> str:
        """The value as it is."""
        return value

    def to_url(self, value: str) -> str:
        """The value as it is."""
        return value


register_converter(DeadLetterQueueConverter, "dlq")
ORDERS_DLQ = {"queue": ReplayJob.Queue.ORDERS_DLQ}

urlpatterns = [
    path("", dashboard_view, name="dashboard"),
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
    # The Orders DLQ at its first addresses; each queue at dlq/<queue>/ (ReplayJob.Queue).
    path("dlq/", dlq_view, ORDERS_DLQ, name="dlq"),
    path("dlq/replay/", dlq_replay_view, ORDERS_DLQ, name="dlq-replay"),
    path("dlq/messages/<str:message_id>/delete/", dlq_delete_view, ORDERS_DLQ, name="dlq-delete"),
    path("dlq/jobs/<uuid:job_id>/", replay_job_view, name="replay-job"),
    path("dlq/jobs/<uuid:job_id>/progress/", replay_job_progress_view, name="replay-job-progress"),
    path("dlq/jobs/<uuid:job_id>/cancel/", replay_job_cancel_view, name="replay-job-cancel"),
    path("dlq/jobs/<uuid:job_id>/resume/", replay_job_resume_view, name="replay-job-resume"),
    path("dlq/<dlq:queue>/", dlq_view, name="dlq-queue"),
    path("dlq/<dlq:queue>/look/", dlq_look_view, name="dlq-look"),
    path("dlq/<dlq:queue>/replay/", dlq_replay_view, name="dlq-queue-replay"),
    path("dlq/<dlq:queue>/purge/", dlq_purge_view, name="dlq-purge"),
    path(
        "dlq/<dlq:queue>/messages/<str:message_id>/delete/",
        dlq_delete_view,
        name="dlq-queue-delete",
    ),
    path("audit/", audit_view, name="audit"),
    path("jobs/", jobs_view, name="jobs"),
    path("jobs/<slug:kind>/start/", job_start_view, name="job-start"),
    path("jobs/<uuid:job_id>/", job_view, name="job"),
    path("jobs/<uuid:job_id>/progress/", job_progress_view, name="job-progress"),
]
