"""Signed webhook delivery (Standard Webhooks v1): one POST per alert state change.

Body ``{"type": "spendsentry.alert.firing"|"spendsentry.alert.resolved", "timestamp": RFC 3339,
"data": alert.to_dict()}``. ``webhook-id`` is derived from ``(alert_id, status)`` so it is the
same on every retry and on a redelivery after a restart: receivers dedupe on it. The timestamp
and signature are made afresh for each attempt.

With ``cloudevents=True`` the body is a CloudEvents 1.0 structured event instead
(:mod:`alerts.cloudevents`, ``content-type: application/cloudevents+json``), signed the same way.
Every attempt is logged in ``DeliveryResult.attempts_log``. The sink's own retries are the short,
inline kind (seconds); retrying for hours is :class:`alerts.delivery.RetryQueue`'s job, so one
dead endpoint never holds up other deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

import httpx
import orjson

from alerts.base import DeliveryAttempt, DeliveryResult
from alerts.cloudevents import CONTENT_TYPE as CE_CONTENT_TYPE, cloudevent_body
from alerts.retry import ExponentialBackoff, RetryPolicy, Sleep, parse_retry_after
from alerts.signing import decode_secret, signed_headers
from schemas.alert import Alert, rfc3339
from schemas.errors import ConfigError, DeliveryError

EVENT_TYPES = {"firing": "spendsentry.alert.firing", "resolved": "spendsentry.alert.resolved"}


def webhook_id(alert: Alert) -> str:
    """The idempotency key of one alert state change: ``msg_`` + 24 hex of sha256(alert_id:status)."""
    return "msg_" + hashlib.sha256(f"{alert.alert_id}:{alert.status}".encode()).hexdigest()[:24]


def webhook_body(alert: Alert, timestamp: int) -> bytes:
    """The exact bytes that are signed and sent."""
    return orjson.dumps({"type": EVENT_TYPES[alert.status], "timestamp": rfc3339(timestamp), "data": alert.to_dict()})


def _describe(exc: Exception) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: how much of an endpoint's answer is read (only a snippet is kept for the delivery log)
MAX_RESPONSE_BYTES = 64 * 1024


class WebhookSink:
    """POSTs each alert to one endpoint, signed with that endpoint's ``whsec_`` secret.

    Retries follow ``retry`` (timeouts, connection errors, 429 with ``Retry-After``, 5xx);
    410 Gone is permanent and flagged so the endpoint can be disabled. ``send`` never raises for
    delivery failures. A client passed in is the caller's to close; one made here is closed by ``aclose``.
    """

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 10.0,
        name: str = "webhook",
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        cloudevents: bool = False,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"webhook url must be http(s)://host/...: {url!r}")
        decode_secret(secret)  # fail at start-up, not on the first alert
        self.url = url
        self.name = name
        self._secret = secret
        self._retry: RetryPolicy = retry if retry is not None else ExponentialBackoff()
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self.cloudevents = cloudevents
        self._closed = False

    def body(self, alert: Alert, timestamp: int) -> tuple[bytes, str]:
        """The bytes sent for ``alert`` and their content type."""
        if self.cloudevents:
            return cloudevent_body(alert, webhook_id(alert)), CE_CONTENT_TYPE
        return webhook_body(alert, timestamp), "application/json"

    async def send(self, alert: Alert) -> DeliveryResult:
        started = time.perf_counter()
        msg_id = webhook_id(alert)
        ref = {"webhook_id": msg_id}
        log: list[dict] = []
        attempt = 0
        while True:
            attempt += 1
            if self._closed:
                return self._fail(attempt - 1, started, ref, DeliveryError("sink is closed", sink=self.name,
                                                                              retryable=False), log)
            now = self._clock()
            timestamp = int(now)
            body, content_type = self.body(alert, timestamp)
            headers = {"content-type": content_type, **signed_headers(self._secret, msg_id, timestamp, body)}
            retry_after: float | None = None
            sent = time.perf_counter()
            try:
                status, response_headers, head = await self._post(body, headers)
            except httpx.TransportError as exc:  # timeouts, refused/reset connections
                status: int | None = None
                error = DeliveryError(_describe(exc), sink=self.name)
                log.append(DeliveryAttempt(attempt, now, None, time.perf_counter() - sent, str(error)).to_dict())
            except httpx.HTTPError as exc:
                error = DeliveryError(_describe(exc), sink=self.name, retryable=False)
                log.append(DeliveryAttempt(attempt, now, None, time.perf_counter() - sent, str(error)).to_dict())
                return self._fail(attempt, started, ref, error, log)
            else:
                elapsed = time.perf_counter() - sent
                if 200 <= status <= 299:
                    log.append(DeliveryAttempt(attempt, now, status, elapsed).to_dict())
                    return DeliveryResult(sink=self.name, ok=True, attempts=attempt, status=status,
                                          latency_s=time.perf_counter() - started, ref=ref, attempts_log=log)
                if status == 410:
                    error = DeliveryError("endpoint is gone (410 Gone): disable this webhook", sink=self.name,
                                          status=status, retryable=False)
                    log.append(DeliveryAttempt(attempt, now, status, elapsed, str(error)).to_dict())
                    result = self._fail(attempt, started, ref, error, log)
                    result.disable = True
                    return result
                retry_after = parse_retry_after(response_headers.get("retry-after"), now=self._clock())
                snippet = head[:200].decode("utf-8", "replace").strip()
                error = DeliveryError(f"endpoint answered {status}" + (f": {snippet}" if snippet else ""),
                                      sink=self.name, status=status, retryable=status == 429 or status >= 500)
                log.append(DeliveryAttempt(attempt, now, status, elapsed, str(error)).to_dict())
            wait = self._retry.delay(attempt, status=status, retry_after=retry_after)
            if wait is None:
                return self._fail(attempt, started, ref, error, log)
            await self._sleep(wait)

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, httpx.Headers, bytes]:
        """POST and read at most ``MAX_RESPONSE_BYTES`` of the answer: a hostile endpoint cannot
        make the worker buffer a huge body."""
        async with self._client.stream("POST", self.url, content=body, headers=headers,
                                       timeout=self._timeout) as response:
            head = b""
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= MAX_RESPONSE_BYTES:
                    break
            return response.status_code, response.headers, head[:MAX_RESPONSE_BYTES]

    def _fail(self, attempts: int, started: float, ref: dict[str, str], error: DeliveryError,
              log: list[dict] | None = None) -> DeliveryResult:
        return DeliveryResult(sink=self.name, ok=False, attempts=attempts, status=error.status,
                              latency_s=time.perf_counter() - started, error=str(error),
                              permanent=not error.retryable, ref=ref, attempts_log=list(log or []))

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
