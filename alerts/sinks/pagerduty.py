"""PagerDuty Events API v2: trigger on firing, resolve on resolved, ``dedup_key`` = alert id.

``POST {base_url}/v2/enqueue``. 202 = accepted; 400 (invalid event) is final; 429 and 5xx are
retried per the :class:`~alerts.retry.RetryPolicy` (``Retry-After`` honoured); other 4xx are
final (the loop is :class:`alerts.sinks.http.HttpPostSink`'s). Severity maps one to one (critical, warning, info; PagerDuty's ``error`` is unused).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from alerts.retry import RetryPolicy, Sleep
from alerts.sinks.http import HttpPostSink
from schemas.alert import Alert, rfc3339
from schemas.errors import ConfigError

SUMMARY_MAX = 1024
DEDUP_KEY_MAX = 255
MAX_BODY = 512 * 1024
SEVERITY = {"critical": "critical", "warning": "warning", "info": "info"}


def pagerduty_event(alert: Alert, routing_key: str, *, source: str = "spendsentry") -> dict[str, Any]:
    """The Events v2 body for one alert state change."""
    dedup = alert.alert_id[:DEDUP_KEY_MAX]
    if alert.status == "resolved":
        return {"routing_key": routing_key, "event_action": "resolve", "dedup_key": dedup}
    summary = alert.summary or f"{alert.type} {alert.key_text}"
    payload: dict[str, Any] = {
        "summary": summary if len(summary) <= SUMMARY_MAX else summary[:SUMMARY_MAX - 1] + "…",
        "source": source, "severity": SEVERITY.get(alert.severity, "info"),
        "timestamp": rfc3339(alert.triggered_at), "class": alert.type,
        "custom_details": alert.to_dict(),
    }
    component = alert.key.get("model")
    group = alert.key.get("team") or alert.key.get("service")
    if component:
        payload["component"] = component
    if group:
        payload["group"] = group
    return {"routing_key": routing_key, "event_action": "trigger", "dedup_key": dedup, "payload": payload,
            "client": "spendsentry"}


class PagerDutySink(HttpPostSink):
    """One PagerDuty service (integration/routing key). ``send`` never raises for delivery failures."""

    answered_by = "PagerDuty"

    def __init__(
        self,
        routing_key: str,
        *,
        base_url: str = "https://events.pagerduty.com",
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        name: str = "pagerduty",
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(routing_key, str) or len(routing_key) != 32:
            raise ConfigError("pagerduty routing key must be the 32-character Events v2 integration key")
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigError(f"pagerduty base_url must be http(s)://host: {base_url!r}")
        super().__init__(base_url.rstrip("/") + "/v2/enqueue", name=name, client=client, retry=retry,
                         timeout=timeout, sleep=sleep, clock=clock)
        self._key = routing_key

    def event(self, alert: Alert) -> dict[str, Any]:
        """The Events v2 body; over ``MAX_BODY`` the bulky details go, not the page."""
        event = pagerduty_event(alert, self._key)
        if len(orjson.dumps(event)) > MAX_BODY:
            event["payload"]["custom_details"] = {"alert_id": alert.alert_id, "note": "details too large"}
        return event

    def reference(self, alert: Alert) -> dict[str, str]:
        event = pagerduty_event(alert, self._key)
        return {"dedup_key": event["dedup_key"], "event_action": event["event_action"]}

    def request(self, alert: Alert, now: float) -> tuple[bytes, dict[str, str]]:
        return orjson.dumps(self.event(alert)), {"content-type": "application/json"}
