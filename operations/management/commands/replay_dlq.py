"""`manage.py replay_dlq`: move DLQ messages back to the Orders queue, printing progress."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from operations import selectors
from operations.audit import Action, Outcome, record
from operations.jobs import replay_summary
from pipeline import wiring
from pipeline.config import MissingSetting
from pipeline.dlq import ReplayResult, dlq_replay
from pipeline.fulfilment import parse_fulfilment_message
from pipeline.ports import QueueMessage

# A dry run lists at most this many messages when no --limit is given.
DRY_RUN_MAX = 1000


def _order_of(body: str) -> str:
    try:
        return parse_fulfilment_message(body)[0]
    except ValueError:
        return "-"


class Command(BaseCommand):
    """The DLQ page's replay, from a terminal (and recorded in the same audit log)."""

    help = (
        "Replay messages from the Orders dead-letter queue to the Orders queue (send first, "
        "delete after: nothing is lost). --dry-run lists what would move and changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--limit, --dry-run, --reason."""
        parser.add_argument("--limit", type=int, default=None, help="move at most N messages")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="list the messages that would be replayed, with their orders; move nothing",
        )
        parser.add_argument(
            "--reason", default="", help="why (kept in the audit log with the counts)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Replay (or list) and print a line per message, then the summary."""
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be 1 or more")
        try:
            dlq = wiring.dead_letter_queue()
            target = wiring.orders_queue()
        except MissingSetting as exc:
            raise CommandError(
                f"{exc}: start the local runtime (python -m pipeline.local) or set the "
                "pipeline's environment"
            ) from exc
        depth = selectors.dlq_depth()["visible"]
        if options["dry_run"]:
            self._dry_run(dlq, limit or DRY_RUN_MAX, depth)
            return
        expected = min(depth, limit) if limit is not None else depth
        self.stdout.write(
            f"Replaying {'up to ' + str(limit) if limit else 'all'} of about {depth} message(s) "
            f"from {dlq.queue_url} to {target.queue_url}..."
        )
        width = len(str(max(expected, 1)))

        def progress(moved: int, message: QueueMessage) -> None:
            self.stdout.write(
                f"[{moved:>{width}}/{expected}] moved {message.message_id} "
                f"(order {_order_of(message.body)})"
            )

        actor = f"manage.py replay_dlq ({getpass.getuser()})"
        try:
            result = dlq_replay(dlq=dlq, target=target, limit=limit, progress=progress)
        except Exception as exc:
            record(
                user=None,
                actor=actor,
                action=Action.DLQ_REPLAY,
                outcome=Outcome.FAILED,
                reason=options["reason"],
                message=f"Replay failed: {type(exc).__name__}: {exc}",
            )
            raise CommandError(f"replay stopped: {type(exc).__name__}: {exc}") from exc
        summary = replay_summary(result)
        record(
            user=None,
            actor=actor,
            action=Action.DLQ_REPLAY,
            outcome=Outcome.SUCCEEDED if result.failed == 0 else Outcome.FAILED,
            reason=options["reason"],
            message=summary,
            detail={**_counts(result), "limit": limit, "source": "manage.py replay_dlq"},
        )
        style = self.style.SUCCESS if result.failed == 0 else self.style.WARNING
        self.stdout.write(style(summary))
        if result.failed:
            self.stdout.write(
                self.style.WARNING(
                    f"{result.failed} message(s) could not be sent and are still in the DLQ."
                )
            )

    def _dry_run(self, dlq: Any, most: int, depth: int) -> None:
        letters = selectors.dead_letters(max_messages=most)
        self.stdout.write(f"Dry run: about {depth} message(s) in {dlq.queue_url}.")
        for number, letter in enumerate(letters, start=1):
            status = letter.order_status or letter.lookup_error or ""
            self.stdout.write(
                f"[{number:>3}] would move {letter.message_id} order {letter.order_id or '-'} "
                f"{status} (received {letter.receive_count}x)"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Dry run: {len(letters)} message(s) would be replayed; nothing was changed."
            )
        )


def _counts(result: ReplayResult) -> dict[str, int]:
    return {"moved": result.moved, "failed": result.failed, "skipped": result.skipped}
