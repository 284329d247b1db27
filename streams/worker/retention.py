"""Age-based retention for the delivery tables that grow with every alert: ``recent`` (what
``GET /v1/alerts`` shows), ``delivered`` (the replay guard) and ``sent`` (the notification gate).

An entry whose last activity is older than ``SPENDSENTRY_RETENTION_SECONDS`` (default 30 days)
is deleted, by the worker that owns its alert's partition only, so one delete goes to the
changelog per entry. A ``delivered`` slot written before it carried its time (value ``true``)
goes once its alert's ``recent`` record has gone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import faust

from streams.worker.runtime import Runtime

log = logging.getLogger("spendsentry.streams")

#: how often the worker prunes (a pass reads every entry of the three tables once)
PRUNE_EVERY_S = 600.0


def last_activity(record: dict[str, Any]) -> float:
    """When an alert record last changed: its alert's time or its latest delivery attempt."""
    times = [float(record["alert"].get("triggered_at") or 0.0)]
    times += [float(d.get("at") or 0.0) for d in record.get("deliveries", [])]
    return max(times)


def prune(recent: MutableMapping[str, Any], delivered: MutableMapping[str, Any], sent: MutableMapping[str, Any], *,
          cutoff: float, owns: Callable[[str], bool]) -> dict[str, int]:
    """Delete entries older than ``cutoff`` of alerts ``owns`` says are this worker's; counts per table."""
    removed = {"recent": 0, "delivered": 0, "sent": 0}
    for alert_id in list(recent):
        record = recent.get(alert_id)
        if record is not None and owns(alert_id) and last_activity(record) < cutoff:
            del recent[alert_id]
            removed["recent"] += 1
    for slot in list(delivered):
        alert_id = slot.split(":", 1)[0]
        at = delivered.get(slot)
        old = at < cutoff if isinstance(at, (int, float)) and not isinstance(at, bool) else alert_id not in recent
        if at is not None and owns(alert_id) and old:
            del delivered[slot]
            removed["delivered"] += 1
    for slot in list(sent):
        entry = sent.get(slot)
        alert_id = slot.rsplit("|", 1)[-1]
        if entry is not None and owns(alert_id) and float(entry.get("at") or 0.0) < cutoff:
            del sent[slot]
            removed["sent"] += 1
    return removed


def register_retention(app: faust.App, runtime: Runtime) -> None:
    """A timer that prunes the delivery tables every :data:`PRUNE_EVERY_S`."""

    @app.timer(interval=PRUNE_EVERY_S)
    async def prune_delivery_tables() -> None:
        if not runtime.ready():
            return
        delivery = runtime.delivery
        removed = prune(delivery.recent, delivery.delivered, delivery.gate.sent,
                        cutoff=time.time() - runtime.settings.retention_s, owns=runtime.owns_alert)
        if any(removed.values()):
            log.info("retention: removed %s entries older than %.0f s", removed, runtime.settings.retention_s)
