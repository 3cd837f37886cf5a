"""`python -m bench [--quick] [SECTION...]`: every benchmark in one run, with a report.

Sections (bench/sections/): intake, burst, hot, steady, replay, portal; all by default, in
that order, side by side in one run. Writes bench/results/latest.json, latest.md and PNG
charts (latency over time for the steady run; throughput per stage of the burst), with the
machine's description. `--quick` runs each section short, for development; its figures are
not the ones to quote. Needs Java (DynamoDB Local) and Redis on 127.0.0.1:6379.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import png
from bench.context import Context
from bench.machine import calibration_ms, conditions, cpu_ticks, describe

SECTIONS = ("intake", "burst", "hot", "steady", "replay", "portal")
RESULTS = Path(__file__).resolve().parent / "results"

# The JSON keys the issue asks for: (section, key, target, whether higher is better).
TARGETS: tuple[tuple[str, str, float | bool, bool], ...] = (
    ("intake", "ratio_to_minimal", 0.9, True),
    ("intake", "ratio_to_raw_put", 0.0, True),
    ("intake", "p99_ms", 100.0, False),
    ("steady", "offered_per_s", 50.0, True),
    ("steady", "final_share", 0.95, True),
    ("steady", "p95_s", 2.0, False),
    ("steady", "api_p99_ms", 500.0, False),
    ("burst", "orders_per_s", 50.0, True),
    ("burst", "reserve_p95_s", 2.0, False),
    ("hot", "exact", True, True),
    ("hot", "time_ratio", 1.5, False),
    ("portal", "orders_p95_ms", 300.0, False),
    ("portal", "inventory_p95_ms", 300.0, False),
    ("portal", "dashboard_p95_ms", 300.0, False),
    ("replay", "ratio_to_raw", 0.5, True),
)


def _verdict(value: Any, target: float | bool, higher: bool) -> str:
    if value is None:
        return "no data"
    if isinstance(target, bool):
        return "met" if value is target else "NOT met"
    if target == 0.0:
        return "(reported)"
    met = value >= target if higher else value <= target
    return "met" if met else "NOT met"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def charts(results: dict[str, Any], out: Path) -> list[tuple[str, str]]:
    """The PNG charts; (file name, caption) each."""
    made = []
    steady = results.get("steady") or {}
    if steady.get("api_latency_series"):
        top_x, top_y = png.scatter(steady["api_latency_series"], out / "steady_latency.png")
        made.append(
            (
                "steady_latency.png",
                f"Steady run: API latency of each request over time (x: 0-{top_x:.0f} s of the "
                f"run, y: 0-{top_y:.0f} ms)",
            )
        )
    burst = results.get("burst") or {}
    if burst.get("stage_per_s"):
        stages = burst["stage_per_s"]
        top = png.bars([rate or 0.0 for rate in stages.values()], out / "burst_stages.png")
        made.append(
            (
                "burst_stages.png",
                "Burst: orders per second through each stage, left to right "
                f"{', '.join(stages)} (y: 0-{top:.1f} orders/s)",
            )
        )
    return made


def markdown(doc: dict[str, Any], made: list[tuple[str, str]]) -> str:
    """The report: targets, each section's figures, the machine, the charts."""
    lines = [
        "# Benchmark report",
        "",
        f"Run {doc['started']} ({'--quick: short runs' if doc['quick'] else 'full run'}), "
        f"`{doc['command']}`, {doc['seconds']:.0f} s.",
        "",
        "## Targets (issue 13)",
        "",
        "| key | measured | target | |",
        "|---|---|---|---|",
    ]
    for section, key, target, higher in TARGETS:
        if section not in doc["results"]:
            continue
        value = (doc["results"][section] or {}).get(key)
        bound = "" if target == 0.0 else (">= " if higher else "<= ") + _fmt(target)
        if isinstance(target, bool):
            bound = str(target)
        verdict = _verdict(value, target, higher)
        lines.append(f"| `{section}.{key}` | {_fmt(value)} | {bound} | {verdict} |")
    for section, figures in doc["results"].items():
        lines += ["", f"## {section}", ""]
        if section in doc.get("conditions", {}):
            seen = doc["conditions"][section]
            lines += [
                f"While it ran the cores were {seen['busy_pct']}% busy and the host took "
                f"{seen['steal_pct']}% of their time for other guests; the calibration after it "
                f"took {seen['calibration_ms_after']} ms (at the start of the run: "
                f"{doc['machine'].get('calibration_ms_at_start')} ms).",
                "",
            ]
        if section in doc["errors"]:
            lines += ["Failed:", "", "```", doc["errors"][section], "```"]
            continue
        for key, value in figures.items():
            if key.endswith("_series"):
                continue
            lines.append(
                f"- `{key}`: {json.dumps(value) if isinstance(value, dict) else _fmt(value)}"
            )
    lines += ["", "## Machine", ""]
    lines += [f"- {key}: {value}" for key, value in doc["machine"].items()]
    lines += ["", "## Charts", ""]
    lines += [f"![{caption}]({name})\n\n{caption}\n" for name, caption in made]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the sections asked for, write the report, print where it is."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="short runs, for development")
    parser.add_argument("--out", type=Path, default=RESULTS, help="report directory")
    parser.add_argument(
        "--max-concurrency",
        type=int,
        metavar="N",
        help="the local runtime's cap on workers, pollers and lanes (default: its own)",
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    chosen = args.sections or list(SECTIONS)
    args.out.mkdir(parents=True, exist_ok=True)

    doc: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick,
        "machine": describe(),
        "results": {},
        "conditions": {},
        "errors": {},
    }
    begun = time.monotonic()
    context = Context(quick=args.quick, max_concurrency=args.max_concurrency)
    try:
        for section in chosen:
            print(f"bench: {section} ...", flush=True)
            module = importlib.import_module(f"bench.sections.{section}")
            before = cpu_ticks()
            try:
                doc["results"][section] = module.run(context)
            except (Exception, SystemExit):  # one section failing still reports the others
                doc["results"][section] = {}
                doc["errors"][section] = traceback.format_exc()
                print(doc["errors"][section], file=sys.stderr)
            doc["conditions"][section] = {
                **conditions(before, cpu_ticks()),
                "calibration_ms_after": calibration_ms(),
            }
            # Written after every section: a run stopped part-way keeps what it measured.
            write(doc, args.out, time.monotonic() - begun)
    finally:
        context.close()
    print((args.out / "latest.md").read_text())
    print(f"bench: wrote {args.out / 'latest.json'} and latest.md")
    return 1 if doc["errors"] else 0


def write(doc: dict[str, Any], out: Path, seconds: float) -> None:
    """The JSON, the Markdown and the charts of what has been measured so far."""
    doc["seconds"] = seconds
    # The issue's keys, flat ("intake.ratio_to_minimal"), beside the sections' full figures.
    doc["summary"] = {
        f"{section}.{key}": doc["results"][section].get(key)
        for section, key, _, _ in (*TARGETS, ("intake", "cpu_ms_per_request", 0.0, False))
        if section in doc["results"]
    }
    made = charts(doc["results"], out)
    (out / "latest.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    (out / "latest.md").write_text(markdown(doc, made))


if __name__ == "__main__":
    sys.exit(main())
