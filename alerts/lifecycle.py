"""One alert per incident: turn per-bucket verdicts into firing/resolved alert records.

* **No flapping.** An incident resolves only after ``max(resolve_after, verdict.hold)`` consecutive
  buckets that are normal *and* settled (``verdict.settled``: the evidence that fired it, e.g. the
  CUSUM, is back near zero; for an incident of a known cause, that cause's own evidence:
  ``verdict.settled_causes``); a detector asks for a longer hold on a sparse key, where three quiet
  minutes say nothing. A key that fires again within ``reopen_s`` of resolving reopens the same
  incident (same ``alert_id`` and first window, ``details.reopened``), unless both name their
  causes and the causes differ (a retry storm after a prompt bloat is a new incident).
* **Escalation.** An anomalous bucket of an open incident whose impact crosses a higher severity
  threshold re-sends the incident as ``firing`` with the higher severity, the same ``alert_id`` and
  ``details.escalated_from`` (routing's gate admits exactly that repeat).
* **One incident per cause.** A detector that names the cause of an anomalous bucket
  (``verdict.cause``: ``volume`` for more requests, ``mix`` for what a request costs) keeps
  each cause apart: a prompt bloat that starts inside a runaway loop's incident on the same key
  opens an incident of its own (a new ``alert_id``, ``details.concurrent_with`` naming the open
  one) instead of vanishing into it. When the first resolves, the other carries on as the key's
  incident (:meth:`Lifecycle.on_causes`).
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
    #: the cause that opened it (``verdict.cause``; "" when the detector names none)
    cause: str = ""


def _describe(key: dict[str, str], observed: float, expected: float, start: float, end: float) -> str:
    who = key["model"] if list(key) == ["model"] else ", ".join(f"{k}={v}" for k, v in key.items())
    ratio = f" ({observed / expected:.1f}x)" if expected > 0 else ""
    window = f"{rfc3339(start)[11:16]}–{rfc3339(end)[11:16]} UTC"
    return f"{who} spend ${observed:,.2f} vs ${expected:,.2f} expected{ratio} in {window}"


def _split(verdict: Verdict, cause: str) -> tuple[Verdict, Verdict]:
    """(what ``verdict`` says about ``cause``, what it says about the other cause): a verdict of
    no known cause speaks for ``cause``; the part that is not anomalous is a calm verdict, settled
    as the bucket is. An anomalous bucket settles another cause's incident only through
    ``settled_causes``: a runaway loop firing minute after minute resolved the cost-per-request
    incident beside it every three minutes, and it fired anew (tuning seed 1: eight alerts)."""
    calm = Verdict(score=verdict.score, expected=verdict.expected, anomalous=False,
                   settled=verdict.settled and not verdict.anomalous, settled_causes=verdict.settled_causes,
                   hold=verdict.hold)
    mine = verdict if verdict.anomalous and verdict.cause in (cause, "") else None
    other = verdict if verdict.anomalous and verdict.cause not in (cause, "") else None
    if verdict.side is not None:
        if verdict.side.cause == cause:
            mine = mine or verdict.side
        else:
            other = other or verdict.side
    return mine or calm, other or calm


class Lifecycle:
    """Per-key incident state: the open incident, the last resolved one (for a reopen), and an
    incident of another cause opened while the first was open (``side``)."""

    #: a class default, so state written before it existed restores
    side: Incident | None = None

    def __init__(self, resolve_after: int = 3, reopen_s: float = 1800.0) -> None:
        self.resolve_after = resolve_after
        self.reopen_s = reopen_s
        self.incident: Incident | None = None
        self.last_resolved: Incident | None = None

    def to_state(self) -> dict[str, Any]:
        return {"resolve_after": self.resolve_after, "reopen_s": self.reopen_s,
                "incident": None if self.incident is None else asdict(self.incident),
                "last_resolved": None if self.last_resolved is None else asdict(self.last_resolved),
                "side": None if self.side is None else asdict(self.side)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Lifecycle:
        out = cls(int(state["resolve_after"]), float(state["reopen_s"]))
        out.incident = None if state["incident"] is None else Incident(**state["incident"])
        out.last_resolved = None if state["last_resolved"] is None else Incident(**state["last_resolved"])
        out.side = None if state.get("side") is None else Incident(**state["side"])
        return out

    def on_causes(self, **kwargs: Any) -> list[Alert]:
        """:meth:`on_verdict` with each cause apart (same arguments): while an incident opened by
        one cause is open, the other cause's evidence (``verdict.cause`` or ``verdict.side``) goes
        to an incident of its own, which becomes the key's incident when the first resolves."""
        verdict: Verdict = kwargs.pop("verdict")
        main = self.incident
        if main is not None and not main.cause and verdict.anomalous:
            main.cause = verdict.cause  # opened before its cause was known (a first burst minute)
        if main is None or not main.cause:
            alert = self.on_verdict(verdict=verdict, **kwargs)
            return [] if alert is None else [alert]
        mine, other = _split(verdict, main.cause)
        alerts = [self._advance("incident", mine, True, **kwargs)]
        if other.anomalous or self.side is not None:
            side = self._advance("side", other, False, **kwargs)
            if side is not None and side.status == "firing" and "concurrent_with" not in side.details:
                side.details["concurrent_with"] = main.alert_id
            alerts.append(side)
        if self.incident is None and self.side is not None:
            self.incident, self.side = self.side, None  # the other cause carries on as the key's incident
        return [a for a in alerts if a is not None]

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
        return self._advance("incident", verdict, True, alert_type=alert_type, key=key, start=start, end=end,
                             observed=observed, policy=policy, details=details)

    def _advance(self, slot: str, verdict: Verdict, reopen: bool, *, alert_type: str, key: dict[str, str],
                 start: float, end: float, observed: float, policy: SeverityPolicy, details: dict) -> Alert | None:
        """Advance the incident in ``slot`` (``incident`` or ``side``) by one verdict; a main
        incident may ``reopen`` the last resolved one."""
        incident: Incident | None = getattr(self, slot)
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
                recent = self.last_resolved if reopen else None
                # the same story (a cause neither names counts as the same): a retry storm minutes
                # after a prompt bloat resolved is news of its own, not that incident again
                if (recent is not None and not recent.silent and start - recent.resolved_at <= self.reopen_s
                        and (not recent.cause or not verdict.cause or recent.cause == verdict.cause)):
                    incident = Incident(recent.alert_id, recent.window_start, max(severity, recent.severity, key=_rank),
                                        peak_observed=max(observed, recent.peak_observed))
                    extra["reopened"] = True
                else:
                    incident = Incident(alert_id_for(alert_type, key, start), start, severity, peak_observed=observed)
                incident.cause = verdict.cause
                setattr(self, slot, incident)
            return Alert(
                alert_id=incident.alert_id, type=alert_type, status="firing", severity=incident.severity,  # type: ignore[arg-type]
                key=dict(key), window_start=incident.window_start, window_end=end, triggered_at=end,
                observed=round(observed, 6), expected=round(verdict.expected, 6), score=round(verdict.score, 4),
                summary=_describe(key, observed, verdict.expected, start, end),
                details={**details, **extra},
            )
        if incident is None:
            return None
        settled = verdict.settled or incident.cause in verdict.settled_causes  # ("" is never one)
        incident.normal_streak = incident.normal_streak + 1 if settled else 0
        if incident.normal_streak < max(self.resolve_after, verdict.hold):
            return None
        return self._resolve(incident, end, alert_type=alert_type, key=key, observed=observed,
                             expected=verdict.expected, score=verdict.score, summary="resolved: ",
                             details={**details, "peak_observed": round(incident.peak_observed, 6)}, slot=slot)

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
        if self.side is not None:  # another cause's incident is not what the operator judged
            self.incident, self.side = self.side, None
        return alert

    def _resolve(self, incident: Incident, at: float, *, alert_type: str, key: dict[str, str], observed: float,
                 expected: float, score: float, summary: str, details: dict, slot: str = "incident") -> Alert | None:
        setattr(self, slot, None)
        incident.resolved_at = at
        if slot == "incident":
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
