"""The sink protocol: one role, one method. Every sink passes tests/alerts/test_sink_contract.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from schemas.alert import Alert, rfc3339


@dataclass(slots=True)
class DeliveryResult:
    """What one delivery of one alert to one sink came to (after the sink's own retries)."""

    sink: str
    ok: bool
    attempts: int = 1
    status: int | None = None
    latency_s: float = 0.0
    error: str | None = None
    #: sink-specific reference kept for idempotency and updates, e.g. {"channel": "C1", "ts": "..."}
    ref: dict[str, Any] = field(default_factory=dict)
    #: True when trying again later cannot help (410 Gone, other 4xx, bad auth): fix or disable the sink
    permanent: bool = False
    #: True when the endpoint asked to be disabled (webhook 410 Gone): stop sending to this destination
    disable: bool = False
    #: one :meth:`DeliveryAttempt.to_dict` per HTTP attempt, oldest first
    attempts_log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sink": self.sink, "ok": self.ok, "attempts": self.attempts, "http_status": self.status,
                "latency_s": round(self.latency_s, 6), "error": self.error, "ref": dict(self.ref),
                "permanent": self.permanent, "disable": self.disable, "attempts_log": list(self.attempts_log)}


@dataclass(slots=True)
class DeliveryAttempt:
    """One HTTP attempt of one delivery: what the delivery log keeps."""

    attempt: int
    at: float
    status: int | None
    latency_s: float
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"attempt": self.attempt, "at": rfc3339(self.at), "status": self.status,
                "latency_s": round(self.latency_s, 6), "error": self.error}


@runtime_checkable
class Sink(Protocol):
    """Delivers alerts somewhere. ``send`` never raises for delivery failures: it returns them."""

    name: str

    async def send(self, alert: Alert) -> DeliveryResult: ...

    async def aclose(self) -> None: ...
