"""`manage.py replay_dlq`: replay a dead-letter queue in the foreground, printing progress."""

from __future__ import annotations

import getpass
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations import selectors
from operations.jobs import (
    JobRefused,
    create_replay_job,
    replay_summary,
    resume_replay_job,
    run_replay_job,
    sent_label,
)
from operations.models import ReplayJob
from pipeline import wiring
from pipeline.config import MissingSetting
from pipeline.dlq import MAX_RATE, DeadLetter, MessageOutcome

# A dry run lists at most this many messages when no --limit is given.
DRY_RUN_MAX = 1000
Queue = ReplayJob.Queue


class Command(BaseCommand):
    """The DLQ page's replay as a job run here (same rules, ledger and audit log)."""

    help = (
        "Replay a dead-letter queue: the Orders DLQ back to the Orders queue (send first, "
        "delete after: nothing is lost; messages whose order moved on are skipped), or the "
        "stream-failure queue by re-driving each failed batch, or one API key's dead-lettered "
        "webhook deliveries back to the deliveries queue. --dry-run lists what would "
        "happen and changes nothing but the messages' receive counts. Ctrl-C leaves a job that "
        "--resume goes on with."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """Which queue, what scope, how fast, why."""
        parser.add_argument(
            "--queue", choices=Queue.values, default=Queue.ORDERS_DLQ, help="which queue"
        )
        parser.add_argument("--limit", type=int, default=None, help="send at most N messages")
        parser.add_argument(
            "--rate",
            type=float,
            default=None,
            help=f"messages per second (default {settings.OPS_REPLAY_RATE:g}, at most "
            f"{MAX_RATE:g})",
        )
        parser.add_argument("--order-id", default=None, help="only the messages for this order")
        parser.add_argument(
            "--client-id",
            default=None,
            help="webhook-dlq: the API key (its prefix) whose deliveries to move; required there",
        )
        parser.add_argument(
            "--endpoint", default=None, help="webhook-dlq: only this endpoint's (subscription id)"
        )
        parser.add_argument("--min-age", type=int, default=None, help="only older (minutes)")
        parser.add_argument("--max-age", type=int, default=None, help="only newer (minutes)")
        parser.add_argument("--min-receives", type=int, default=None)
        parser.add_argument("--max-receives", type=int, default=None)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="list the messages and what a replay would do with each; change nothing",
        )
        parser.add_argument("--resume", metavar="JOB_ID", help="go on with a stale or failed job")
        parser.add_argument(
            "--reason", default="", help="why (kept in the audit log with the counts)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Replay (or list) and print a line per message, then the summary."""
        queue, limit = options["queue"], options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be 1 or more")
        webhooks = queue == Queue.WEBHOOK_DLQ
        if webhooks and not options["client_id"]:
            raise CommandError("--queue webhook-dlq needs --client-id (the API key's prefix)")
        if not webhooks and (options["client_id"] or options["endpoint"]):
            raise CommandError("--client-id and --endpoint are for --queue webhook-dlq only")
        if webhooks and options["dry_run"]:
            # Its verdicts speak of orders; a key's webhooks page shows its endpoints' attempts.
            raise CommandError("--dry-run is for the Orders DLQ and the stream-failure queue")
        try:
            source = selectors.queue_for(queue)
            if webhooks:
                wiring.webhook_deliveries_queue()  # where the deliveries go back to
            elif not options["dry_run"]:
                # What the replay writes to: the Orders queue, and the tables it reads.
                wiring.orders_queue()
                wiring.dynamo_store()
        except MissingSetting as exc:
            raise CommandError(
                f"{exc}: start the local runtime (python -m pipeline.local) or set the "
                "pipeline's environment"
            ) from exc
        depth = selectors.queue_depth(queue)["visible"]
        if options["dry_run"]:
            self._dry_run(queue, source.queue_url, limit or DRY_RUN_MAX, depth)
            return
        actor = f"manage.py replay_dlq ({getpass.getuser()})"
        try:
            if options["resume"]:
                job = resume_replay_job(options["resume"], user=None, dispatch=False)
            else:
                job = create_replay_job(
                    user=None,
                    actor=actor,
                    reason=options["reason"],
                    queue=queue,
                    limit=limit,
                    rate=options["rate"],
                    filters=_filters(options),
                    dispatch=False,
                )
        except (JobRefused, ReplayJob.DoesNotExist) as exc:
            raise CommandError(str(exc) or "no such job") from exc
        self.stdout.write(
            f"Replay job {job.pk}: {'up to ' + str(job.limit) if job.limit else 'all'} of about "
            f"{depth} message(s) of {source.queue_url}, at most {job.rate:g} a second..."
        )
        label = sent_label(job)
        try:
            job = run_replay_job(
                job.pk, on_record=lambda outcomes, row: self._progress(outcomes, row, label)
            )
        except KeyboardInterrupt as exc:
            raise CommandError(
                f"interrupted: job {job.pk} is left running and turns stale after "
                f"{settings.OPS_REPLAY_STALE_SECONDS:g} s; go on with --resume {job.pk}"
            ) from exc
        if job.state == ReplayJob.State.FAILED:
            raise CommandError(f"replay stopped: {job.error} (go on with --resume {job.pk})")
        style = self.style.SUCCESS if job.failed == 0 else self.style.WARNING
        self.stdout.write(style(replay_summary(job)))
        if job.failed:
            self.stdout.write(
                self.style.WARNING(f"{job.failed} message(s) failed and are still in the queue.")
            )

    def _progress(self, outcomes: Sequence[MessageOutcome], job: ReplayJob, label: str) -> None:
        for outcome in outcomes:
            if outcome.outcome == "passed":
                continue
            verb = label if outcome.outcome == "sent" else outcome.outcome
            order = f" (order {outcome.order_id})" if outcome.order_id else ""
            why = f": {outcome.reason}" if outcome.outcome != "sent" and outcome.reason else ""
            self.stdout.write(f"[{job.looked_at:>4}] {verb} {outcome.message_id}{order}{why}")

    def _dry_run(self, queue: str, url: str, most: int, depth: int) -> None:
        try:
            letters = selectors.dead_letters(queue=queue, max_messages=most)
        except selectors.ListingRefused as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Dry run: about {depth} message(s) in {url}.")
        for number, letter in enumerate(letters, start=1):
            self.stdout.write(
                f"[{number:>3}] {_verdict(letter)} (received {letter.receive_count}x)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Dry run: {len(letters)} message(s) looked at; nothing was changed but their "
                "receive counts."
            )
        )


def _verdict(letter: DeadLetter) -> str:
    if letter.stream_batch is not None:
        batch = letter.stream_batch
        return (
            f"would re-drive {letter.message_id}: {batch.batch_size} record(s) of "
            f"{batch.shard_id}, {batch.start} to {batch.end}"
        )
    if letter.order_id is None:
        return f"would leave {letter.message_id}: not a fulfilment request"
    status = letter.order_status or letter.lookup_error or ""
    verb = {"sent": "would send", "skipped": "would skip"}.get(
        letter.replay_verdict or "", "would leave"
    )
    why = f": {letter.replay_reason}" if letter.replay_reason else ""
    return f"{verb} {letter.message_id} order {letter.order_id} {status}{why}"


def _filters(options: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = {
        "order_id": options["order_id"],
        "min_receives": options["min_receives"],
        "max_receives": options["max_receives"],
        "client_id": options["client_id"],
        "subscription_id": options["endpoint"],
    }
    for name, option in (("min_age_seconds", "min_age"), ("max_age_seconds", "max_age")):
        if options[option] is not None:
            found[name] = options[option] * 60
    return {k: v for k, v in found.items() if v is not None}
