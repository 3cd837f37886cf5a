"""The benchmark report says how busy and how contended the machine was during each section."""

from __future__ import annotations

from bench.__main__ import markdown
from bench.machine import conditions, cpu_ticks


def test_conditions_are_shares_of_all_the_cores_time_between_two_readings() -> None:
    # Given two readings 1,000 ticks apart: 600 busy, 300 idle, 100 stolen by the host
    before = {"busy": 5_000, "idle": 9_000, "steal": 200, "total": 14_200}
    after = {"busy": 5_600, "idle": 9_300, "steal": 300, "total": 15_200}
    # Then the section ran on cores 60% busy, 10% of their time taken by other guests
    assert conditions(before, after) == {"busy_pct": 60.0, "steal_pct": 10.0}


def test_this_machines_ticks_only_grow() -> None:
    first, second = cpu_ticks(), cpu_ticks()
    assert second["total"] >= first["total"] > 0
    assert first["busy"] + first["idle"] + first["steal"] <= first["total"]


def test_the_report_gives_each_sections_conditions_beside_its_figures() -> None:
    doc = {
        "started": "2026-12-07T01:00:00+00:00",
        "command": "python -m bench burst",
        "quick": False,
        "seconds": 60.0,
        "machine": {"cores": 2, "calibration_ms_at_start": 70.0},
        "results": {"burst": {"orders_per_s": 42.0}},
        "conditions": {"burst": {"busy_pct": 97.5, "steal_pct": 6.2, "calibration_ms_after": 81.0}},
        "errors": {},
    }
    report = markdown(doc, [])
    section = report.split("## burst", 1)[1]
    assert "97.5% busy" in section
    assert "6.2% of their time for other guests" in section
    assert "81.0 ms (at the start of the run: 70.0 ms)" in section
