"""The FinOps figures of a period, pure: what ``spendsentry report`` prints from files and what the
worker's ``GET /v1/spend?group_by=`` serves from its engines (:func:`allocated_spend` is shared).

* spend by group with totals, unit costs (per 1k tokens, per request), untagged share and
  shared-cost allocation (:func:`streams.core.attribution.segmented_view` with the allocation rules;
  ``gpu_seconds`` rules weighted from the GPU ledgers);
* GPU spend per key with its cost per GPU-hour, idle waste in dollars (cost x (1 - utilization))
  and the purchase-option comparison per fleet (:func:`streams.core.gpu_ledger.gpu_view`);
* top movers: each group's spend against the previous period of the same length.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from schemas.alert import rfc3339
from schemas.gpu import GpuUsageEvent
from schemas.usage import UsageEvent
from streams.core.attribution import AllocationRule, _segment_getter, segmented_view
from streams.core.gpu_costs import GpuPrices
from streams.core.gpu_ledger import GpuLedger, gpu_view, gpu_weights

__all__ = ["allocated_spend", "segment_rows", "spend_report", "MOVERS"]

#: groups listed as top movers
MOVERS = 10


def allocated_spend(rows: Iterable[tuple[tuple, Sequence[float]]], dims: Sequence[str], group_by: Sequence[str], *,
                    required: Sequence[str], rules: Sequence[AllocationRule], ledgers: Iterable[GpuLedger],
                    since: float) -> dict[str, Any]:
    """Segment rows summed by ``group_by`` after the allocation rules (``gpu_seconds`` rules take
    their weights from ``ledgers`` since ``since``): rows, total, untagged share, allocation."""
    weights = None
    if any(rule.split_by == "gpu_seconds" for rule in rules):
        weights = gpu_weights(ledgers, rules, since)
    return segmented_view(rows, dims, group_by, required=required, rules=rules, gpu_weights=weights)


def segment_rows(events: Iterable[tuple[UsageEvent, float]], dims: Sequence[str]) -> dict[tuple, list[float]]:
    """``(event, cost)`` pairs folded into segment rows ``[cost, tokens, requests, events]`` by ``dims``
    (the rows the engine's :class:`~streams.core.attribution.SegmentStore` keeps per bucket)."""
    key_of = _segment_getter(tuple(dims))
    rows: dict[tuple, list[float]] = {}
    for event, cost in events:
        row = rows.setdefault(key_of(event), [0.0, 0, 0, 0])
        row[0] += cost
        row[1] += event.input_tokens + event.output_tokens
        row[2] += event.request_count
        row[3] += 1
    return rows


def _movers(current: list[dict[str, Any]], previous: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    def label(row: dict[str, Any]) -> tuple:
        return tuple(row["key"].items())

    before = {label(r): r["cost_usd"] for r in previous}
    now = {label(r): r["cost_usd"] for r in current}
    out = []
    for key in set(before) | set(now):
        old, new = before.get(key, 0.0), now.get(key, 0.0)
        out.append({"key": dict(key), "previous_usd": round(old, 6), "cost_usd": round(new, 6),
                    "change_usd": round(new - old, 6), "change_ratio": round((new - old) / old, 6) if old else None})
    out.sort(key=lambda m: (-abs(m["change_usd"]), str(m["key"])))
    return [m for m in out if m["change_usd"]][:n]


def spend_report(events: Iterable[tuple[UsageEvent, float]], gpu_events: Iterable[GpuUsageEvent], *,
                 dims: Sequence[str], group_by: Sequence[str], start: float, end: float,
                 required: Sequence[str] = (), rules: Sequence[AllocationRule] = (),
                 gpu_prices: Mapping[str, GpuPrices] | None = None, movers: int = MOVERS) -> dict[str, Any]:
    """The report of ``[start, end)``; ``events`` are ``(event, cost)`` pairs (unpriced: cost 0),
    the previous period ``[start - (end - start), start)`` is read from the same inputs."""
    length = end - start
    before = start - length
    current: list[tuple[UsageEvent, float]] = []
    previous: list[tuple[UsageEvent, float]] = []
    for event, cost in events:
        if start <= event.timestamp < end:
            current.append((event, cost))
        elif before <= event.timestamp < start:
            previous.append((event, cost))
    ledger = GpuLedger()
    for gpu_event in gpu_events:
        if start <= gpu_event.timestamp < end:
            ledger.observe(gpu_event)
    spend = allocated_spend(segment_rows(current, dims).items(), dims, group_by, required=required, rules=rules,
                            ledgers=[ledger], since=start)
    prior = segmented_view(segment_rows(previous, dims).items(), dims, group_by)
    gpu = gpu_view([ledger], window_s=length, prices=gpu_prices) if ledger.events else None
    if gpu is not None:
        for row in gpu["keys"]:
            util = row["utilization"] or 0.0
            row["idle_usd"] = round(row["cost_usd"] * (1.0 - util), 6)
        gpu["idle_usd"] = round(sum(row["idle_usd"] for row in gpu["keys"]), 6)
        gpu["cost_usd"] = round(sum(row["cost_usd"] for row in gpu["keys"]), 6)
        gpu["gpu_hours"] = round(sum(row["gpu_hours"] for row in gpu["keys"]), 6)
        gpu["cost_per_gpu_hour"] = round(gpu["cost_usd"] / gpu["gpu_hours"], 6) if gpu["gpu_hours"] else None
    return {"from": rfc3339(start), "to": rfc3339(end), "group_by": list(group_by), **spend,
            "previous": {"from": rfc3339(before), "to": rfc3339(start), "total": prior["total"]},
            "movers": _movers(spend["rows"], prior["rows"], movers), "gpu": gpu}
