"""The GPU usage event: one GPU (or a slice of one) observed for an interval, with its price and
attribution. What the collectors (:mod:`streams.sources.gpu_collect`) emit on ``<prefix>.gpu`` and what
the idle-GPU detector and the purchase-option comparison read.

``gpu_count`` x ``fraction`` is the GPU-equivalent billed: a MIG ``1g.10gb`` slice of a 7-slice
H100 is ``fraction = 1/7``; a time-sliced share of ``1/4`` is ``0.25``. ``hourly_price_usd`` is the
price of one *whole* GPU for one hour under ``purchase_option``; ``utilization`` is 0..1 (DCGM
``GR_ENGINE_ACTIVE`` or NVML's GPU utilization / 100).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import ValidationError
from schemas.usage import MAX_STRING, MAX_TAGS, parse_timestamp

__all__ = ["PURCHASE_OPTIONS", "GpuUsageEvent", "validate_gpu"]

PURCHASE_OPTIONS = ("on_demand", "reserved", "spot")
MAX_GPU_COUNT = 100_000
MAX_HOURLY_PRICE = 1_000.0  # USD per GPU-hour; far above any list price (catches per-node prices)
MAX_INTERVAL_S = 86_400.0
_STRINGS = ("cluster", "node", "gpu_model", "gpu_uuid", "mig_profile", "team", "service", "model")


@dataclass(slots=True)
class GpuUsageEvent:
    """A validated GPU usage observation. ``timestamp`` is the interval's end, epoch seconds."""

    event_id: str
    timestamp: float
    interval_s: float
    cluster: str
    node: str
    gpu_model: str
    utilization: float
    gpu_count: int = 1
    fraction: float = 1.0
    purchase_option: str = "on_demand"
    hourly_price_usd: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    gpu_uuid: str | None = None
    gpu_index: int | None = None
    mig_profile: str | None = None
    team: str | None = None
    service: str | None = None
    model: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def gpus(self) -> float:
        """GPU-equivalents billed (count x fraction)."""
        return self.gpu_count * self.fraction

    @property
    def gpu_hours(self) -> float:
        return self.gpus * self.interval_s / 3600.0

    @property
    def cost_usd(self) -> float | None:
        return None if self.hourly_price_usd is None else self.gpu_hours * self.hourly_price_usd

    @property
    def device_key(self) -> tuple[str, ...]:
        """Identity of the observed device (or slice) across intervals."""
        ident = self.gpu_uuid or ("" if self.gpu_index is None else str(self.gpu_index))
        return (self.cluster, self.node, ident, self.mig_profile or "", self.tags.get("gpu_instance_id", ""))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_id": self.event_id, "timestamp": self.timestamp, "interval_s": self.interval_s,
            "cluster": self.cluster, "node": self.node, "gpu_model": self.gpu_model,
            "gpu_count": self.gpu_count, "fraction": self.fraction, "purchase_option": self.purchase_option,
            "utilization": self.utilization,
        }
        for name in ("hourly_price_usd", "memory_used_bytes", "memory_total_bytes", "gpu_uuid", "gpu_index",
                     "mig_profile", "team", "service", "model"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def _number(data: dict[str, Any], name: str, low: float, high: float, *, required: bool = False,
            low_open: bool = False) -> float | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError(name, None, "is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(name, value, "must be a finite number")
    if value < low or value > high or (low_open and value == low):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValidationError(name, value, f"must be {bound} and <= {high}")
    return float(value)


def _int(data: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValidationError(name, value, "must be an integer")
    if not low <= value <= high:
        raise ValidationError(name, value, f"must be between {low} and {high}")
    return int(value)


def _str(data: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None:
        if required:
            raise ValidationError(name, None, "is required")
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_STRING:
        raise ValidationError(name, value, f"must be a string of 1 to {MAX_STRING} characters")
    return value


def validate_gpu(data: Any) -> GpuUsageEvent:
    """Build a :class:`GpuUsageEvent` from decoded JSON, or raise :class:`ValidationError`."""
    if not isinstance(data, dict):
        raise ValidationError("$", type(data).__name__, "GPU usage event must be a JSON object")
    event_id = _str(data, "event_id", required=True)
    if data.get("timestamp") is None:
        raise ValidationError("timestamp", None, "is required")
    timestamp = parse_timestamp(data["timestamp"])
    interval = _number(data, "interval_s", 0.0, MAX_INTERVAL_S, required=True, low_open=True)
    utilization = _number(data, "utilization", 0.0, 1.0, required=True)
    event = GpuUsageEvent(
        event_id=event_id, timestamp=timestamp, interval_s=interval,  # type: ignore[arg-type]
        cluster=_str(data, "cluster", required=True),  # type: ignore[arg-type]
        node=_str(data, "node", required=True),  # type: ignore[arg-type]
        gpu_model=_str(data, "gpu_model", required=True),  # type: ignore[arg-type]
        utilization=utilization,  # type: ignore[arg-type]
    )
    count = _int(data, "gpu_count", 1, MAX_GPU_COUNT)
    if count is not None:
        event.gpu_count = count
    fraction = _number(data, "fraction", 0.0, 1.0, low_open=True)
    if fraction is not None:
        event.fraction = fraction
    option = data.get("purchase_option")
    if option is not None:
        if option not in PURCHASE_OPTIONS:
            raise ValidationError("purchase_option", option, f"must be one of {', '.join(PURCHASE_OPTIONS)}")
        event.purchase_option = option
    event.hourly_price_usd = _number(data, "hourly_price_usd", 0.0, MAX_HOURLY_PRICE)
    event.memory_total_bytes = _int(data, "memory_total_bytes", 0, 2**50)
    event.memory_used_bytes = _int(data, "memory_used_bytes", 0, 2**50)
    if (event.memory_used_bytes is not None and event.memory_total_bytes is not None
            and event.memory_used_bytes > event.memory_total_bytes):
        raise ValidationError("memory_used_bytes", event.memory_used_bytes,
                              f"must be <= memory_total_bytes ({event.memory_total_bytes})")
    event.gpu_index = _int(data, "gpu_index", 0, 1_000_000)
    for name in ("gpu_uuid", "mig_profile", "team", "service", "model"):
        setattr(event, name, _str(data, name))
    tags = data.get("tags")
    if tags is not None:
        if not isinstance(tags, dict) or len(tags) > MAX_TAGS:
            raise ValidationError("tags", tags, f"must be an object of at most {MAX_TAGS} string values")
        for key, value in tags.items():
            if not isinstance(key, str) or not isinstance(value, str) or not value or len(value) > MAX_STRING:
                raise ValidationError(f"tags.{key}", value, f"must be a string of 1 to {MAX_STRING} characters")
            event.tags[key] = value
    return event
