"""Burst: orders written straight to the Orders table, drained by the whole local pipeline."""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.pipeline_throughput import burst
from pipeline import wiring

# The cold burst's figures, kept beside the warm ones under these names.
COLD_KEYS = ("orders_per_s", "reserve_p95_s", "total_p95_s", "seconds")


def run(context: Context) -> dict[str, Any]:
    """300 orders (60 with --quick) through reservation, payment and shipping, twice.

    The runtime starts just before: the first burst pays for its function workers starting
    (about half a second of CPU each, up to ten for reservation's lanes, four for the other
    functions) and for DynamoDB Local's JIT compiling, both once per runtime. Its figures are
    kept as `cold_*`. The second burst meets what a system in use has, warm workers and
    compiled code, and is the one measured against the target, as the intake section warms its
    endpoints before timing.
    """
    context.use(context.runtime())
    store = wiring.dynamo_store()
    orders = 60 if context.quick else 300
    cold = burst(store, orders)
    warm = burst(store, orders)
    return {**warm, **{f"cold_{key}": cold[key] for key in COLD_KEYS}}
