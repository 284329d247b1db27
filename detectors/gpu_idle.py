"""Idle-GPU waste: billed GPU-hours with utilization under a threshold for a sustained time.

Pure (no I/O, no clock): feed :class:`schemas.gpu.GpuUsageEvent` records in event time to
:meth:`GpuIdleDetector.observe`, which returns the alert state changes. A device (a GPU or a MIG
slice / time-sliced share) is *idle* once its utilization has stayed below ``threshold`` (default
5%) for ``min_idle_s`` (default 30 minutes) of consecutive intervals; the dollars wasted are its
GPU-hours x hourly price over the whole idle streak so far (the first 30 minutes included).
Fractional GPUs count by their fraction: an idle ``1g.10gb`` slice of a 7-slice H100 at $7/h
wastes $1/h, not $7/h.

Alerts are per group (``cluster``, ``team``, ``gpu_model`` by default), type ``gpu_idle``: one
``firing`` record when the group's first device turns idle, ``resolved`` (same ``alert_id``) when
its last idle device is busy again (or stops reporting for ``stale_s``). :meth:`snapshot` gives
the firing alerts with their running waste.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from schemas.alert import Alert, alert_id_for
from schemas.gpu import GpuUsageEvent

__all__ = ["GpuIdleDetector", "detect_idle_gpus"]

ALERT_TYPE = "gpu_idle"


@dataclass(slots=True)
class _Streak:
    start: float  # start of the first idle interval
    last: float  # timestamp (interval end) of the latest idle interval
    gpus: float
    gpu_hours: float = 0.0
    wasted_usd: float = 0.0
    hourly_usd: float = 0.0  # waste rate at the latest interval
    util_sum: float = 0.0
    intervals: int = 0
    unpriced: bool = False


@dataclass(slots=True)
class _Incident:
    alert_id: str
    start: float


@dataclass
class GpuIdleDetector:
    """Idle-GPU waste per group; see the module docstring."""

    threshold: float = 0.05
    min_idle_s: float = 1800.0
    group_by: tuple[str, ...] = ("cluster", "team", "gpu_model")
    stale_s: float = 900.0
    _streaks: dict[tuple[str, ...], _Streak] = field(default_factory=dict)
    _groups: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = field(default_factory=dict)
    _incidents: dict[tuple[tuple[str, str], ...], _Incident] = field(default_factory=dict)
    _now: float = 0.0

    def _group(self, event: GpuUsageEvent) -> tuple[tuple[str, str], ...]:
        parts = []
        for name in self.group_by:
            value = event.tags.get(name[5:]) if name.startswith("tags.") else getattr(event, name)
            parts.append((name, value if isinstance(value, str) and value else "unattributed"))
        return tuple(parts)

    def observe(self, event: GpuUsageEvent) -> list[Alert]:
        """Fold one observation in; returns the alerts that changed state (firing / resolved)."""
        self._now = max(self._now, event.timestamp)
        device = event.device_key
        group = self._group(event)
        self._groups[device] = group
        if event.utilization < self.threshold:
            streak = self._streaks.get(device)
            if streak is None:
                streak = self._streaks[device] = _Streak(start=event.timestamp - event.interval_s,
                                                         last=event.timestamp, gpus=event.gpus)
            streak.last = event.timestamp
            streak.gpus = event.gpus
            streak.gpu_hours += event.gpu_hours
            streak.util_sum += event.utilization
            streak.intervals += 1
            if event.hourly_price_usd is None:
                streak.unpriced = True
                streak.hourly_usd = 0.0
            else:
                streak.wasted_usd += event.gpu_hours * event.hourly_price_usd
                streak.hourly_usd = event.gpus * event.hourly_price_usd
        else:
            self._streaks.pop(device, None)
        self._expire()
        return self._transitions()

    def _expire(self) -> None:
        for device, streak in list(self._streaks.items()):
            if self._now - streak.last > self.stale_s:
                del self._streaks[device]

    def _idle_by_group(self) -> dict[tuple[tuple[str, str], ...], list[_Streak]]:
        out: dict[tuple[tuple[str, str], ...], list[_Streak]] = {}
        for device, streak in self._streaks.items():
            if streak.last - streak.start >= self.min_idle_s:
                out.setdefault(self._groups[device], []).append(streak)
        return out

    def _transitions(self) -> list[Alert]:
        idle = self._idle_by_group()
        changes = []
        for group, streaks in idle.items():
            if group not in self._incidents:
                start = min(s.start for s in streaks)
                self._incidents[group] = _Incident(alert_id_for(ALERT_TYPE, dict(group), start), start)
                changes.append(self._alert(group, streaks, "firing"))
        for group in [g for g in self._incidents if g not in idle]:
            changes.append(self._alert(group, [], "resolved"))
            del self._incidents[group]
        return changes

    def snapshot(self) -> list[Alert]:
        """The firing alerts, with the waste so far."""
        idle = self._idle_by_group()
        return [self._alert(group, idle[group], "firing") for group in self._incidents if group in idle]

    def _alert(self, group: tuple[tuple[str, str], ...], streaks: list[_Streak], status: str) -> Alert:
        incident = self._incidents[group]
        key = dict(group)
        wasted = sum(s.wasted_usd for s in streaks)
        rate = sum(s.hourly_usd for s in streaks)
        gpus = sum(s.gpus for s in streaks)
        hours = sum(s.gpu_hours for s in streaks)
        intervals = sum(s.intervals for s in streaks)
        mean_util = sum(s.util_sum for s in streaks) / intervals if intervals else 0.0
        severity = "critical" if rate >= 100 else "warning" if rate >= 10 else "info"
        label = ", ".join(f"{k}={v}" for k, v in key.items())
        if status == "firing":
            summary = (f"{gpus:g} idle GPU(s) ({label}) under {self.threshold:.0%} utilization for "
                       f"{(self._now - min(s.start for s in streaks)) / 60:.0f} min: ${wasted:,.2f} wasted so far, "
                       f"${rate:,.2f}/h")
        else:
            summary = f"GPUs ({label}) busy again or gone"
        return Alert(
            alert_id=incident.alert_id, type=ALERT_TYPE, status=status,  # type: ignore[arg-type]
            severity=severity, key=key,  # type: ignore[arg-type]
            window_start=incident.start, window_end=self._now, triggered_at=self._now,
            observed=round(wasted, 6), expected=0.0, score=round(1.0 - min(1.0, mean_util / self.threshold), 4)
            if streaks else 0.0,
            summary=summary,
            details={"detector": "gpu_idle", "idle_gpus": gpus, "idle_gpu_hours": round(hours, 6),
                     "wasted_usd": round(wasted, 6), "wasted_usd_per_hour": round(rate, 6),
                     "mean_utilization": round(mean_util, 6), "devices": len(streaks),
                     "unpriced_devices": sum(1 for s in streaks if s.unpriced),
                     "threshold": self.threshold, "min_idle_minutes": self.min_idle_s / 60},
        )


def detect_idle_gpus(events: Iterable[GpuUsageEvent], *, threshold: float = 0.05,
                     min_idle_minutes: float = 30.0,
                     group_by: tuple[str, ...] = ("cluster", "team", "gpu_model")) -> list[Alert]:
    """The idle-GPU alerts firing at the end of ``events`` (sorted by time here)."""
    detector = GpuIdleDetector(threshold=threshold, min_idle_s=min_idle_minutes * 60, group_by=group_by)
    for event in sorted(events, key=lambda e: e.timestamp):
        detector.observe(event)
    return detector.snapshot()
