"""PagerDuty Events API v2: trigger on firing, resolve on resolved, ``dedup_key`` = alert id.

``POST {base_url}/v2/enqueue``. 202 = accepted; 400 (invalid event) is final; 429 and 5xx are
retried per the :class:`~alerts.retry.RetryPolicy` (``Retry-After`` honoured); other 4xx are
final. Severity maps one to one (critical, warning, info; PagerDuty's ``error`` is unused).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from alerts.base import DeliveryAttempt, DeliveryResult
from alerts.retry import ExponentialBackoff, RetryPolicy, Sleep, parse_retry_after
from schemas.alert import Alert, rfc3339
from schemas.errors import ConfigError, DeliveryError

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


class PagerDutySink:
    """One PagerDuty service (integration/routing key). ``send`` never raises for delivery failures."""

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
        self.name = name
        self.url = base_url.rstrip("/") + "/v2/enqueue"
        self._key = routing_key
        self._retry: RetryPolicy = retry if retry is not None else ExponentialBackoff()
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._closed = False

    async def send(self, alert: Alert) -> DeliveryResult:
        started = time.perf_counter()
        event = pagerduty_event(alert, self._key)
        body = orjson.dumps(event)
        if len(body) > MAX_BODY:  # keep the page: drop the bulky details, not the event
            event["payload"]["custom_details"] = {"alert_id": alert.alert_id, "note": "details too large"}
            body = orjson.dumps(event)
        ref = {"dedup_key": event["dedup_key"], "event_action": event["event_action"]}
        log: list[dict[str, Any]] = []
        attempt = 0
        while True:
            attempt += 1
            if self._closed:
                return self._fail(attempt - 1, started, ref, log, DeliveryError("sink is closed", sink=self.name,
                                                                                   retryable=False))
            now = self._clock()
            sent = time.perf_counter()
            retry_after = None
            try:
                response = await self._client.post(self.url, content=body, timeout=self._timeout,
                                                   headers={"content-type": "application/json"})
            except httpx.TransportError as exc:
                status: int | None = None
                error = DeliveryError(f"{type(exc).__name__}: {exc}".rstrip(": "), sink=self.name)
            except httpx.HTTPError as exc:
                error = DeliveryError(f"{type(exc).__name__}: {exc}", sink=self.name, retryable=False)
                log.append(DeliveryAttempt(attempt, now, None, time.perf_counter() - sent, str(error)).to_dict())
                return self._fail(attempt, started, ref, log, error)
            else:
                status = response.status_code
                if 200 <= status <= 299:
                    log.append(DeliveryAttempt(attempt, now, status, time.perf_counter() - sent).to_dict())
                    return DeliveryResult(sink=self.name, ok=True, attempts=attempt, status=status,
                                          latency_s=time.perf_counter() - started, ref=ref, attempts_log=log)
                retry_after = parse_retry_after(response.headers.get("retry-after"), now=now)
                snippet = response.text[:300].strip()
                error = DeliveryError(f"PagerDuty answered {status}" + (f": {snippet}" if snippet else ""),
                                      sink=self.name, status=status, retryable=status == 429 or status >= 500)
            log.append(DeliveryAttempt(attempt, now, status, time.perf_counter() - sent, str(error)).to_dict())
            wait = self._retry.delay(attempt, status=status, retry_after=retry_after) if error.retryable else None
            if wait is None:
                return self._fail(attempt, started, ref, log, error)
            await self._sleep(wait)

    def _fail(self, attempts: int, started: float, ref: dict[str, str], log: list[dict[str, Any]],
              error: DeliveryError) -> DeliveryResult:
        return DeliveryResult(sink=self.name, ok=False, attempts=attempts, status=error.status,
                              latency_s=time.perf_counter() - started, error=str(error),
                              permanent=not error.retryable, ref=ref, attempts_log=log)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
