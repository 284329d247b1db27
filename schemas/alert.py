"""The alert record: what detectors emit, what sinks deliver, what the API lists."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

Status = Literal["firing", "resolved"]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")


def alert_id_for(alert_type: str, key: dict[str, str], window_start: float) -> str:
    """Deterministic id from type, key and the incident's first window: same incident, same id."""
    canonical = "|".join([alert_type, *(f"{k}={key[k]}" for k in sorted(key)), f"{window_start:.0f}"])
    return "al_" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def rfc3339(epoch_seconds: float) -> str:
    """Epoch seconds to an RFC 3339 UTC string (``2026-11-27T06:00:00Z``)."""
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(slots=True)
class Alert:
    """One alert state change. Times are epoch seconds in event time.

    ``alert_id`` is the same for the firing and the resolved record of one incident;
    sinks derive their idempotency keys from ``(alert_id, status)``.
    """

    alert_id: str
    type: str
    status: Status
    severity: Severity
    key: dict[str, str]
    window_start: float
    window_end: float
    triggered_at: float
    observed: float
    expected: float
    score: float
    summary: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def impact_usd(self) -> float:
        return max(0.0, self.observed - self.expected)

    @property
    def key_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.key.items())

    def to_dict(self) -> dict[str, Any]:
        """JSON form: times as RFC 3339 strings, money in USD."""
        out = asdict(self)
        for name in ("window_start", "window_end", "triggered_at"):
            out[name] = rfc3339(out[name])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        values = dict(data)
        for name in ("window_start", "window_end", "triggered_at"):
            value = values[name]
            if isinstance(value, str):
                values[name] = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        return cls(**values)
