"""Anomalies in imported bills (FOCUS cost events) at the bill's own grain: hourly or daily.

Pure. FOCUS rows reach the worker as usage events with ``cost_usd`` and a
``tags.charge_period_end`` (see :mod:`schemas.focus`). Summing them into one-minute buckets would
turn every daily row into a one-minute spike, so the engine hands them here instead: per key
(``service`` and ``tags.account`` by default) the cost of each charge period is summed; the grain
is the row's charge period (``<= 1 h`` -> hourly, else daily). A period closes once a row of a
period at least one whole period later has been seen for any key (bills arrive in exports,
roughly in order); each closed period (and each empty period in between, as $0) is judged by
the existing :class:`detectors.ewma.EWSpendDetector` (warmup 7 periods, z >= 4, >= 1.5x and
>= ``min_excess_usd`` above expected), through the same incident lifecycle as minute alerts:
``billing_spike`` fires once, resolves after one normal period.

Re-imported rows are dropped by ``event_id`` while their period is open; rows of closed periods
are counted as ``late`` and not judged again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from alerts.lifecycle import Lifecycle, SeverityPolicy
from detectors.ewma import EWSpendDetector
from schemas.alert import Alert

__all__ = ["BILL_ALERT", "BILL_TAG", "BillGrainDetector", "grain_of"]

BILL_ALERT = "billing_spike"
#: the tag that marks an imported bill row (set by :func:`schemas.focus.focus_row_to_event`)
BILL_TAG = "charge_period_end"
HOUR, DAY = 3600.0, 86400.0
MAX_GAP_PERIODS = 60


def grain_of(start: float, end_text: str | None) -> float:
    """Hourly when the charge period is at most an hour long, else daily."""
    if end_text:
        from schemas.focus import parse_focus_time

        try:
            return HOUR if parse_focus_time(end_text, "ChargePeriodEnd") - start <= HOUR else DAY
        except Exception:  # noqa: BLE001 - the row was validated at import; be lenient here
            return DAY
    return DAY


@dataclass(slots=True)
class _Key:
    labels: dict[str, str]
    grain: float
    detector: EWSpendDetector
    lifecycle: Lifecycle
    open: dict[float, list] = field(default_factory=dict)  # period start -> [cost, rows, ids]
    last_closed: float | None = None
    last: dict[str, float] | None = None
    total_usd: float = 0.0
    rows: int = 0
    late: int = 0


def _digest(event_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(), "little")


@dataclass
class BillGrainDetector:
    key_dims: tuple[str, ...] = ("service", "tags.account")
    warmup: int = 7
    z_threshold: float = 4.0
    ratio_threshold: float = 1.5
    min_excess_usd: float = 1.0
    severity: SeverityPolicy = field(default_factory=SeverityPolicy)
    keys: dict[tuple, _Key] = field(default_factory=dict)
    duplicates: int = 0
    _alerts: list[Alert] = field(default_factory=list)
    _max_ts: float = 0.0
    #: set on every change; the worker persists the detector and clears it
    dirty: bool = False

    def _labels(self, event: Any) -> dict[str, str]:
        return {d: (event.dimension(d) or "unattributed") for d in self.key_dims}

    def add(self, event: Any, cost: float) -> None:
        self.dirty = True
        labels = self._labels(event)
        ident = tuple(labels.values())
        state = self.keys.get(ident)
        if state is None:
            grain = grain_of(event.timestamp, event.tags.get(BILL_TAG))
            state = self.keys[ident] = _Key(labels, grain, EWSpendDetector(
                fading_factor=0.1, warmup=self.warmup, z_threshold=self.z_threshold,
                ratio_threshold=self.ratio_threshold, min_excess_usd=self.min_excess_usd), Lifecycle(1))
        grain = state.grain
        start = event.timestamp - event.timestamp % grain
        state.total_usd += cost
        state.rows += 1
        if state.last_closed is not None and start <= state.last_closed:
            state.late += 1
        else:
            period = state.open.get(start)
            if period is None:
                period = state.open[start] = [0.0, 0, set()]
            digest = _digest(event.event_id)
            if digest in period[2]:
                self.duplicates += 1
                state.total_usd -= cost
                state.rows -= 1
                return
            period[2].add(digest)
            period[0] += cost
            period[1] += 1
        if event.timestamp > self._max_ts:
            self._max_ts = event.timestamp
            self._close()

    def _close(self) -> None:
        for state in self.keys.values():
            limit = self._max_ts - self._max_ts % state.grain - state.grain  # one whole period of lateness
            for start in sorted(s for s in state.open if s + state.grain <= limit):
                cost, rows, _ = state.open.pop(start)
                if state.last_closed is not None:
                    gap = max(state.last_closed + state.grain, start - MAX_GAP_PERIODS * state.grain)
                    while gap < start:
                        self._judge(state, gap, 0.0, 0)
                        gap += state.grain
                self._judge(state, start, cost, rows)

    def _judge(self, state: _Key, start: float, cost: float, rows: int) -> None:
        x = {"t": start, "cost": cost}
        verdict = state.detector.score_one(x)
        state.detector.learn_one(x)
        state.last_closed = start
        state.last = {"start": start, "cost_usd": round(cost, 6), "expected_usd": round(verdict.expected, 6),
                      "score": round(verdict.score, 4)}
        grain = "hour" if state.grain == HOUR else "day"
        alert = state.lifecycle.on_verdict(
            alert_type=BILL_ALERT, key=state.labels, start=start, end=start + state.grain, observed=cost,
            verdict=verdict, policy=self.severity,
            details={"detector": "bill_grain", "grain": grain, "rows": rows, "source": "focus"})
        if alert is not None:
            self._alerts.append(alert)

    def drain_alerts(self) -> list[Alert]:
        alerts, self._alerts = self._alerts, []
        return alerts

    def view(self) -> list[dict[str, Any]]:
        return [{"key": s.labels, "grain": "hour" if s.grain == HOUR else "day", "total_cost_usd": round(s.total_usd, 6),
                 "rows": s.rows, "late_rows": s.late, "open_periods": len(s.open), "last_closed": s.last,
                 "incident": None if s.lifecycle.incident is None else s.lifecycle.incident.alert_id}
                for s in self.keys.values()]
