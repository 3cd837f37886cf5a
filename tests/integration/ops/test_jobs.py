"""Background jobs from the portal: who may start one, one of a kind at a time, a dead worker's
job does not block its kind, a failure is recorded, and the work runs outside the request."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from operations.background import run_job, start_job
from operations.models import BackgroundJob

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

Kind = BackgroundJob.Kind


@pytest.fixture
def boss(db: None) -> Client:
    """A client logged in as a superuser: every permission."""
    user = get_user_model().objects.create_superuser(
        username=f"boss-{uuid.uuid4().hex[:6]}", password="x" * 12
    )
    client = Client()
    client.force_login(user)
    return client


def test_starting_a_job_needs_its_permission(staff: Client) -> None:
    # Given a staff member without the sweeper permission
    url = reverse("operations:job-start", args=[Kind.SWEEP_PAID])

    # When they open and post the start page
    looked = staff.get(url)
    posted = staff.post(url, {"reason": "try"})

    # Then both are refused and no job exists
    assert (looked.status_code, posted.status_code) == (403, 403)
    assert not BackgroundJob.objects.exists()
    # And the jobs list itself needs the view permission too
    assert staff.get(reverse("operations:jobs")).status_code == 403


def test_a_job_is_started_by_a_post_with_a_reason_and_not_run_in_the_request(
    boss: Client,
) -> None:
    # Given the re-queue's start page (the old address still leads there)
    page = boss.get(reverse("operations:requeue-stranded")).content.decode()
    # (its form, and the admin header's log-out form: each POST form carries the token)
    assert page.count('method="post"') == page.count("csrfmiddlewaretoken") == 2

    # When it is posted without a reason, nothing starts
    boss.post(reverse("operations:requeue-stranded"), {"reason": ""})
    assert not BackgroundJob.objects.exists()

    # When it is posted with one
    response = boss.post(reverse("operations:requeue-stranded"), {"reason": "queue purged"})

    # Then one job is queued for the worker (the request ran nothing) and the page follows it
    job = BackgroundJob.objects.get()
    assert (job.kind, job.state, job.reason) == (Kind.REQUEUE_STRANDED, "queued", "queue purged")
    assert response.status_code == 302 and response["Location"] == reverse(
        "operations:job", args=[job.pk]
    )
    shown = boss.get(response["Location"]).content.decode()
    assert "Re-queue stranded RESERVED orders" in shown and 'http-equiv="refresh"' in shown


def test_a_second_job_of_a_kind_is_refused_while_the_first_is_unfinished(boss: Client) -> None:
    # Given a PENDING sweep already queued
    url = reverse("operations:job-start", args=[Kind.SWEEP_PENDING])
    boss.post(url, {"reason": "first"})

    # When a second is asked for
    response = boss.post(url, {"reason": "second"}, follow=True)

    # Then it is refused, said so, and only the first exists; another kind may still start
    assert "a job of this kind is still running" in response.content.decode()
    assert BackgroundJob.objects.filter(kind=Kind.SWEEP_PENDING).count() == 1
    boss.post(reverse("operations:job-start", args=[Kind.SWEEP_PAID]), {"reason": "other"})
    assert BackgroundJob.objects.count() == 2


def test_a_job_whose_worker_died_does_not_block_its_kind(boss: Client, settings: Any) -> None:
    # Given a RUNNING job whose worker stopped writing its row long ago
    job = start_job(Kind.SWEEP_RESERVED, user=None, reason="first")
    BackgroundJob.objects.filter(pk=job.pk).update(
        state="running",
        updated_at=timezone.now() - timedelta(seconds=10 * settings.OPS_JOB_STALE_SECONDS),
    )
    job.refresh_from_db()
    assert job.is_stale

    # When staff start the sweep again
    boss.post(reverse("operations:job-start", args=[Kind.SWEEP_RESERVED]), {"reason": "again"})

    # Then the dead one is closed as failed, saying why, and the new one is queued
    job.refresh_from_db()
    assert job.state == "failed" and "stale" in job.error
    assert BackgroundJob.objects.get(state="queued").reason == "again"


def test_a_job_that_fails_records_its_error_and_is_not_run_twice(staff: Client) -> None:
    # Given a PENDING sweep queued while DynamoDB is unreachable (this suite's dead endpoint)
    job = start_job(Kind.SWEEP_PENDING, user=None, reason="while down")

    # When the worker runs it
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises; the row says it
        run_job(str(job.pk))

    # Then the job is failed with the error, and a second delivery of the task does nothing
    job.refresh_from_db()
    assert job.state == "failed" and job.error and job.finished_at is not None
    assert job.runs == 1
    assert run_job(str(job.pk)) == {}
    job.refresh_from_db()
    assert job.runs == 1


def test_the_progress_endpoint_reports_the_row(boss: Client) -> None:
    # Given a job part-way through
    job = start_job(Kind.REQUEUE_STRANDED, user=None)
    BackgroundJob.objects.filter(pk=job.pk).update(state="running", progress=25, total=100)

    # When its progress is asked for
    body = boss.get(reverse("operations:job-progress", args=[job.pk])).json()

    # Then it is the row's
    assert (body["state"], body["progress"], body["total"], body["percent"]) == (
        "running",
        25,
        100,
        25,
    )
