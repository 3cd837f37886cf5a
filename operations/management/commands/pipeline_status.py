"""`manage.py pipeline_status`: the dashboard's status report, in a terminal or as JSON."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from operations.parts import Part
from operations.status_report import DEFAULT_MINUTES, NO_LOCAL_ENDPOINT, StatusReport, status_report


class Command(BaseCommand):
    """Print the endpoints, resources, table item counts, queue depths, alarms, metrics and
    orders per status; a part that cannot be read shows its error, the others still show."""

    help = (
        "Show the pipeline's endpoints, table item counts, queue and DLQ depths, alarms, "
        "metrics and orders per status."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """--json, --exact, --minutes."""
        parser.add_argument("--json", action="store_true", help="print one JSON document")
        parser.add_argument(
            "--exact", action="store_true", help="count items with a scan instead of the estimate"
        )
        parser.add_argument(
            "--minutes",
            type=int,
            default=DEFAULT_MINUTES,
            help=f"the window the metrics cover (default {DEFAULT_MINUTES})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Gather the report and print it."""
        report = status_report(
            minutes=options["minutes"],
            exact=options["exact"],
            count_cap=settings.OPS_STATUS_COUNT_CAP,
        )
        if options["json"]:
            self.stdout.write(json.dumps(report.as_json(), indent=2))
            return
        self._print(report)

    def _error(self, label: str, part: Part) -> bool:
        # Prints the part's error under its label; says whether there was one.
        if part.error is not None:
            self.stdout.write(self.style.ERROR(f"  {label}{part.error}"))
        return part.error is not None

    def _print(self, report: StatusReport) -> None:
        out = self.stdout.write
        out(self.style.MIGRATE_HEADING("Endpoints"))
        out(f"  region: {report.region}")
        for name, url in (report.endpoints or {"all": NO_LOCAL_ENDPOINT}).items():
            out(f"  {name}: {url}")
        out(self.style.MIGRATE_HEADING("Resources"))
        for name, value in report.resources.items():
            out(f"  {name}: {value or '(not set)'}")
        out(self.style.MIGRATE_HEADING("Tables"))
        for name, part in report.tables.items():
            if not self._error(f"{name}: ", part):
                approx = "" if part.value["exact"] else " (approximate)"
                out(f"  {name}: {part.value['items']} items{approx}")
        out(self.style.MIGRATE_HEADING("Queues"))
        for name, part in report.queues.items():
            if self._error(f"{name}: ", part):
                continue
            depth = part.value
            line = (
                f"  {name}: {depth['visible']} waiting, {depth['in_flight']} in flight, "
                f"{depth['delayed']} delayed"
            )
            if name == "dead_letter" and depth["visible"]:
                line = self.style.WARNING(line + "  <- replay or inspect these")
            elif name == "webhook_dead_letters" and depth["visible"]:
                line = self.style.WARNING(line + "  <- replay from their key's webhooks page")
            out(line)
        out(self.style.MIGRATE_HEADING("Orders per status"))
        if not self._error("", report.status_counts):
            for row in report.status_counts.value:
                shown = f">= {row['count']}" if row["capped"] else str(row["count"])
                out(f"  {row['status']}: {shown}")
        out(self.style.MIGRATE_HEADING("Alarms"))
        if not self._error("", report.alarms):
            for alarm in report.alarms.value:
                style = self.style.ERROR if alarm["state"] == "ALARM" else (lambda text: text)
                out(style(f"  {alarm['state']:<17} {alarm['name']}: {alarm['reason']}"))
        metrics = report.metrics.value or {}
        out(self.style.MIGRATE_HEADING(f"Metrics (last {metrics.get('minutes', '?')} minutes)"))
        if self._error("", report.metrics):
            return
        for name, value in metrics["counts"].items():
            out(f"  {name}: {value:g}")
        for name, ratio in metrics["ratios"].items():
            shown = "no data" if ratio is None else f"{ratio:.1%}"
            out(f"  {name.replace('_', ' ')} rate: {shown}")
