"""Fan an alert out to every configured sink, concurrently, and report each outcome."""

from __future__ import annotations

import asyncio
import logging

from alerts.base import DeliveryResult, Sink
from schemas.alert import Alert

log = logging.getLogger("spendsentry.alerts")


class Dispatcher:
    """Delivers each alert to all sinks; a failing sink never blocks or hides the others."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    async def deliver(self, alert: Alert) -> list[DeliveryResult]:
        results = await asyncio.gather(*(self._one(sink, alert) for sink in self.sinks))
        for result in results:
            if result.ok:
                log.info("delivered %s %s to %s (%d attempt(s))", alert.alert_id, alert.status, result.sink, result.attempts)
            else:
                log.error("delivery of %s %s to %s failed: %s", alert.alert_id, alert.status, result.sink, result.error)
        return list(results)

    @staticmethod
    async def _one(sink: Sink, alert: Alert) -> DeliveryResult:
        try:
            return await sink.send(alert)
        except Exception as exc:  # a sink bug must not stop the other sinks or the worker
            log.exception("sink %s raised on %s", sink.name, alert.alert_id)
            return DeliveryResult(sink=sink.name, ok=False, error=f"{type(exc).__name__}: {exc}")

    async def aclose(self) -> None:
        for sink in self.sinks:
            await sink.aclose()
