"""`manage.py pipeline_status`: where the pipeline is, how full its tables and queues are."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from pipeline import aws, wiring
from pipeline.config import PipelineSettings
from pipeline.observability import alarm_states, metrics_summary


class Command(BaseCommand):
    """Print the endpoints, resource names, table item counts and queue depths."""

    help = "Show the pipeline's endpoints, table item counts, and queue and DLQ depths."

    def add_arguments(self, parser: CommandParser) -> None:
        """--json, --exact."""
        parser.add_argument("--json", action="store_true", help="print one JSON document")
        parser.add_argument(
            "--exact", action="store_true", help="count items with a scan instead of the estimate"
        )
        parser.add_argument(
            "--minutes", type=int, default=60, help="the window the metrics cover (default 60)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Gather each part; a part that fails shows its error, the others still show."""
        settings = PipelineSettings.from_env()
        endpoints = {
            k: v for k, v in sorted(os.environ.items()) if k.startswith("AWS_ENDPOINT_URL")
        }
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "(unset)"
        report: dict[str, Any] = {
            "region": region,
            "endpoints": endpoints or {"all": "AWS (no local endpoint set)"},
            "resources": {
                "orders_table": settings.orders_table,
                "inventory_table": settings.inventory_table,
                "orders_queue_url": settings.orders_queue_url,
                "dlq_url": settings.dlq_url,
                "state_machine_arn": settings.state_machine_arn,
            },
        }
        exact = options["exact"]

        def attempt(fn: Callable[[], Any]) -> Any:
            try:
                return fn()
            except Exception as exc:  # a status page shows every failure instead of stopping
                return {"error": f"{type(exc).__name__}: {exc}"}

        def tables() -> dict[str, Any]:
            store = wiring.dynamo_store(settings)
            return {
                "orders": attempt(lambda: store.table_item_count(store.orders_table, exact=exact)),
                "inventory": attempt(
                    lambda: store.table_item_count(store.inventory_table, exact=exact)
                ),
            }

        report["tables"] = attempt(tables)
        report["queues"] = {
            "orders": attempt(lambda: wiring.orders_queue(settings).depth()),
            "dead_letter": attempt(lambda: wiring.dead_letter_queue(settings).depth()),
            "stream_failures": attempt(lambda: wiring.stream_failure_queue(settings).depth()),
        }
        minutes = options["minutes"]
        report["alarms"] = attempt(lambda: alarm_states(aws.client("cloudwatch")))
        report["metrics"] = attempt(
            lambda: metrics_summary(aws.client("cloudwatch"), minutes=minutes)
        )
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
            return
        self._print(report)

    def _print(self, report: dict[str, Any]) -> None:
        out = self.stdout.write
        out(self.style.MIGRATE_HEADING("Endpoints"))
        out(f"  region: {report['region']}")
        for name, url in report["endpoints"].items():
            out(f"  {name}: {url}")
        out(self.style.MIGRATE_HEADING("Resources"))
        for name, value in report["resources"].items():
            out(f"  {name}: {value or '(not set)'}")
        out(self.style.MIGRATE_HEADING("Tables"))
        tables = report["tables"]
        if "error" in tables:
            out(self.style.ERROR(f"  {tables['error']}"))
        else:
            for name, info in tables.items():
                if "error" in info:
                    out(self.style.ERROR(f"  {name}: {info['error']}"))
                else:
                    approx = "" if info["exact"] else " (approximate)"
                    out(f"  {name}: {info['items']} items{approx}")
        out(self.style.MIGRATE_HEADING("Queues"))
        for name, depth in report["queues"].items():
            if "error" in depth:
                out(self.style.ERROR(f"  {name}: {depth['error']}"))
                continue
            line = (
                f"  {name}: {depth['visible']} waiting, {depth['in_flight']} in flight, "
                f"{depth['delayed']} delayed"
            )
            if name == "dead_letter" and depth["visible"]:
                line = self.style.WARNING(line + "  <- replay or inspect these")
            out(line)
        out(self.style.MIGRATE_HEADING("Alarms"))
        alarms = report["alarms"]
        if isinstance(alarms, dict):
            out(self.style.ERROR(f"  {alarms['error']}"))
        else:
            for alarm in alarms:
                style = self.style.ERROR if alarm["state"] == "ALARM" else (lambda text: text)
                out(style(f"  {alarm['state']:<17} {alarm['name']}: {alarm['reason']}"))
        metrics = report["metrics"]
        out(self.style.MIGRATE_HEADING(f"Metrics (last {metrics.get('minutes', '?')} minutes)"))
        if "error" in metrics:
            out(self.style.ERROR(f"  {metrics['error']}"))
            return
        for name, value in metrics["counts"].items():
            out(f"  {name}: {value:g}")
        for name, ratio in metrics["ratios"].items():
            shown = "no data" if ratio is None else f"{ratio:.1%}"
            out(f"  {name.replace('_', ' ')} rate: {shown}")
