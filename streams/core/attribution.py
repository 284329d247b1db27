"""Attribution: per-bucket segment aggregates, the tag policy, allocation rules, segmented views.

Pure (no Kafka, no clock). The engine feeds every accepted usage event to
:meth:`SegmentStore.add`: per bucket start, one small dict keyed by the tuple of the attribution
dimensions (``provider, model, operation, service, team, environment, pipeline_stage,
experiment`` plus any ``tags.<name>`` the tag policy requires) whose value is
``[cost, tokens, requests, events]``. Buckets are kept for ``horizon_s`` (24 h); a bucket holds at
most ``max_segments`` rows, later new segments fold into an *other* row (values replaced by
``other``, an empty value stays empty so untagged spend is still seen). ``GET /v1/spend?group_by=
team,pipeline_stage&window=1h`` sums these rows (:func:`segmented_view`).

Tag policy: an event is *untagged* when any required dimension is empty. When a bucket closes,
per key of the partition-key family (e.g. ``model=gpt-4o``) the untagged share of the spend over
the last ``window_s`` is compared with ``max_share``; above it (and with at least ``min_usd`` of
spend in the window) an ``untagged_spend`` alert fires, and resolves once the share is back under.

Allocation rules split a shared cost (rows matching ``match`` whose ``across`` dimension is empty)
across the ``across`` values in proportion to their tokens on the same resource (``split_by:
tokens``, rows matching ``basis`` or ``match`` with ``across`` set) or their GPU-seconds
(``split_by: gpu_seconds``, from the GPU usage stream); see :func:`apply_allocation`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from schemas.alert import Alert, alert_id_for, rfc3339
from schemas.errors import ConfigError
from schemas.usage import ATTRIBUTION_FIELDS

__all__ = ["UNTAGGED_ALERT", "SEGMENT_DIMS", "TagPolicy", "AttributionConfig", "SegmentStore", "AllocationRule",
           "load_allocation_rules", "parse_allocation_rules", "apply_allocation", "parse_window", "parse_group_by",
           "segmented_view", "unit_metrics"]

UNTAGGED_ALERT = "untagged_spend"
SEGMENT_DIMS: tuple[str, ...] = ("provider", "model") + ATTRIBUTION_FIELDS
OTHER = "other"
#: row layout: cost, tokens (input + output), requests, events
COST, TOKENS, REQUESTS, EVENTS = range(4)


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """``SPENDSENTRY_REQUIRED_TAGS`` and friends; no required dimension = no policy."""

    required: tuple[str, ...] = ()
    max_share: float = 0.1
    window_s: float = 3600.0
    min_usd: float = 1.0


@dataclass(frozen=True, slots=True)
class AttributionConfig:
    policy: TagPolicy = field(default_factory=TagPolicy)
    #: dimensions of the alert key of the tag policy (the partition-key family: each such key
    #: lives in one partition, so its share is exact there)
    alert_key: tuple[str, ...] = ("model",)
    horizon_s: float = 86_400.0
    max_segments: int = 1000

    @property
    def dims(self) -> tuple[str, ...]:
        extra = [d for d in (*self.alert_key, *self.policy.required) if d not in SEGMENT_DIMS]
        return SEGMENT_DIMS + tuple(dict.fromkeys(extra))


def _segment_getter(dims: tuple[str, ...]) -> Callable[[Any], tuple]:
    """The segment tuple of an event (a missing value is None): a C-level attrgetter unless tags
    are involved. Readers treat None and "" alike (empty)."""
    if not any(d.startswith("tags.") for d in dims):
        return attrgetter(*dims)
    return lambda event: tuple(event.dimension(d) for d in dims)


class SegmentStore:
    """Per-bucket segment rows of one engine (one partition); see the module docstring."""

    def __init__(self, config: AttributionConfig, bucket_seconds: float) -> None:
        self.config = config
        self.size = bucket_seconds
        self.dims = config.dims
        self.buckets: dict[float, dict[tuple, list]] = {}
        self._key_of = _segment_getter(self.dims)
        self._dirty: set[float] = set()
        self._floor = 0.0
        policy = config.policy
        self._required = tuple(self.dims.index(d) for d in policy.required)
        self._alert_idx = tuple(self.dims.index(d) for d in config.alert_key)
        #: alert key tuple -> (alert_id, window_start) of the open untagged-spend incident
        self.incidents: dict[tuple, tuple[str, float]] = {}
        self._alerts: list[Alert] = []
        self.state_dirty = False

    # -- per event (hot path: one tuple, two dict lookups, four adds) ------------------
    def add(self, event: Any, cost: float, start: float) -> None:
        rows = self.buckets.get(start)
        if rows is None:
            if start < self._floor:
                return  # older than the horizon
            rows = self.buckets[start] = {}
        key = self._key_of(event)
        row = rows.get(key)
        if row is None:
            if len(rows) >= self.config.max_segments:
                key = tuple(OTHER if v else None for v in key)
                row = rows.get(key)
            if row is None:
                row = rows[key] = [0.0, 0, 0, 0]
        row[0] += cost
        row[1] += event.input_tokens + event.output_tokens
        row[2] += event.request_count
        row[3] += 1
        self._dirty.add(start)

    # -- bucket close: horizon and tag policy -------------------------------------------
    def close(self, limit: float) -> None:
        """Buckets before ``limit`` are closed: prune past the horizon, judge the tag policy."""
        floor = limit - self.config.horizon_s
        if floor > self._floor:
            self._floor = floor
            for start in [s for s in self.buckets if s < floor]:
                del self.buckets[start]
                self._dirty.add(start)
        if self._required:
            self._judge_policy(limit)

    def untagged_by_key(self, since: float, until: float) -> dict[tuple, list[float]]:
        """Per alert key: ``[cost, untagged cost]`` over buckets in ``[since, until)``."""
        required, alert_idx = self._required, self._alert_idx
        out: dict[tuple, list[float]] = {}
        for start, rows in self.buckets.items():
            if not since <= start < until:
                continue
            for key, row in rows.items():
                sums = out.get(k := tuple(key[i] for i in alert_idx))
                if sums is None:
                    sums = out[k] = [0.0, 0.0]
                sums[0] += row[COST]
                if any(not key[i] for i in required):
                    sums[1] += row[COST]
        return out

    def _judge_policy(self, limit: float) -> None:
        policy = self.config.policy
        since = limit - policy.window_s
        shares = self.untagged_by_key(since, limit)
        for key, (total, untagged) in sorted(shares.items()):
            share = untagged / total if total > 0 else 0.0
            labels = dict(zip(self.config.alert_key, key))
            incident = self.incidents.get(key)
            breach = share > policy.max_share and total >= policy.min_usd
            if breach and incident is None:
                alert_id = alert_id_for(UNTAGGED_ALERT, labels, since)
                self.incidents[key] = (alert_id, since)
                self._alerts.append(self._alert(alert_id, "firing", labels, since, limit, total, untagged, share))
            elif not breach and incident is not None and (share <= policy.max_share or total == 0):
                del self.incidents[key]
                self._alerts.append(self._alert(incident[0], "resolved", labels, incident[1], limit, total,
                                                untagged, share))
            else:
                continue
            self.state_dirty = True
        for key in [k for k in self.incidents if k not in shares]:  # no spend at all in the window
            alert_id, first = self.incidents.pop(key)
            labels = dict(zip(self.config.alert_key, key))
            self._alerts.append(self._alert(alert_id, "resolved", labels, first, limit, 0.0, 0.0, 0.0))
            self.state_dirty = True

    def _alert(self, alert_id: str, status: str, key: dict[str, str], start: float, end: float, total: float,
               untagged: float, share: float) -> Alert:
        policy = self.config.policy
        per_hour = untagged * 3600.0 / policy.window_s
        severity = "critical" if per_hour >= 100 else "warning" if per_hour >= 10 else "info"
        label = ", ".join(f"{k}={v}" for k, v in key.items())
        missing = ", ".join(policy.required)
        if status == "firing":
            summary = (f"{label}: {share:.0%} of spend untagged (missing {missing}) over the last "
                       f"{policy.window_s / 60:.0f} min: ${untagged:,.2f} of ${total:,.2f} (max {policy.max_share:.0%})")
        else:
            summary = f"resolved: {label}: untagged share {share:.0%} (max {policy.max_share:.0%})"
        return Alert(
            alert_id=alert_id, type=UNTAGGED_ALERT, status=status, severity=severity,  # type: ignore[arg-type]
            key=key, window_start=end - policy.window_s, window_end=end, triggered_at=end,
            observed=round(untagged, 6), expected=round(total * policy.max_share, 6), score=round(share, 4),
            summary=summary,
            details={"detector": "tag_policy", "untagged_usd": round(untagged, 6), "total_usd": round(total, 6),
                     "untagged_share": round(share, 6), "max_share": policy.max_share,
                     "required": list(policy.required), "incident_start": rfc3339(start)},
        )

    def drain_alerts(self) -> list[Alert]:
        alerts, self._alerts = self._alerts, []
        return alerts

    # -- persistence: one blob per bucket start, written when it changed -------------------
    def drain_dirty(self) -> list[tuple[float, dict[tuple, list] | None]]:
        """``(start, rows)`` of buckets changed since the last call; ``rows`` None = pruned."""
        out = [(start, self.buckets.get(start)) for start in self._dirty]
        self._dirty.clear()
        return out

    def state(self) -> dict[str, Any]:
        self.state_dirty = False
        return {"floor": self._floor, "incidents": dict(self.incidents)}

    def restore(self, state: dict[str, Any] | None, buckets: Iterable[tuple[float, dict[tuple, list]]]) -> None:
        if state:
            self._floor = state["floor"]
            self.incidents = dict(state["incidents"])
        for start, rows in buckets:
            if rows is not None and start >= self._floor:
                self.buckets[start] = rows

    # -- views ---------------------------------------------------------------------------
    def rows_since(self, since: float) -> Iterable[tuple[tuple, list]]:
        for start, rows in self.buckets.items():
            if start >= since:
                yield from rows.items()


# -- query parameters -----------------------------------------------------------------------
_WINDOW = re.compile(r"^([1-9][0-9]{0,6})(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_window(text: str | None, *, bucket_seconds: float, horizon_s: float, default: str = "1h") -> float:
    """``5m``, ``1h``, ``24h`` -> seconds; ``ValueError`` with a precise reason otherwise."""
    text = default if text is None else text
    match = _WINDOW.match(text)
    if match is None:
        raise ValueError(f"window: must be a positive integer followed by s, m, h or d, e.g. 5m, 1h, 24h (got {text!r})")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < bucket_seconds:
        raise ValueError(f"window: must be at least one bucket ({bucket_seconds:g}s) (got {text!r})")
    if seconds > horizon_s:
        raise ValueError(f"window: at most {horizon_s / 3600:g}h of segments are kept (got {text!r})")
    return float(seconds)


def parse_group_by(text: str | None, dims: Sequence[str]) -> tuple[str, ...]:
    """``team,pipeline_stage`` -> dims; each must be a segment dimension, no repeats."""
    if text is None or text == "":
        return ()
    out = tuple(part.strip() for part in text.split(","))
    for dim in out:
        if dim not in dims:
            raise ValueError(f"group_by: unknown dimension {dim!r} (use any of {', '.join(dims)})")
    if len(set(out)) != len(out):
        raise ValueError(f"group_by: repeats a dimension ({text!r})")
    return out


# -- allocation rules ----------------------------------------------------------------------
SPLIT_BY = ("tokens", "gpu_seconds")


@dataclass(frozen=True, slots=True)
class AllocationRule:
    name: str
    match: tuple[tuple[str, str], ...]
    split_by: str
    across: str
    #: which usage (tokens) or GPU usage (gpu_seconds) the split is proportional to; default ``match``
    basis: tuple[tuple[str, str], ...] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "match": dict(self.match), "split_by": self.split_by, "across": self.across,
                **({"basis": dict(self.basis)} if self.basis is not None else {})}


def _pairs(raw: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, dict) or not raw or not all(isinstance(k, str) and isinstance(v, str) and v
                                                       for k, v in raw.items()):
        raise ConfigError(f"{where}: must be a non-empty object of dimension -> value or glob")
    return tuple(sorted(raw.items()))


def parse_allocation_rules(data: Any, dims: Sequence[str] = SEGMENT_DIMS, where: str = "allocation rules") -> list[AllocationRule]:
    """Validate ``[{"name", "match", "split_by", "across", "basis"?}]``; ConfigError naming the rule."""
    if not isinstance(data, list):
        raise ConfigError(f"{where}: must be a JSON array of rules")
    rules, names = [], set()
    for i, raw in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(raw, dict):
            raise ConfigError(f"{at}: must be an object")
        unknown = set(raw) - {"name", "match", "split_by", "across", "basis"}
        if unknown:
            raise ConfigError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
        name = raw.get("name")
        if not isinstance(name, str) or not name or name in names:
            raise ConfigError(f"{at}.name: must be a unique non-empty string (got {name!r})")
        names.add(name)
        match = _pairs(raw.get("match"), f"{at}.match")
        for dim, _ in match:
            if dim not in dims:
                raise ConfigError(f"{at}.match: unknown dimension {dim!r}")
        if raw.get("split_by") not in SPLIT_BY:
            raise ConfigError(f"{at}.split_by: must be one of {', '.join(SPLIT_BY)} (got {raw.get('split_by')!r})")
        across = raw.get("across")
        if across not in dims:
            raise ConfigError(f"{at}.across: must be an attribution dimension (got {across!r})")
        if across in dict(match):
            raise ConfigError(f"{at}.across: {across!r} cannot also be matched")
        basis = _pairs(raw["basis"], f"{at}.basis") if raw.get("basis") is not None else None
        rules.append(AllocationRule(name, match, raw["split_by"], across, basis))
    return rules


def load_allocation_rules(path: str | Path, dims: Sequence[str] = SEGMENT_DIMS) -> list[AllocationRule]:
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"SPENDSENTRY_ALLOCATION_FILE {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"SPENDSENTRY_ALLOCATION_FILE {path}: not JSON: {exc}") from None
    return parse_allocation_rules(data, dims, f"SPENDSENTRY_ALLOCATION_FILE {path}")


def _matches(pairs: Iterable[tuple[str, str]], get: Callable[[str], str]) -> bool:
    return all(fnmatchcase(get(dim) or "", pattern) for dim, pattern in pairs)


def apply_allocation(rows: Mapping[tuple, Sequence[float]], dims: Sequence[str], rules: Sequence[AllocationRule],
                     gpu_weights: Mapping[str, Mapping[str, float]] | None = None,
                     ) -> tuple[dict[tuple, list[float]], list[dict[str, Any]]]:
    """Split shared costs; returns new rows ``[cost, tokens, requests, events, allocated]`` and a report.

    For each rule in order: the *pool* is the rows matching ``match`` whose ``across`` value is
    empty; weights per ``across`` value are the tokens of rows matching ``basis`` (default
    ``match``) with ``across`` set (``tokens``), or ``gpu_weights[rule.name]`` (``gpu_seconds``:
    GPU-seconds per ``across`` value, computed by the caller from the GPU stream). Each pool row's
    cost moves to copies of the row with ``across`` set to each value, in proportion to its
    weight (``allocated`` records the moved dollars); the pool row keeps its tokens, requests and
    events. With no weight at all, the pool stays unallocated (reported).
    """
    out: dict[tuple, list[float]] = {k: [*v[:4], v[4] if len(v) > 4 else 0.0] for k, v in rows.items()}
    index = {d: i for i, d in enumerate(dims)}
    report = []
    for rule in rules:
        ai = index[rule.across]
        in_pool = [k for k in out if not k[ai] and _matches(rule.match, lambda d, k=k: k[index[d]])]
        pool = sum(out[k][COST] for k in in_pool)
        if rule.split_by == "tokens":
            basis = rule.basis or rule.match
            weights: dict[str, float] = {}
            for k, v in out.items():
                if k[ai] and _matches(basis, lambda d, k=k: k[index[d]] if d in index else ""):
                    weights[k[ai]] = weights.get(k[ai], 0.0) + v[TOKENS]
        else:
            weights = dict((gpu_weights or {}).get(rule.name, {}))
        weights = {v: w for v, w in weights.items() if w > 0}
        total_w = sum(weights.values())
        allocated = 0.0
        if pool > 0 and total_w > 0:
            for k in in_pool:
                cost = out[k][COST]
                if cost == 0:
                    continue
                out[k][COST] = 0.0
                for value, w in sorted(weights.items()):
                    share = cost * w / total_w
                    target = k[:ai] + (value,) + k[ai + 1:]
                    row = out.setdefault(target, [0.0, 0, 0, 0, 0.0])
                    row[COST] += share
                    row[4] += share
                    allocated += share
                if not any(out[k][:4]):
                    del out[k]
        report.append({"rule": rule.name, "split_by": rule.split_by, "across": rule.across,
                       "pool_usd": round(pool, 6), "allocated_usd": round(allocated, 6),
                       "unallocated_usd": round(pool - allocated, 6),
                       "shares": {v: round(w / total_w, 6) for v, w in sorted(weights.items())} if total_w else {}})
    return out, report


# -- segmented view --------------------------------------------------------------------------
def unit_metrics(cost: float, tokens: float, requests: float) -> dict[str, float | None]:
    """Cost per 1k tokens and per inference call (None when there were none)."""
    return {"cost_per_1k_tokens": round(cost * 1000.0 / tokens, 8) if tokens else None,
            "cost_per_request": round(cost / requests, 8) if requests else None}


def segmented_view(rows: Iterable[tuple[tuple, Sequence[float]]], dims: Sequence[str], group_by: Sequence[str], *,
                   required: Sequence[str] = (), rules: Sequence[AllocationRule] = (),
                   gpu_weights: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """Sum segment rows (any number of buckets and partitions) by ``group_by``, after allocation.

    Returns ``{"rows": [...], "total": {...}, "untagged": {...}, "allocation": [...]}``; each row
    ``{"key": {dim: value or None}, "cost_usd", "tokens", "requests", "events", "allocated_usd",
    "cost_per_1k_tokens", "cost_per_request"}``, biggest cost first.
    """
    merged: dict[tuple, list[float]] = {}
    for key, row in rows:
        acc = merged.get(key)
        if acc is None:
            merged[key] = [row[0], row[1], row[2], row[3], 0.0]
        else:
            for i in range(4):
                acc[i] += row[i]
    index = {d: i for i, d in enumerate(dims)}
    req = [index[d] for d in required]
    untagged = sum(v[COST] for k, v in merged.items() if any(not k[i] for i in req))
    allocated_rows, report = apply_allocation(merged, dims, rules, gpu_weights) if rules else (merged, [])
    gi = [index[d] for d in group_by]
    groups: dict[tuple, list[float]] = {}
    for key, v in allocated_rows.items():
        g = tuple(key[i] for i in gi)
        acc = groups.setdefault(g, [0.0, 0, 0, 0, 0.0])
        for i in range(5):
            acc[i] += v[i]

    def render(values: list[float]) -> dict[str, Any]:
        return {"cost_usd": round(values[0], 6), "tokens": int(values[1]), "requests": int(values[2]),
                "events": int(values[3]), "allocated_usd": round(values[4], 6),
                **unit_metrics(values[0], values[1], values[2])}

    total = [sum(v[i] for v in merged.values()) for i in range(5)]
    out_rows = [{"key": {d: (g[i] or None) for i, d in enumerate(group_by)}, **render(v)}
                for g, v in sorted(groups.items(), key=lambda item: (-item[1][0], tuple(x or "" for x in item[0])))]
    return {"rows": out_rows, "total": render(total),
            "untagged": {"required": list(required), "cost_usd": round(untagged, 6),
                         "share": round(untagged / total[0], 6) if total[0] > 0 else None},
            "allocation": report}
