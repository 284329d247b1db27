"""Garbage-collector settings for the engine's processes (``worker``, ``backtest``).

The engine keeps many long-lived objects (per key: its state, detector, lifecycle and open
buckets) and allocates a few short-lived ones per event (the decoded dict, the validated event).
With CPython's default thresholds (700, 10, 10) a young collection runs every 700 allocations and
an older one every 7,000, each walking live key states: on the 100k-key backtest that is about a
quarter of the run (``spendsentry bench``). The per-event objects form no reference cycles, so
collections are made rarer, and what exists once start-up is done (modules, the price catalogue)
is frozen out of them. Cycles are still collected, later.
"""

from __future__ import annotations

import gc

#: allocations between young collections, and collections between older ones
THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Freeze what start-up allocated and make collections rarer (call once start-up is done)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
