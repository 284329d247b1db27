"""One alert per incident: turn per-bucket verdicts into firing/resolved alert records.

Hysteresis: an incident opens on the first anomalous bucket and resolves only after
``resolve_after`` consecutive normal buckets, so a burst that flickers does not page twice.
"""

from __future__ import annotations

from dataclasses import dataclass

from detectors.base import Verdict
from schemas.alert import Alert, alert_id_for, rfc3339


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


def _describe(key: dict[str, str], observed: float, expected: float, start: float, end: float) -> str:
    who = key.get("model") or ", ".join(f"{k}={v}" for k, v in key.items())
    ratio = f" ({observed / expected:.1f}x)" if expected > 0 else ""
    window = f"{rfc3339(start)[11:16]}–{rfc3339(end)[11:16]} UTC"
    return f"{who} spend ${observed:,.2f} vs ${expected:,.2f} expected{ratio} in {window}"


class Lifecycle:
    """Per-key incident state. Picklable; lives with the key's detector state."""

    def __init__(self, resolve_after: int = 3) -> None:
        self.resolve_after = resolve_after
        self.incident: Incident | None = None

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
            if incident is not None:
                incident.normal_streak = 0
                incident.peak_observed = max(incident.peak_observed, observed)
                return None
            severity = policy.severity(observed - verdict.expected, end - start)
            alert_id = alert_id_for(alert_type, key, start)
            self.incident = Incident(alert_id, start, severity, peak_observed=observed)
            return Alert(
                alert_id=alert_id, type=alert_type, status="firing", severity=severity,  # type: ignore[arg-type]
                key=dict(key), window_start=start, window_end=end, triggered_at=end,
                observed=round(observed, 6), expected=round(verdict.expected, 6), score=round(verdict.score, 4),
                summary=_describe(key, observed, verdict.expected, start, end),
                details={**details, "reason": verdict.reason, **({"driver": verdict.driver} if verdict.driver else {})},
            )
        if incident is None:
            return None
        incident.normal_streak += 1
        if incident.normal_streak < self.resolve_after:
            return None
        self.incident = None
        return Alert(
            alert_id=incident.alert_id, type=alert_type, status="resolved", severity=incident.severity,  # type: ignore[arg-type]
            key=dict(key), window_start=incident.window_start, window_end=end, triggered_at=end,
            observed=round(observed, 6), expected=round(verdict.expected, 6), score=round(verdict.score, 4),
            summary="resolved: " + _describe(key, observed, verdict.expected, start, end),
            details={**details, "peak_observed": round(incident.peak_observed, 6)},
        )

    def resolve_now(self, *, alert_type: str, key: dict[str, str], at: float, observed: float, expected: float,
                    reason: str) -> Alert | None:
        """Close the open incident at once (operator feedback), with a resolved alert saying why."""
        incident = self.incident
        if incident is None:
            return None
        self.incident = None
        return Alert(
            alert_id=incident.alert_id, type=alert_type, status="resolved", severity=incident.severity,  # type: ignore[arg-type]
            key=dict(key), window_start=incident.window_start, window_end=at, triggered_at=at,
            observed=round(observed, 6), expected=round(expected, 6), score=0.0,
            summary=f"resolved ({reason}): " + _describe(key, observed, expected, incident.window_start, at),
            details={"feedback": reason, "peak_observed": round(incident.peak_observed, 6)},
        )
