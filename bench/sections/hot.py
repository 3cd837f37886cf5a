"""Hot item: 400 orders for one item with stock 100 beside 400 orders over 400 items."""

from __future__ import annotations

from typing import Any

from bench.context import Context
from bench.pipeline_throughput import hot
from pipeline import wiring


def run(context: Context) -> dict[str, Any]:
    """Exactly 100 must ship; the time against the spread run's (120 orders with --quick)."""
    context.use(context.runtime())
    return hot(wiring.dynamo_store(), 120 if context.quick else 400)
