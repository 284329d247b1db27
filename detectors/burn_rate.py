"""Budget burn-rate tracking: spend to date, multiwindow multi-burn-rate alerts, threshold
crossings and an exhaustion projection, for one budget. Pure, picklable, event-time driven.

Burn rate over a window = spend in the window ÷ (amount × window ÷ period length): 1x spends
the budget exactly over the period. A rule fires when the burn over its long AND its short window
both reach its threshold (the long window says it matters, the short one that it is still going
on) and clears when both are below it again. Defaults: :func:`schemas.budget.default_burn_rules`.

Alerts:

- ``budget_burn``: one incident per budget while any rule is active. It fires once when the first
  rule fires; each further rule that fires in the same incident re-emits the *same* alert id with
  the incident's severity (the maximum so far), so a router can notify on escalation only; each
  rule contributes at most one alert per incident. ``resolved`` once every rule has cleared.
- ``budget_threshold``: ``amount × pct`` crossed, once per period per threshold (several
  crossed in the same minute: one alert, for the highest). Severity: >= 100 % critical, >= 80 %
  warning, else info. Resolved when the period rolls over.

For both, ``observed`` is the actual spend and ``expected`` what a 1x pace would have spent over
the same span, so ``observed - expected`` is the overspend (what ``min_impact_usd`` filters on).

Memory is O(longest window): a ring of per-minute sums (3 days = 4320 floats) plus the open
minutes. Time only moves through :meth:`BudgetTracker.close_minute` (the watermark).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from schemas.alert import SEVERITIES, Alert, alert_id_for, rfc3339
from schemas.budget import Budget, BurnRule, fmt_duration

MINUTE = 60


def period_bounds(ts: float, period: str, tz_name: str) -> tuple[float, float]:
    """Start and end (epoch seconds) of the calendar day or month holding ``ts`` in ``tz_name``."""
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(tz_name)
    local = datetime.fromtimestamp(ts, tz)
    if period == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=tz)
        nxt = (start.replace(tzinfo=None) + timedelta(days=1))
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    else:
        start = datetime(local.year, local.month, 1, tzinfo=tz)
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        end = datetime(year, month, 1, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def _sev_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def _usd(x: float) -> str:
    return f"${x:,.2f}"


@dataclass(slots=True)
class _Incident:
    alert_id: str
    started: float
    severity: str
    fired_rules: list[str] = field(default_factory=list)
    peak_burn: float = 0.0


class BudgetTracker:
    """One budget's spend state. ``add`` costs that match the budget; ``close_minute`` as the
    watermark passes each minute; ``state()`` for the API.

    ``projection_window_s``: the pace used for the exhaustion projection (default 6 h for a month,
    1 h for a day; shorter while the tracker has less history).
    """

    def __init__(self, budget: Budget, *, projection_window_s: int | None = None) -> None:
        self.budget = budget
        self.projection_window_s = projection_window_s or (3600 if budget.period == "day" else 21600)
        longest = max([r.long_s for r in budget.burn_rules] + [self.projection_window_s])
        self._size = longest // MINUTE
        self._ring = array("d", [0.0]) * self._size
        self._ring_minute = array("q", [-1]) * self._size
        self._open: dict[int, float] = {}
        self._closed_through: int | None = None  # minute index (epoch // 60) of the last closed minute
        self._first_minute: int | None = None
        self.period_start: float | None = None
        self.period_end: float | None = None
        self.spent = 0.0
        self.late_usd = 0.0
        self._crossed: list[float] = []
        self._threshold_alerts: list[Alert] = []
        self._active: dict[str, bool] = {r.name: False for r in budget.burn_rules}
        self._incident: _Incident | None = None
        self._exhausted_at: float | None = None
        self._now: float | None = None

    # -- input -----------------------------------------------------------------------------
    @property
    def history_start(self) -> float | None:
        """Start (epoch seconds) of the first minute this tracker counted spend in; None before."""
        return None if self._first_minute is None else self._first_minute * MINUTE

    @property
    def key(self) -> dict[str, str]:
        return {**self.budget.match, "budget": self.budget.id}

    def add(self, ts: float, cost: float) -> None:
        """Count ``cost`` USD spent at event time ``ts``. Late costs (minute already closed) still
        count in the ring and, when in the current period, in ``spent``; they are never re-judged."""
        if cost == 0:
            return
        minute = int(ts // MINUTE)
        if self._closed_through is None or minute > self._closed_through:
            self._open[minute] = self._open.get(minute, 0.0) + cost
            return
        self.late_usd += cost
        slot = minute % self._size
        if self._ring_minute[slot] == minute:
            self._ring[slot] += cost
        if self.period_start is not None and self.period_start <= ts < (self.period_end or 0):
            self.spent += cost

    def close_minute(self, minute_start: float) -> list[Alert]:
        """Close every minute up to and including ``[minute_start, +60)`` and judge the budget at its end."""
        last = int(minute_start // MINUTE)
        if self._closed_through is not None and last <= self._closed_through:
            return []
        alerts: list[Alert] = []
        if self.period_start is None:
            self.period_start, self.period_end = period_bounds(minute_start, self.budget.period, self.budget.timezone)
        for minute in sorted(m for m in self._open if m <= last):
            alerts += self._roll_to(minute * MINUTE)
            cost = self._open.pop(minute)
            slot = minute % self._size
            self._ring[slot] = cost
            self._ring_minute[slot] = minute
            if self._first_minute is None:
                self._first_minute = minute
            self.spent += cost
            if self._exhausted_at is None and self.spent >= self.budget.amount_usd:
                self._exhausted_at = (minute + 1) * MINUTE
        alerts += self._roll_to(minute_start)
        if self._first_minute is None:
            self._first_minute = last
        self._closed_through = last
        now = (last + 1) * MINUTE
        self._now = now
        alerts += self._judge_thresholds(now)
        alerts += self._judge_burn(now)
        return alerts

    # -- periods ---------------------------------------------------------------------------
    def _roll_to(self, ts: float) -> list[Alert]:
        assert self.period_end is not None
        out: list[Alert] = []
        while ts >= self.period_end:
            ended = self.period_end
            for fired in self._threshold_alerts:
                out.append(Alert(
                    alert_id=fired.alert_id, type=fired.type, status="resolved", severity=fired.severity,
                    key=dict(fired.key), window_start=fired.window_start, window_end=ended, triggered_at=ended,
                    observed=round(self.spent, 6), expected=fired.expected, score=fired.score,
                    summary=f"resolved: {self.budget.name}: period ended at {rfc3339(ended)} with "
                            f"{_usd(self.spent)} of {_usd(self.budget.amount_usd)} spent",
                    details={**fired.details, "period_spent_usd": round(self.spent, 6)}))
            self._threshold_alerts = []
            self._crossed = []
            self.spent = 0.0
            self._exhausted_at = None
            self.period_start, self.period_end = period_bounds(ended, self.budget.period, self.budget.timezone)
        return out

    @property
    def period_length_s(self) -> float:
        assert self.period_start is not None and self.period_end is not None
        return self.period_end - self.period_start

    # -- windows ---------------------------------------------------------------------------
    def window_spend(self, seconds: int, now: float | None = None) -> float:
        """Spend over the ``seconds`` before ``now`` (default: the end of the last closed minute)."""
        end = int((self._now if now is None else now) // MINUTE)
        total = 0.0
        ring, ring_minute, size = self._ring, self._ring_minute, self._size
        for minute in range(end - min(seconds // MINUTE, size), end):
            slot = minute % size
            if ring_minute[slot] == minute:
                total += ring[slot]
        return total

    def burn_rate(self, seconds: int, now: float | None = None) -> float:
        """Spend rate over the window ÷ the rate that spends exactly the amount over the period."""
        allowed = self.budget.amount_usd * seconds / self.period_length_s
        return self.window_spend(seconds, now) / allowed if allowed > 0 else 0.0

    def windows(self) -> list[int]:
        return sorted({w for r in self.budget.burn_rules for w in (r.short_s, r.long_s)})

    # -- judging ---------------------------------------------------------------------------
    def _details(self, now: float) -> dict[str, Any]:
        return {"detector": "burn_rate", "budget_id": self.budget.id, "budget_name": self.budget.name,
                "period": self.budget.period, "period_start": rfc3339(self.period_start or 0),
                "period_end": rfc3339(self.period_end or 0), "amount_usd": self.budget.amount_usd,
                "spent_usd": round(self.spent, 6), "pct": round(self.spent / self.budget.amount_usd * 100, 2),
                "burn_rates": {fmt_duration(w): round(self.burn_rate(w, now), 3) for w in self.windows()},
                "projected_exhaustion": self.projected_exhaustion(now)}

    def _on_pace(self, now: float) -> float:
        assert self.period_start is not None
        return self.budget.amount_usd * (now - self.period_start) / self.period_length_s

    def _judge_thresholds(self, now: float) -> list[Alert]:
        pct = self.spent / self.budget.amount_usd * 100
        new = [t for t in self.budget.thresholds_pct if pct >= t and t not in self._crossed]
        if not new:
            return []
        self._crossed += new
        top = max(new)
        severity = "critical" if top >= 100 else "warning" if top >= 80 else "info"
        assert self.period_start is not None
        key = self.key
        expected = self._on_pace(now)
        exhaustion = self.projected_exhaustion(now)
        pace = f"; at this pace the budget runs out {exhaustion}" if exhaustion and top < 100 else ""
        alert = Alert(
            alert_id=alert_id_for("budget_threshold", {**key, "threshold_pct": f"{top:g}"}, self.period_start),
            type="budget_threshold", status="firing", severity=severity,  # type: ignore[arg-type]
            key=key, window_start=self.period_start, window_end=now, triggered_at=now,
            observed=round(self.spent, 6), expected=round(expected, 6), score=round(pct / 100, 4),
            summary=f"{self.budget.name}: {pct:.0f}% of the {self.budget.period}ly budget spent "
                    f"({_usd(self.spent)} of {_usd(self.budget.amount_usd)}, threshold {top:g}%){pace}",
            details={**self._details(now), "threshold_pct": top, "crossed_pct": sorted(new)})
        self._threshold_alerts.append(alert)
        return [alert]

    def _judge_burn(self, now: float) -> list[Alert]:
        newly: list[tuple[BurnRule, float, float]] = []
        for rule in self.budget.burn_rules:
            long_b, short_b = self.burn_rate(rule.long_s, now), self.burn_rate(rule.short_s, now)
            if not self._active[rule.name]:
                if long_b >= rule.burn and short_b >= rule.burn:
                    self._active[rule.name] = True
                    newly.append((rule, long_b, short_b))
            elif long_b < rule.burn and short_b < rule.burn:
                self._active[rule.name] = False
        incident = self._incident
        if incident is not None and not any(self._active.values()):
            self._incident = None
            return [self._burn_alert(now, incident, None, status="resolved")]
        if incident is not None:
            newly = [n for n in newly if n[0].name not in incident.fired_rules]
        if not newly:
            if incident is not None:
                incident.peak_burn = max(incident.peak_burn, max(
                    self.burn_rate(r.long_s, now) for r in self.budget.burn_rules if self._active[r.name]))
            return []
        newly.sort(key=lambda n: (_sev_rank(n[0].severity), n[1]))
        rule, long_b, _ = newly[-1]
        if incident is None:
            start = now - MINUTE
            incident = self._incident = _Incident(alert_id_for("budget_burn", self.key, start), start, rule.severity)
        incident.severity = max(incident.severity, rule.severity, key=_sev_rank)
        incident.fired_rules += [n[0].name for n in newly]
        incident.peak_burn = max(incident.peak_burn, long_b)
        return [self._burn_alert(now, incident, rule, status="firing")]

    def _burn_alert(self, now: float, incident: _Incident, rule: BurnRule | None, *, status: str) -> Alert:
        details = self._details(now)
        details |= {"rules_fired": list(incident.fired_rules), "peak_burn": round(incident.peak_burn, 3)}
        if rule is not None:
            long_b, short_b = self.burn_rate(rule.long_s, now), self.burn_rate(rule.short_s, now)
            observed = self.window_spend(rule.long_s, now)
            expected = self.budget.amount_usd * rule.long_s / self.period_length_s
            window_start = now - rule.long_s
            exhaustion = details["projected_exhaustion"]
            summary = (f"{self.budget.name} burning {long_b:.1f}x over {fmt_duration(rule.long_s)} "
                       f"({short_b:.1f}x over {fmt_duration(rule.short_s)}): {_usd(self.spent)} of "
                       f"{_usd(self.budget.amount_usd)} spent ({details['pct']:.0f}%)"
                       + (f"; at this pace the budget runs out {exhaustion}" if exhaustion else ""))
            details |= {"rule": rule.to_dict(), "burn_long": round(long_b, 3), "burn_short": round(short_b, 3)}
            score = round(long_b, 4)
        else:
            longest = max(self.budget.burn_rules, key=lambda r: r.long_s)
            observed = self.window_spend(longest.short_s, now)
            expected = self.budget.amount_usd * longest.short_s / self.period_length_s
            window_start = incident.started
            score = round(self.burn_rate(longest.short_s, now), 4)
            summary = (f"resolved: {self.budget.name} burn back under every rule (peak {incident.peak_burn:.1f}x); "
                       f"{_usd(self.spent)} of {_usd(self.budget.amount_usd)} spent ({details['pct']:.0f}%)")
        return Alert(alert_id=incident.alert_id, type="budget_burn", status=status,  # type: ignore[arg-type]
                     severity=incident.severity, key=self.key,  # type: ignore[arg-type]
                     window_start=window_start, window_end=now, triggered_at=now, observed=round(observed, 6),
                     expected=round(expected, 6), score=score, summary=summary, details=details)

    # -- projection and state --------------------------------------------------------------
    def projected_exhaustion(self, now: float | None = None) -> str | None:
        """RFC 3339 time at which the budget runs out at the recent pace (when already exhausted:
        when it ran out); ``None`` when it does not run out within the period."""
        if self._exhausted_at is not None:
            return rfc3339(self._exhausted_at)
        now = self._now if now is None else now
        if now is None or self._first_minute is None or self.period_end is None:
            return None
        span = min(self.projection_window_s, max(MINUTE, now - self._first_minute * MINUTE))
        pace = self.window_spend(int(span // MINUTE * MINUTE), now) / span
        remaining = self.budget.amount_usd - self.spent
        if pace <= 0:
            return None
        eta = now + remaining / pace
        return rfc3339(float(int(eta))) if eta < self.period_end else None

    def state(self) -> dict[str, Any]:
        """What ``GET /v1/budgets/{id}`` shows."""
        budget = self.budget
        out: dict[str, Any] = {"budget_id": budget.id, "name": budget.name, "amount_usd": budget.amount_usd,
                               "spent_usd": round(self.spent, 6), "pct": round(self.spent / budget.amount_usd * 100, 2),
                               "period": budget.period, "timezone": budget.timezone, "as_of": None,
                               "period_start": None, "period_end": None, "burn_rates": {},
                               "projected_exhaustion": None, "projected_period_spend_usd": None,
                               "thresholds_crossed_pct": sorted(self._crossed), "late_usd": round(self.late_usd, 6),
                               "open_incident": None}
        if self._now is None or self.period_start is None or self.period_end is None:
            return out
        now = self._now
        span = min(self.projection_window_s, max(MINUTE, now - (self._first_minute or 0) * MINUTE))
        pace = self.window_spend(int(span // MINUTE * MINUTE), now) / span
        out |= {"as_of": rfc3339(now), "period_start": rfc3339(self.period_start), "period_end": rfc3339(self.period_end),
                "burn_rates": {fmt_duration(w): round(self.burn_rate(w), 4) for w in self.windows()},
                "projected_exhaustion": self.projected_exhaustion(),
                "projected_period_spend_usd": round(self.spent + pace * max(0.0, self.period_end - now), 2),
                "rules_active": [name for name, on in self._active.items() if on]}
        if self._incident is not None:
            out["open_incident"] = {"alert_id": self._incident.alert_id, "severity": self._incident.severity,
                                    "since": rfc3339(self._incident.started),
                                    "rules_fired": list(self._incident.fired_rules)}
        return out


__all__ = ["BudgetTracker", "period_bounds"]
