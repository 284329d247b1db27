"""What a GPU fleet's observed usage would cost under each purchase option. Pure.

Input: the fleet's GPU count per hour (GPU-equivalents; fractions allowed) and, optionally, its
mean utilization per hour. Options (prices per GPU-hour):

* ``on_demand``: every used GPU-hour at the on-demand price;
* ``reserved``: a fixed count covering the peak, paid 24/7 (every hour of the period);
* ``spot``: every used GPU-hour at the spot price, times ``1 + spot_overhead`` for the work
  lost and redone on interruptions;
* ``mix``: a reserved base of ``r`` GPUs paid every hour, the hours above it on the cheaper of
  on-demand and spot-with-overhead; ``r`` (an integer 0..peak) minimises the total.

Each option also reports its cost per GPU-hour *actually used* (GPU-hours x utilization), the
figure to compare with a model's token prices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Sequence

from schemas.errors import ValidationError
from schemas.gpu import GpuUsageEvent

__all__ = ["GpuPrices", "OptionCost", "PurchaseComparison", "compare_purchase_options", "hourly_usage"]


@dataclass(frozen=True, slots=True)
class GpuPrices:
    """USD per GPU-hour. ``reserved`` is the effective hourly rate of a committed GPU."""

    on_demand: float
    reserved: float
    spot: float
    spot_overhead: float = 0.10

    def __post_init__(self) -> None:
        for name in ("on_demand", "reserved", "spot", "spot_overhead"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValidationError(name, value, "must be a finite number >= 0")

    @property
    def spot_effective(self) -> float:
        return self.spot * (1.0 + self.spot_overhead)


@dataclass(frozen=True, slots=True)
class OptionCost:
    name: str
    total_usd: float
    reserved_gpus: int
    on_demand_gpu_hours: float
    spot_gpu_hours: float
    cost_per_used_gpu_hour: float | None

    def to_dict(self) -> dict:
        return {"name": self.name, "total_usd": round(self.total_usd, 6), "reserved_gpus": self.reserved_gpus,
                "on_demand_gpu_hours": round(self.on_demand_gpu_hours, 6),
                "spot_gpu_hours": round(self.spot_gpu_hours, 6),
                "cost_per_used_gpu_hour": None if self.cost_per_used_gpu_hour is None
                else round(self.cost_per_used_gpu_hour, 6)}


@dataclass(frozen=True, slots=True)
class PurchaseComparison:
    hours: int
    gpu_hours: float
    used_gpu_hours: float
    peak_gpus: float
    options: dict[str, OptionCost]

    @property
    def cheapest(self) -> OptionCost:
        return min(self.options.values(), key=lambda o: o.total_usd)

    def to_dict(self) -> dict:
        return {"hours": self.hours, "gpu_hours": round(self.gpu_hours, 6),
                "used_gpu_hours": round(self.used_gpu_hours, 6), "peak_gpus": self.peak_gpus,
                "cheapest": self.cheapest.name, "options": {k: v.to_dict() for k, v in self.options.items()}}


def compare_purchase_options(hourly_gpus: Sequence[float], prices: GpuPrices,
                             utilization: Sequence[float] | None = None) -> PurchaseComparison:
    """Cost of the observed hourly GPU counts under each purchase option (see the module docstring)."""
    counts = [float(c) for c in hourly_gpus]
    for i, c in enumerate(counts):
        if not math.isfinite(c) or c < 0:
            raise ValidationError(f"hourly_gpus[{i}]", c, "must be a finite number >= 0")
    if utilization is not None:
        if len(utilization) != len(counts):
            raise ValidationError("utilization", len(utilization), f"must have one value per hour ({len(counts)})")
        for i, u in enumerate(utilization):
            if not 0.0 <= u <= 1.0:
                raise ValidationError(f"utilization[{i}]", u, "must be between 0 and 1")
        used = sum(c * u for c, u in zip(counts, utilization))
    else:
        used = sum(counts)
    hours = len(counts)
    total = sum(counts)
    peak = max(counts, default=0.0)

    def per_used(cost: float) -> float | None:
        return cost / used if used > 0 else None

    overflow_price = min(prices.on_demand, prices.spot_effective)
    overflow_is_spot = prices.spot_effective < prices.on_demand

    def mix_cost(r: int) -> tuple[float, float]:
        above = sum(c - r for c in counts if c > r)
        return r * hours * prices.reserved + above * overflow_price, above

    best_r, (best_cost, best_above) = 0, mix_cost(0)
    for r in range(1, math.ceil(peak) + 1):
        cost, above = mix_cost(r)
        if cost < best_cost - 1e-12:
            best_r, best_cost, best_above = r, cost, above
    reserved_count = math.ceil(peak)
    on_demand = total * prices.on_demand
    reserved = reserved_count * hours * prices.reserved
    spot = total * prices.spot_effective
    options = {
        "on_demand": OptionCost("on_demand", on_demand, 0, total, 0.0, per_used(on_demand)),
        "reserved": OptionCost("reserved", reserved, reserved_count, 0.0, 0.0, per_used(reserved)),
        "spot": OptionCost("spot", spot, 0, 0.0, total, per_used(spot)),
        "mix": OptionCost("mix", best_cost, best_r, 0.0 if overflow_is_spot else best_above,
                          best_above if overflow_is_spot else 0.0, per_used(best_cost)),
    }
    return PurchaseComparison(hours=hours, gpu_hours=total, used_gpu_hours=used, peak_gpus=peak, options=options)


def hourly_usage(events: Iterable[GpuUsageEvent]) -> tuple[list[float], list[float]]:
    """Per clock hour (from the first event's hour to the last's): mean GPU-equivalents in use
    (GPU-hours in the hour) and their GPU-hour-weighted utilization. Fractions count by fraction."""
    buckets: dict[int, list[float]] = {}
    for event in events:
        hour = int((event.timestamp - event.interval_s) // 3600)
        slot = buckets.setdefault(hour, [0.0, 0.0])
        slot[0] += event.gpu_hours
        slot[1] += event.gpu_hours * event.utilization
    if not buckets:
        return [], []
    first, last = min(buckets), max(buckets)
    counts, utils = [], []
    for hour in range(first, last + 1):
        gpu_hours, weighted = buckets.get(hour, [0.0, 0.0])
        counts.append(gpu_hours)
        utils.append(weighted / gpu_hours if gpu_hours else 0.0)
    return counts, utils
