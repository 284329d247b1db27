"""One alert per incident: turn per-bucket verdicts into firing/resolved alert records.

* **No flapping.** An incident resolves only after ``max(resolve_after, verdict.hold)`` consecutive
  buckets that are normal *and* settled (``verdict.settled``: the evidence that fired it, e.g. the
  CUSUM, is back near zero); a detector asks for a longer hold on a sparse key, where three quiet
  minutes say nothing. A key that fires again within ``reopen_s`` of resolving reopens the same
  incident: same ``alert_id`` and first window, ``details.reopened``.
* **Escalation.** An anomalous bucket of an open incident whose impact crosses a higher severity
  threshold re-sends the incident as ``firing`` with the higher severity, the same ``alert_id`` and
  ``details.escalated_from`` (routing's gate admits exactly that repeat).
* **Silence.** The engine may mark an incident ``silent`` when a related key already tells the
  story (see ``Engine._merge``): its escalations and resolution are then not emitted either.

State is plain data (:meth:`Lifecycle.to_state` / :meth:`Lifecycle.from_state`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from detectors.base import Verdict
from schemas.alert import SEVERITIES, Alert, alert_id_for, rfc3339


def _rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


@dataclass(frozen=True, slots=True)
class SeverityPolicy:
    """Severity from the dollar impact, projected per hour: a $3 blip never pages."""

    warning_usd_per_hour: float = 10.0
    critical_usd_per_hour: float = 100.0

    def severity(self, excess_usd: float, bucket_seconds: float) -> str:
        per_hour = excess_usd * 3600.0 / bucket_seconds
        if per_hour >= self.critical_usd_per_hour:
            return "critical"
        if per_hour >= self.warning_usd_per_hour:
            return "warning"
        return "info"


@dataclass(slots=True)
class Incident:
    alert_id: str
    window_start: float
    severity: str
    normal_streak: int = 0
    peak_observed: float = 0.0
    silent: bool = False
    #: the end of the bucket that resolved it (set once resolved; kept for a reopen)
    resolved_at: float = 0.0


def _describe(key: dict[str, str], observed: float, expected: float, start: float, end: float) -> str:
    who = key["model"] if list(key) == ["model"] else ", ".join(f"{k}={v}" for k, v in key.items())
    ratio = f" ({observed / expected:.1f}x)" if expected > 0 else ""
    window = f"{rfc3339(start)[11:16]}–{rfc3339(end)[11:16]} UTC"
    return f"{who} spend ${observed:,.2f} vs ${expected:,.2f} expected{ratio} in {window}"


class Lifecycle:
    """Per-key incident state: the open incident, and the last resolved one (for a reopen)."""

    def __init__(self, resolve_after: int = 3, reopen_s: float = 1800.0) -> None:
        self.resolve_after = resolve_after
        self.reopen_s = reopen_s
        self.incident: Incident | None = None
        self.last_resolved: Incident | None = None

    def to_state(self) -> dict[str, Any]:
        return {"resolve_after": self.resolve_after, "reopen_s": self.reopen_s,
                "incident": None if self.incident is None else asdict(self.incident),
                "last_resolved": None if self.last_resolved is None else asdict(self.last_resolved)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Lifecycle:
        out = cls(int(state["resolve_after"]), float(state["reopen_s"]))
        out.incident = None if state["incident"] is None else Incident(**state["incident"])
        out.last_resolved = None if state["last_resolved"] is None else Incident(**state["last_resolved"])
        return out

    def on_verdict(
        self,
        *,
        alert_type: str,
        key: dict[str, str],
        start: float,
        end: float,
        observed: float,
        verdict: Verdict,
        policy: SeverityPolicy,
        details: dict,
    ) -> Alert | None:
        """Feed one closed bucket's verdict; return an alert when the incident changes state."""
        incident = self.incident
        if verdict.anomalous:
            severity = policy.severity(observed - verdict.expected, end - start)
            extra = {"reason": verdict.reason, **({"driver": verdict.driver} if verdict.driver else {})}
            if incident is not None:
                incident.normal_streak = 0
                incident.peak_observed = max(incident.peak_observed, observed)
                if _rank(severity) <= _rank(incident.severity):
                    return None
                extra["escalated_from"] = incident.severity
                incident.severity = severity
                if incident.silent:
                    return None
            else:
                recent = self.last_resolved
                if recent is not None and not recent.silent and start - recent.resolved_at <= self.reopen_s:
                    incident = Incident(recent.alert_id, recent.window_start, max(severity, recent.severity, key=_rank),
                                        peak_observed=max(observed, recent.peak_observed))
                    extra["reopened"] = True
                else:
                    incident = Incident(alert_id_for(alert_type, key, start), start, severity, peak_observed=observed)
                self.incident = incident
            return Alert(
                alert_id=incident.alert_id, type=alert_type, status="firing", severity=incident.severity,  # type: ignore[arg-type]
                key=dict(key), window_start=incident.window_start, window_end=end, triggered_at=end,
                observed=round(observed, 6), expected=round(verdict.expected, 6), score=round(verdict.score, 4),
                summary=_describe(key, observed, verdict.expected, start, end),
                details={**details, **extra},
            )
        if incident is None:
            return None
        incident.normal_streak = incident.normal_streak + 1 if verdict.settled else 0
        if incident.normal_streak < max(self.resolve_after, verdict.hold):
            return None
        return self._resolve(incident, end, alert_type=alert_type, key=key, observed=observed,
                             expected=verdict.expected, score=verdict.score, summary="resolved: ",
                             details={**details, "peak_observed": round(incident.peak_observed, 6)})

    def resolve_now(self, *, alert_type: str, key: dict[str, str], at: float, observed: float, expected: float,
                    reason: str) -> Alert | None:
        """Close the open incident at once (operator feedback), with a resolved alert saying why."""
        incident = self.incident
        if incident is None:
            return None
        alert = self._resolve(incident, at, alert_type=alert_type, key=key, observed=observed, expected=expected,
                              score=0.0, summary=f"resolved ({reason}): ",
                              details={"feedback": reason, "peak_observed": round(incident.peak_observed, 6)})
        self.last_resolved = None  # the operator said it is normal: a new rise is a new incident
        return alert

    def _resolve(self, incident: Incident, at: float, *, alert_type: str, key: dict[str, str], observed: float,
                 expected: float, score: float, summary: str, details: dict) -> Alert | None:
        self.incident = None
        incident.resolved_at = at
        self.last_resolved = incident
        if incident.silent:
            return None
        return Alert(
            alert_id=incident.alert_id, type=alert_type, status="resolved", severity=incident.severity,  # type: ignore[arg-type]
            key=dict(key), window_start=incident.window_start, window_end=at, triggered_at=at,
            observed=round(observed, 6), expected=round(expected, 6), score=round(score, 4),
            summary=summary + _describe(key, observed, expected, incident.window_start, at),
            details=details,
        )
