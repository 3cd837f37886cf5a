"""Burst: orders written straight to the Orders table, drained by the whole local pipeline."""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.pipeline_throughput import burst
from pipeline import wiring


def run(context: Context) -> dict[str, Any]:
    """300 orders (60 with --quick) through reservation, payment and shipping."""
    context.use(context.runtime())
    return burst(wiring.dynamo_store(), 60 if context.quick else 300)
