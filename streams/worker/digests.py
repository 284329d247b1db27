"""Spend digests in the worker: roll up closed spend, send each digest subscription's summary once
per closed period (built by :mod:`alerts.digest`).

Two global tables, JSON values:

``digest_spend``  ``"<partition>|<slot start>"`` -> ``[[segment dim values..., cost], ...]``: the
                  spend of each closed 15-minute slot of event time (every real time zone's
                  midnight falls on one), rolled up from the engines' segment buckets (which last
                  only ``SPENDSENTRY_SEGMENT_HORIZON_SECONDS``) and kept ``RETAIN_S`` (two weeks
                  and a day: a weekly digest and the week before). Global, so whichever worker sends
                  a digest sees every partition's spend.
``digests``       subscription id -> ``{"period", "at", "ok", "error"}``: the last period sent (or
                  given up on). Checked before every send, so a restarted worker never sends a
                  period twice.

:meth:`DigestService.tick` (the worker's ``send_digests`` timer, every minute) rolls up, then, for
each enabled digest subscription whose id this worker owns (its alerts-topic partition), sends
the newest period that closed at least ``SPENDSENTRY_DIGEST_DELAY_SECONDS`` ago unless that period
is already recorded. A failed send is tried again on the next tick unless it was permanent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from alerts.digest import build_digest, digest_blocks, fallback_text, last_closed_period, previous_period
from alerts.sink_protocol import DeliveryResult
from schemas.alert import Alert
from schemas.subscription import Subscription
from streams.config import Settings
from streams.core.engine import Engine
from streams.worker.alert_delivery import DeliveryService, JsonTable

log = logging.getLogger("spendsentry.digests")

SLOT_S = 900.0
RETAIN_S = 15 * 86_400.0


def rollup(buckets: Mapping[float, Mapping[tuple, list]], start: float, end: float) -> list[list[Any]]:
    """The segment rows of the buckets in ``[start, end)`` summed per segment key: ``[*key, cost]``."""
    sums: dict[tuple, float] = {}
    for bucket_start, rows in buckets.items():
        if start <= bucket_start < end:
            for key, row in rows.items():
                sums[key] = sums.get(key, 0.0) + row[0]
    return [[*key, round(cost, 6)] for key, cost in sorted(sums.items(), key=lambda kv: str(kv[0])) if cost]


class DigestService:
    def __init__(self, settings: Settings, tables: Mapping[str, Any], engines: Callable[[], Mapping[int, Engine]],
                 delivery: DeliveryService, owns: Callable[[str], bool],
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.engines = engines
        self.delivery = delivery
        self.owns = owns
        self.clock = clock
        self.spend = JsonTable(tables["digest_spend"])
        self.sent = JsonTable(tables["digests"])
        self.budgets = JsonTable(tables["budgets"])
        self.budget_state = JsonTable(tables["budget_state"])
        #: partition -> start of the next slot to roll up (none yet: from the oldest whole slot held)
        self._next_slot: dict[int, float] = {}

    # -- spend -----------------------------------------------------------------------------------
    def roll_up(self) -> None:
        """Write every closed slot of every engine's segments not written yet; drop expired slots."""
        newest = 0.0
        for partition, engine in self.engines().items():
            store = engine.segments
            if store is None or not engine.closed_until:
                continue
            closed = engine.closed_until
            newest = max(newest, closed)
            slot = self._next_slot.get(partition)
            if slot is None:  # after a start: only slots whose every bucket is still held
                slot = math.ceil((closed - store.config.horizon_s) / SLOT_S) * SLOT_S
            while slot + SLOT_S <= closed:
                key = f"{partition}|{slot:.0f}"
                if key not in self.spend:
                    self.spend[key] = rollup(store.buckets, slot, slot + SLOT_S)
                slot += SLOT_S
            self._next_slot[partition] = slot
        if newest:
            for key in list(self.spend):
                if float(key.split("|", 1)[1]) < newest - RETAIN_S:
                    del self.spend[key]

    def rows(self, start: float, end: float) -> list[tuple[dict[str, str], float]]:
        """``(segment key, cost)`` of every partition's slots in ``[start, end)``."""
        dims = self.settings.engine_config().attribution.dims  # type: ignore[union-attr]
        out = []
        for key in list(self.spend):
            if start <= float(key.split("|", 1)[1]) < end:
                for row in self.spend.get(key) or []:
                    out.append(({d: v for d, v in zip(dims, row[:-1]) if v}, float(row[-1])))
        return out

    # -- sending ---------------------------------------------------------------------------------
    def _subscriptions(self) -> Iterable[Subscription]:
        for value in list(self.delivery.subscriptions.values()):
            sub = Subscription.from_dict(value)
            if sub.digest is not None and sub.enabled:
                yield sub

    def _alerts(self) -> list[Alert]:
        return [Alert.from_dict(record["alert"]) for record in list(self.delivery.recent.values())]

    def digest_for(self, sub: Subscription, now: float) -> dict[str, Any]:
        """``sub``'s digest of its newest period closed at least the delay before ``now``."""
        zone = ZoneInfo(sub.timezone)
        period = last_closed_period(sub.digest or "daily", zone, now - self.settings.digest_delay_s)
        before = previous_period(period, zone)
        budgets = [(stored, self.budget_state.get(budget_id)) for budget_id, stored in list(self.budgets.items())]
        return build_digest(sub, period, before, spend=self.rows(period.start, period.end),
                            previous_spend=self.rows(before.start, before.end),
                            key_dims=self.settings.group_bys[0], budgets=budgets, alerts=self._alerts(),
                            base_url=self.settings.dashboard_base_url)

    async def tick(self) -> int:
        """Roll up, then send the digests that are due; returns how many went out."""
        self.roll_up()
        now = self.clock()
        sent = 0
        for sub in self._subscriptions():
            if not self.owns(sub.id):
                continue
            digest = self.digest_for(sub, now)
            label = digest["period"]["label"]
            if (self.sent.get(sub.id) or {}).get("period") == label:
                continue
            result = await self.send(sub, digest)
            if result.ok or result.permanent:
                self.sent[sub.id] = {"period": label, "at": now, "ok": result.ok, "error": result.error}
            if result.ok:
                sent += 1
            else:
                log.error("digest %s of %s to %s failed: %s", label, sub.id, sub.destination.key, result.error)
        return sent

    async def send(self, sub: Subscription, digest: dict[str, Any]) -> DeliveryResult:
        sink: Any = self.delivery.factory.sink_for(sub.destination)
        try:
            if sub.destination.type == "slack":
                return await sink.post_message(fallback_text(digest), digest_blocks(digest))
            return await sink.send_digest(digest)
        except Exception as exc:  # a refused destination or a sink bug fails this digest, not the worker
            log.exception("digest of %s to %s raised", sub.id, sub.destination.key)
            return DeliveryResult(sink=sub.destination.key, ok=False, error=f"{type(exc).__name__}: {exc}",
                                  permanent=True)
