"""Long-running delivery retries without blocking, undeliverable records, and redelivery.

A sink's ``send`` does the short, inline retries (seconds, :class:`~alerts.retry.ExponentialBackoff`).
When that still fails with a retryable error, :class:`RetryQueue` keeps a :class:`PendingDelivery`
and hands it back when due, following a :class:`RetrySchedule` (Standard Webhooks: 5 s, 5 m,
30 m, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h after the previous round; jittered). The worker's timer
calls ``run_due(now, send)``, which sends all due deliveries concurrently: a dead endpoint waits
in the queue, never in front of other alerts. When the schedule (or ``period_s``) is used up, or
the failure is permanent (400, 401, 410 ...), the delivery becomes an :class:`UndeliverableRecord`
for topic ``<prefix>.alerts.undeliverable``; :func:`redeliver` sends such records again
(``spendsentry redeliver``). ``pending`` is any mutable mapping (a Faust table in the worker).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.sink_protocol import DeliveryResult, Sink
from schemas.alert import Alert, rfc3339
from schemas.errors import ConfigError
from schemas.subscription import Destination

#: Standard Webhooks' schedule after the first (immediate) attempt, in seconds
STANDARD_WEBHOOKS_DELAYS: tuple[float, ...] = (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """Delay before retry round ``n`` (1-based), or ``None`` once the schedule or ``period_s`` is spent.

    ``period_s`` bounds the whole effort, measured from the first attempt (default: the sum of
    ``delays``, about 75.5 h for the Standard Webhooks schedule).
    """

    delays: tuple[float, ...] = STANDARD_WEBHOOKS_DELAYS
    period_s: float | None = None
    jitter: float = 0.1
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.delays or any(d < 0 for d in self.delays):
            raise ConfigError("retry schedule delays must be a non-empty list of seconds >= 0")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"retry schedule jitter must be within 0..1, got {self.jitter}")

    @property
    def total_s(self) -> float:
        return self.period_s if self.period_s is not None else float(sum(self.delays))

    def delay(self, round_no: int, elapsed_s: float) -> float | None:
        if round_no > len(self.delays):
            return None
        base = self.delays[round_no - 1]
        wait = max(0.0, base * (1.0 + self.jitter * (2.0 * self.rng() - 1.0)))
        if elapsed_s + wait > self.total_s + 1e-9:
            return None
        return wait


def mask_destination(destination: dict[str, Any]) -> dict[str, Any]:
    return Destination.from_dict(destination).to_dict(masked=True)


@dataclass(slots=True)
class PendingDelivery:
    """A delivery waiting for its next retry round. Plain data: store ``to_dict()`` in a table."""

    alert: dict[str, Any]
    #: masked (no URL path or query, no secret): each round finds the destination again by
    #: ``destination_key`` among the configured ones, so no table holds a credential
    destination: dict[str, Any]
    destination_key: str
    sink: str
    first_attempt_at: float
    next_at: float
    round: int = 1
    attempts_log: list[dict[str, Any]] = field(default_factory=list)
    last_error: str | None = None

    @property
    def slot(self) -> str:
        return delivery_slot(self.destination_key, self.alert["alert_id"], self.alert["status"])

    def to_dict(self) -> dict[str, Any]:
        return {"alert": self.alert, "destination": self.destination, "destination_key": self.destination_key,
                "sink": self.sink, "first_attempt_at": self.first_attempt_at, "next_at": self.next_at,
                "round": self.round, "attempts_log": self.attempts_log, "last_error": self.last_error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PendingDelivery:
        if "destination_key" not in data:  # written before destinations were masked: whole
            dest = Destination.from_dict(data["destination"])
            data = {**data, "destination": dest.to_dict(masked=True), "destination_key": dest.key}
        return cls(**data)


@dataclass(slots=True)
class UndeliverableRecord:
    """What goes to ``spendsentry.alerts.undeliverable``: the alert, where it could not go (masked),
    every attempt, and why we stopped. ``destination_key`` identifies the destination again for
    :func:`redeliver` (it holds no secret)."""

    alert: dict[str, Any]
    destination: dict[str, Any]
    destination_key: str
    sink: str
    reason: str
    first_attempt_at: float
    gave_up_at: float
    attempts: list[dict[str, Any]] = field(default_factory=list)
    disable: bool = False
    subscription_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"alert": self.alert, "destination": self.destination, "destination_key": self.destination_key,
                "sink": self.sink, "reason": self.reason, "first_attempt_at": rfc3339(self.first_attempt_at),
                "gave_up_at": rfc3339(self.gave_up_at), "attempts": self.attempts, "disable": self.disable,
                "subscription_id": self.subscription_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UndeliverableRecord:
        values = dict(data)
        for name in ("first_attempt_at", "gave_up_at"):
            if isinstance(values[name], str):
                values[name] = datetime.fromisoformat(values[name].replace("Z", "+00:00")).timestamp()
        return cls(**values)


def delivery_slot(destination: str | Destination, alert_id: str, status: str) -> str:
    key = destination.key if isinstance(destination, Destination) else destination
    return f"{key}|{alert_id}|{status}"


SendFn = Callable[[Destination, Alert], Awaitable[DeliveryResult]]
#: a destination key -> the configured destination (secrets and all), ``None`` when it is gone
Lookup = Callable[[str], "Destination | None"]


class RetryQueue:
    """Pending long-period retries. Pure bookkeeping plus one async ``run_due``; injected clock.

    ``pending`` holds destinations masked; ``lookup`` finds one again by its key when its round is
    due (the worker's: the configured subscriptions and defaults; by default: the destinations this
    queue was handed). A destination no longer found is given up on."""

    def __init__(self, schedule: RetrySchedule | None = None, *,
                 pending: MutableMapping[str, dict[str, Any]] | None = None,
                 clock: Callable[[], float] = time.time, lookup: Lookup | None = None) -> None:
        self.schedule = schedule or RetrySchedule()
        self.pending: MutableMapping[str, dict[str, Any]] = pending if pending is not None else {}
        self.clock = clock
        self._handed: dict[str, Destination] = {}
        self.lookup: Lookup = lookup or self._handed.get

    def on_result(self, alert: Alert, destination: Destination, result: DeliveryResult, *,
                  now: float | None = None, subscription_id: str | None = None,
                  ) -> PendingDelivery | UndeliverableRecord | None:
        """Record the outcome of a first (inline) delivery: ``None`` when delivered, else what was queued
        or given up on. A newer status of the same alert supersedes a pending older one."""
        now = self.clock() if now is None else now
        if result.ok:
            return None
        self._handed[destination.key] = destination
        log = list(result.attempts_log) or [{"attempt": 1, "at": rfc3339(now), "status": result.status,
                                             "latency_s": result.latency_s, "error": result.error}]
        item = PendingDelivery(alert.to_dict(), destination.to_dict(masked=True), destination.key, result.sink,
                               now, now, 1, log, result.error)
        return self._advance(item, result, now, subscription_id)

    def _advance(self, item: PendingDelivery, result: DeliveryResult, now: float,
                 subscription_id: str | None) -> PendingDelivery | UndeliverableRecord:
        wait = None if result.permanent else self.schedule.delay(item.round, now - item.first_attempt_at)
        if wait is None:
            self.pending.pop(item.slot, None)
            reason = (result.error or "failed") if result.permanent else \
                f"gave up after {len(item.attempts_log)} attempt(s) over {now - item.first_attempt_at:,.0f}s: " \
                f"{result.error}"
            return UndeliverableRecord(item.alert, item.destination, item.destination_key, item.sink, reason,
                                       item.first_attempt_at, now, item.attempts_log, result.disable, subscription_id)
        item.next_at = now + wait
        item.last_error = result.error
        self.pending[item.slot] = item.to_dict()
        return item

    def firing_pending(self, destination: str | Destination, alert_id: str) -> PendingDelivery | None:
        """The firing state of ``alert_id`` still waiting for a retry round to ``destination`` (or
        its key), if any."""
        data = self.pending.get(delivery_slot(destination, alert_id, "firing"))
        return None if data is None else PendingDelivery.from_dict(data)

    def queue_behind(self, alert: Alert, destination: Destination, *, now: float | None = None) -> PendingDelivery:
        """Queue a resolved state behind its pending firing: sent right after the firing goes
        through, never before it (an incident tool must see trigger, then resolve)."""
        now = self.clock() if now is None else now
        firing = self.firing_pending(destination, alert.alert_id)
        self._handed[destination.key] = destination
        item = PendingDelivery(alert.to_dict(), destination.to_dict(masked=True), destination.key, destination.key,
                               now, firing.next_at if firing else now, 1, [], "waiting behind its firing state")
        self.pending[item.slot] = item.to_dict()
        return item

    def due(self, now: float | None = None) -> list[PendingDelivery]:
        now = self.clock() if now is None else now
        items = []
        for slot, value in list(self.pending.items()):
            item = PendingDelivery.from_dict(value)
            if slot != item.slot:  # written under the unmasked key of old: moved to its own
                self.pending.pop(slot, None)
                self.pending[item.slot] = item.to_dict()
            items.append(item)
        return sorted((i for i in items if i.next_at <= now), key=lambda i: i.next_at)

    def next_due(self) -> float | None:
        return min((float(v["next_at"]) for v in self.pending.values()), default=None)

    async def run_due(self, send: SendFn, now: float | None = None,
                      ) -> tuple[list[tuple[PendingDelivery, DeliveryResult]], list[UndeliverableRecord]]:
        """Send every due delivery; per (destination, alert) in order (firing before resolved),
        different ones concurrently. Returns (delivered/failed results, gave-up records)."""
        now = self.clock() if now is None else now
        chains: dict[tuple[str, str], list[PendingDelivery]] = {}
        for item in self.due(now):
            chains.setdefault((item.sink, item.alert["alert_id"]), []).append(item)
        for chain in chains.values():
            chain.sort(key=lambda i: i.alert["status"] != "firing")

        async def one(item: PendingDelivery) -> DeliveryResult:
            destination = self.lookup(item.destination_key)
            if destination is None:
                return DeliveryResult(sink=item.sink, ok=False, attempts=0, permanent=True,
                                      error=f"destination {item.destination_key} is no longer configured")
            try:
                return await send(destination, Alert.from_dict(item.alert))
            except Exception as exc:  # a sink bug is a failed round, not a crashed timer
                return DeliveryResult(sink=item.sink, ok=False, error=f"{type(exc).__name__}: {exc}")

        async def run_chain(chain: list[PendingDelivery]) -> list[tuple[PendingDelivery, DeliveryResult | None]]:
            out: list[tuple[PendingDelivery, DeliveryResult | None]] = []
            for item in chain:
                if out and not (out[-1][1] and out[-1][1].ok):
                    out.append((item, None))  # its firing failed again: keep waiting behind it
                    continue
                out.append((item, await one(item)))
            return out

        done: list[tuple[PendingDelivery, DeliveryResult]] = []
        gave_up: list[UndeliverableRecord] = []
        for chain in await asyncio.gather(*(run_chain(c) for c in chains.values())):
            for item, result in chain:
                if result is None:
                    firing = self.firing_pending(item.destination_key, item.alert["alert_id"])
                    if firing is not None:
                        item.next_at = firing.next_at
                        self.pending[item.slot] = item.to_dict()
                    continue
                base = len(item.attempts_log)
                item.attempts_log += [dict(a, attempt=base + i + 1) for i, a in enumerate(result.attempts_log)] or [
                    {"attempt": base + 1, "at": rfc3339(now), "status": result.status, "latency_s": result.latency_s,
                     "error": result.error}]
                done.append((item, result))
                if result.ok:
                    self.pending.pop(item.slot, None)
                    continue
                item.round += 1
                outcome = self._advance(item, result, now, None)
                if isinstance(outcome, UndeliverableRecord):
                    gave_up.append(outcome)
        return done, gave_up


async def redeliver(records: Iterable[UndeliverableRecord],
                    sinks_for: Callable[[UndeliverableRecord], Sink | None]) -> list[DeliveryResult]:
    """Send undeliverable records again (``spendsentry redeliver``), one result per record, in order.

    ``sinks_for`` finds the sink for a record's ``destination_key`` (``None``: no longer configured).
    Records are sent concurrently; the receivers dedupe on the stable ``webhook-id``/``dedup_key``.
    """
    recs: Sequence[UndeliverableRecord] = list(records)

    async def one(record: UndeliverableRecord) -> DeliveryResult:
        sink = sinks_for(record)
        if sink is None:
            return DeliveryResult(sink=record.sink, ok=False, attempts=0, permanent=True,
                                  error=f"destination {record.destination_key} is no longer configured")
        try:
            return await sink.send(Alert.from_dict(record.alert))
        except Exception as exc:
            return DeliveryResult(sink=sink.name, ok=False, error=f"{type(exc).__name__}: {exc}")

    return list(await asyncio.gather(*(one(r) for r in recs)))
