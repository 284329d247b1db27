"""What the HTTP API reads and asks of the worker: one narrow protocol, so the API never imports
the worker (the composition root, :mod:`streams.app`, hands it the worker's runtime)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Protocol

from schemas.budget import Budget
from schemas.usage import UsageEvent
from streams.config import Settings
from streams.core.engine import Counters, Engine
from streams.core.forecast import Forecast
from streams.core.gpu_ledger import GpuLedger
from streams.core.histogram import Histogram
from streams.sources.normalize import Normalizer


class DeliveryState(Protocol):
    """The alert delivery service as the API sees it: stores, outcomes, pending retries."""

    subscriptions: MutableMapping[str, Any]
    recent: MutableMapping[str, Any]
    outcomes: Mapping[tuple[str, str], int]
    latency: Histogram

    def pending(self) -> Iterable[Any]: ...


class EnginesState(Protocol):
    """The per-partition engines this worker runs."""

    engines: Mapping[int, Engine]


class GpuState(Protocol):
    """The GPU ledgers of this worker's partitions."""

    ledgers: Mapping[int, GpuLedger]

    def view(self, window_s: float) -> dict[str, Any]: ...


class HealthState(Protocol):
    """The worker's own condition: agent restarts by agent name."""

    restarts: Mapping[str, int]


class ApiState(Protocol):
    """Everything a route, the metrics page or a spend view may read or ask of the worker."""

    settings: Settings
    delivery: DeliveryState
    engines: EnginesState
    budgets_store: MutableMapping[str, Any]
    deadletters: int
    alerts_published: Mapping[tuple[str, str, str], int]
    formats: set[str]
    normalize: Normalizer | None
    gpu: GpuState | None
    health: HealthState

    def ready(self) -> bool: ...

    def problems(self) -> list[str]: ...

    def progress_ages(self) -> dict[int, float]: ...

    async def flush_writes(self) -> None: ...

    def counters(self) -> Counters: ...

    def consumer_lag(self) -> dict[int, int]: ...

    def budget_view(self, budget: Budget) -> dict[str, Any]: ...

    async def feedback(self, alert_id: str, action: Any, *, user: Any = None) -> tuple[int, dict[str, Any]]: ...

    def recent_alerts(self, limit: int, after: tuple | None = None) -> tuple[list[dict[str, Any]], str | None]: ...

    async def send_usage(self, events: list[UsageEvent]) -> None: ...

    def budget_forecast(self, budget_id: str) -> Forecast | None: ...
