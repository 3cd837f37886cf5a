"""The benchmark report says how busy and how contended the machine was during each section,
and a burst that strands orders says where they stopped."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from bench import pipeline_throughput
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


def test_a_burst_that_strands_orders_says_where_they_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given three orders of which one became final, one stopped PENDING and one RESERVED
    orders = {
        i: SimpleNamespace(order_id=i, status=status)
        for i, status in (("a", "SHIPPED"), ("b", "PENDING"), ("c", "RESERVED"))
    }
    store = SimpleNamespace(order_get=orders.__getitem__)
    monkeypatch.setattr(pipeline_throughput, "finals_until", lambda *_: {"a": orders["a"]})
    monkeypatch.setattr(pipeline_throughput, "_backbone_state", lambda i: f"runs of {i}")
    # When the burst gives up waiting
    with pytest.raises(SystemExit) as stopped:
        pipeline_throughput._wait_final(store, ["a", "b", "c"], timeout=1)
    # Then it says how many, where they stopped, the first one and its backbone state
    assert str(stopped.value) == (
        "2 order(s) not final after 1 s: {'PENDING': 1, 'RESERVED': 1}; first: b; runs of b"
    )
