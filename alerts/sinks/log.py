"""The fallback sink: alerts go to the log when no Slack or webhook sink is configured."""

from __future__ import annotations

import logging

from alerts.sink_protocol import DeliveryResult
from schemas.alert import Alert

log = logging.getLogger("spendsentry.alerts.log")


class LogSink:
    """Logs firing alerts at WARNING and resolved ones at INFO; delivery always succeeds."""

    def __init__(self, *, name: str = "log", logger: logging.Logger | None = None) -> None:
        self.name = name
        self._log = logger if logger is not None else log

    async def send(self, alert: Alert) -> DeliveryResult:
        level = logging.WARNING if alert.status == "firing" else logging.INFO
        self._log.log(
            level,
            "alert %s %s [%s] %s: observed $%.2f vs expected $%.2f (score %.3g) - %s",
            alert.alert_id, alert.status.upper(), alert.severity, alert.key_text or "-",
            alert.observed, alert.expected, alert.score, alert.summary,
            extra={"alert_id": alert.alert_id, "alert_status": alert.status, "sink": self.name},
        )
        return DeliveryResult(sink=self.name, ok=True, ref={"alert_id": alert.alert_id})

    async def aclose(self) -> None:
        """Nothing to release."""
