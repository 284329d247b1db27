"""GPU usage per partition of ``<prefix>.gpu``: idle-waste detection, spend and used GPU-hours. Pure.

:class:`GpuLedger` folds validated :class:`schemas.gpu.GpuUsageEvent` records (one partition's)
into

* the idle-GPU waste detector (:class:`detectors.gpu_idle.GpuIdleDetector`, per cluster/team/gpu
  model), whose ``gpu_idle`` alerts the worker publishes like cost alerts;
* GPU spend per key ``(cluster, team, gpu_model, service, model)`` in 5-minute slots kept 24 h:
  GPU-seconds billed (fractional GPUs by fraction), GPU-seconds *used* (x utilization), cost;
* GPU-hours per fleet ``(cluster, gpu_model)`` per clock hour kept 7 days, for the
  purchase-option comparison (:func:`streams.core.gpu_costs.compare_purchase_options`);
* the last hourly price seen per ``(gpu_model, purchase_option)``.

:func:`gpu_view` merges the ledgers of every partition for ``GET /v1/gpu``; :func:`gpu_weights`
gives the GPU-seconds per ``across`` value that ``split_by: gpu_seconds`` allocation rules use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from detectors.gpu_idle import GpuIdleDetector
from schemas.alert import Alert
from schemas.errors import ConfigError, ValidationError
from schemas.gpu import GpuUsageEvent
from streams.core.gpu_costs import GpuPrices, compare_purchase_options

__all__ = ["GPU_KEY_DIMS", "GpuLedger", "gpu_view", "gpu_weights", "load_gpu_prices", "SLOT_S"]

GPU_KEY_DIMS = ("cluster", "team", "gpu_model", "service", "model")
SLOT_S = 300.0
SLOT_HORIZON_S = 86_400.0
HOUR_HORIZON = 7 * 24
#: slot values: GPU-seconds billed, GPU-seconds used (x utilization), cost USD, GPU-seconds unpriced
BILLED, USED, COST, UNPRICED = range(4)


@dataclass
class GpuLedger:
    detector: GpuIdleDetector = field(default_factory=GpuIdleDetector)
    slots: dict[tuple, dict[float, list[float]]] = field(default_factory=dict)
    hours: dict[tuple[str, str], dict[int, list[float]]] = field(default_factory=dict)
    prices: dict[tuple[str, str], float] = field(default_factory=dict)
    totals: dict[tuple, list[float]] = field(default_factory=dict)
    events: int = 0
    max_ts: float = 0.0
    #: last source offset folded in (restart: skip what the snapshot already holds)
    offset: int = -1

    def observe(self, event: GpuUsageEvent) -> list[Alert]:
        self.events += 1
        key = tuple(getattr(event, d) or "" for d in GPU_KEY_DIMS)
        billed = event.gpus * event.interval_s
        cost = event.cost_usd
        start = event.timestamp - event.interval_s
        slot = self.slots.setdefault(key, {}).setdefault(start - start % SLOT_S, [0.0, 0.0, 0.0, 0.0])
        slot[BILLED] += billed
        slot[USED] += billed * event.utilization
        total = self.totals.setdefault(key, [0.0, 0.0, 0.0, 0.0])
        total[BILLED] += billed
        total[USED] += billed * event.utilization
        if cost is None:
            slot[UNPRICED] += billed
            total[UNPRICED] += billed
        else:
            slot[COST] += cost
            total[COST] += cost
            self.prices[(event.gpu_model, event.purchase_option)] = event.hourly_price_usd  # type: ignore[assignment]
        hour = self.hours.setdefault((event.cluster, event.gpu_model), {}).setdefault(int(start // 3600), [0.0, 0.0])
        hour[0] += event.gpu_hours
        hour[1] += event.gpu_hours * event.utilization
        if event.timestamp > self.max_ts:
            self.max_ts = event.timestamp
        return self.detector.observe(event)

    def prune(self) -> None:
        """Drop slots past 24 h and hours past 7 days (call once per batch)."""
        floor = self.max_ts - SLOT_HORIZON_S
        for key in list(self.slots):
            slots = self.slots[key]
            for start in [s for s in slots if s < floor]:
                del slots[start]
            if not slots:
                del self.slots[key]
        hour_floor = int(self.max_ts // 3600) - HOUR_HORIZON
        for fleet in list(self.hours):
            hours = self.hours[fleet]
            for h in [h for h in hours if h < hour_floor]:
                del hours[h]
            if not hours:
                del self.hours[fleet]


def load_gpu_prices(path: str | Path) -> dict[str, GpuPrices]:
    """``{"H100*": {"on_demand": 6.98, "reserved": 4.4, "spot": 2.9, "spot_overhead": 0.1}}``
    (keys are gpu_model globs, first match wins)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"SPENDSENTRY_GPU_PRICES_FILE {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"SPENDSENTRY_GPU_PRICES_FILE {path}: must be an object of gpu model -> prices")
    out = {}
    for model, prices in data.items():
        if not isinstance(prices, dict) or not {"on_demand", "reserved", "spot"} <= set(prices):
            raise ConfigError(f"SPENDSENTRY_GPU_PRICES_FILE {path}: {model}: needs on_demand, reserved and spot "
                              "(USD per GPU-hour)")
        try:
            out[model] = GpuPrices(**{k: float(v) for k, v in prices.items()
                                      if k in ("on_demand", "reserved", "spot", "spot_overhead")})
        except (TypeError, ValueError, ValidationError) as exc:
            raise ConfigError(f"SPENDSENTRY_GPU_PRICES_FILE {path}: {model}: {exc}") from None
    return out


def _prices_for(gpu_model: str, configured: Mapping[str, GpuPrices],
                observed: Mapping[tuple[str, str], float]) -> tuple[GpuPrices | None, str]:
    for pattern, prices in configured.items():
        if fnmatchcase(gpu_model, pattern):
            return prices, "SPENDSENTRY_GPU_PRICES_FILE"
    seen = {option: observed.get((gpu_model, option)) for option in ("on_demand", "reserved", "spot")}
    if all(v is not None for v in seen.values()):
        return GpuPrices(**seen), "observed"  # type: ignore[arg-type]
    missing = [o for o, v in seen.items() if v is None]
    return None, f"no {'/'.join(missing)} price for {gpu_model} (set SPENDSENTRY_GPU_PRICES_FILE)"


def _per(value: float, by: float) -> float | None:
    return round(value / by, 6) if by > 0 else None


def gpu_view(ledgers: Iterable[GpuLedger], *, window_s: float, prices: Mapping[str, GpuPrices] | None = None,
             ) -> dict[str, Any]:
    """Spend per GPU key over the last ``window_s`` (5-minute slots), unit costs, firing idle
    alerts, and per fleet the purchase-option comparison of its last 7 days' hourly usage."""
    ledgers = list(ledgers)
    now = max((l.max_ts for l in ledgers), default=0.0)
    since = now - window_s
    keys: dict[tuple, list[float]] = {}
    fleets: dict[tuple[str, str], dict[int, list[float]]] = {}
    observed: dict[tuple[str, str], float] = {}
    idle: list[dict[str, Any]] = []
    for ledger in ledgers:
        for key, slots in ledger.slots.items():
            for start, values in slots.items():
                if start + SLOT_S > since:
                    acc = keys.setdefault(key, [0.0, 0.0, 0.0, 0.0])
                    for i in range(4):
                        acc[i] += values[i]
        for fleet, hours in ledger.hours.items():
            merged = fleets.setdefault(fleet, {})
            for h, (gh, used) in hours.items():
                slot = merged.setdefault(h, [0.0, 0.0])
                slot[0] += gh
                slot[1] += used
        observed.update(ledger.prices)
        idle += [a.to_dict() for a in ledger.detector.snapshot()]
    rows = []
    for key, (billed, used, cost, unpriced) in sorted(keys.items(), key=lambda kv: -kv[1][COST]):
        gpu_hours, used_hours = billed / 3600.0, used / 3600.0
        rows.append({"key": {d: (v or None) for d, v in zip(GPU_KEY_DIMS, key)},
                     "gpu_hours": round(gpu_hours, 6), "used_gpu_hours": round(used_hours, 6),
                     "gpu_seconds": round(billed, 3), "utilization": _per(used, billed),
                     "cost_usd": round(cost, 6), "unpriced_gpu_hours": round(unpriced / 3600.0, 6),
                     "cost_per_gpu_hour": _per(cost, (billed - unpriced) / 3600.0),
                     "cost_per_used_gpu_hour": _per(cost, used / 3600.0 * (1 - unpriced / billed) if billed else 0.0)})
    options = []
    for (cluster, gpu_model), hours in sorted(fleets.items()):
        first, last = min(hours), max(hours)
        # rounded: sixty 1/60 GPU-hours must make a peak of 1 GPU, not 1.0000000000000002 (ceil -> 2 reserved)
        counts = [round(hours.get(h, [0.0, 0.0])[0], 9) for h in range(first, last + 1)]
        utils = [(hours[h][1] / hours[h][0]) if h in hours and hours[h][0] else 0.0 for h in range(first, last + 1)]
        fleet_prices, source = _prices_for(gpu_model, prices or {}, observed)
        entry: dict[str, Any] = {"cluster": cluster, "gpu_model": gpu_model, "hours": len(counts),
                                 "gpu_hours": round(sum(counts), 6), "prices_from": source if fleet_prices else None}
        if fleet_prices is None:
            entry["comparison"] = None
            entry["reason"] = source
        else:
            entry["comparison"] = compare_purchase_options(counts, fleet_prices, [min(1.0, u) for u in utils]).to_dict()
        options.append(entry)
    return {"window_seconds": window_s, "to": now, "keys": rows, "idle": idle, "purchase_options": options}


def gpu_weights(ledgers: Iterable[GpuLedger], rules: Sequence[Any], since: float) -> dict[str, dict[str, float]]:
    """GPU-seconds per ``across`` value for each ``split_by: gpu_seconds`` rule (``basis``, else
    ``match``, matched against the GPU key dimensions; a dimension GPU events lack matches nothing)."""
    ledgers = list(ledgers)
    out: dict[str, dict[str, float]] = {}
    index = {d: i for i, d in enumerate(GPU_KEY_DIMS)}
    for rule in rules:
        if rule.split_by != "gpu_seconds" or rule.across not in index:
            continue
        basis = rule.basis or rule.match
        if any(d not in index for d, _ in basis):
            out[rule.name] = {}
            continue
        weights: dict[str, float] = {}
        ai = index[rule.across]
        for ledger in ledgers:
            for key, slots in ledger.slots.items():
                if not key[ai] or not all(fnmatchcase(key[index[d]], p) for d, p in basis):
                    continue
                seconds = sum(v[BILLED] for s, v in slots.items() if s + SLOT_S > since)
                if seconds > 0:
                    weights[key[ai]] = weights.get(key[ai], 0.0) + seconds
        out[rule.name] = weights
    return out
