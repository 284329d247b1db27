"""The sink protocol: one role, one method. Every sink passes tests/alerts/test_sink_contract.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from schemas.alert import Alert


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


@runtime_checkable
class Sink(Protocol):
    """Delivers alerts somewhere. ``send`` never raises for delivery failures: it returns them."""

    name: str

    async def send(self, alert: Alert) -> DeliveryResult: ...

    async def aclose(self) -> None: ...
