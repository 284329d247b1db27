"""Segmented spend on the API (``GET /v1/spend?group_by=...&window=...``) and attribution metrics.

Sums the per-bucket segment rows every engine of this worker keeps
(:class:`streams.core.attribution.SegmentStore`) over the window, applies the allocation rules
(``SPENDSENTRY_ALLOCATION_FILE``; ``gpu_seconds`` rules take their weights from the GPU ledgers)
and groups by the requested dimensions. The window ends at the newest event time this worker
has seen and covers whole buckets.
"""

from __future__ import annotations

from typing import Any, Mapping

from schemas.alert import rfc3339
from streams.core.attribution import AllocationRule, load_allocation_rules, parse_group_by, parse_window
from streams.core.report import allocated_spend

from streams.api.state import ApiState

QUERY = ("group_by", "window")
_rules_cache: dict[Any, list[AllocationRule]] = {}


def allocation_rules(runtime: ApiState) -> list[AllocationRule]:
    path = runtime.settings.allocation_file
    if path is None:
        return []
    if path not in _rules_cache:
        config = runtime.settings.engine_config().attribution
        _rules_cache[path] = load_allocation_rules(path, config.dims if config else ())
    return _rules_cache[path]


def wants_segments(query: Mapping[str, str]) -> bool:
    return any(name in query for name in QUERY)


def spend_segments(runtime: ApiState, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    settings = runtime.settings
    config = settings.engine_config().attribution
    if config is None:
        return 400, {"error": "segmented spend is off (no attribution config)"}
    unknown = set(query) - set(QUERY)
    if unknown:
        return 400, {"error": f"unknown query parameter(s): {', '.join(sorted(unknown))} (use group_by, window)"}
    try:
        group_by = parse_group_by(query.get("group_by"), config.dims)
        window_s = parse_window(query.get("window"), bucket_seconds=settings.bucket_seconds,
                                horizon_s=config.horizon_s)
    except ValueError as exc:
        return 400, {"error": str(exc), "field": str(exc).split(":", 1)[0]}
    engines = [e for e in runtime.engines.engines.values() if e.segments is not None]
    to = max((e.max_ts for e in engines), default=0.0)
    size = settings.bucket_seconds
    end = to - to % size + size  # the bucket holding ``to`` is included
    since = end - window_s
    rows = [item for engine in engines for item in engine.segments.rows_since(since)]  # type: ignore[union-attr]
    gpu = runtime.gpu
    view = allocated_spend(rows, config.dims, group_by, required=config.policy.required,
                           rules=allocation_rules(runtime), ledgers=gpu.ledgers.values() if gpu is not None else (),
                           since=since)
    return 200, {"group_by": list(group_by), "window": query.get("window") or "1h", "window_seconds": window_s,
                 "from": rfc3339(since) if to else None, "to": rfc3339(end) if to else None, **view}


def untagged_shares(runtime: ApiState) -> list[tuple[dict[str, str], float]]:
    """Untagged share of spend per tag-policy key over the policy window (for /metrics)."""
    out = []
    for engine in runtime.engines.engines.values():
        store = getattr(engine, "segments", None)
        if store is None or not store.config.policy.required:
            continue
        until = engine.closed_until + store.size
        for key, (total, untagged) in store.untagged_by_key(until - store.config.policy.window_s, until).items():
            labels = dict(zip(store.config.alert_key, key))
            out.append(({"key": ",".join(f"{k}={v}" for k, v in labels.items())}, round(untagged / total, 6) if total else 0.0))
    return sorted(out, key=lambda item: -item[1])[:50]
