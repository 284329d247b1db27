"""Signed webhook delivery (Standard Webhooks v1): one POST per alert state change.

Body ``{"type": "spendsentry.alert.firing"|"spendsentry.alert.resolved", "timestamp": RFC 3339,
"data": alert.to_dict()}``. ``webhook-id`` is derived from ``(alert_id, status, triggered_at)``, one
state change of one incident: the same on every retry and on a redelivery after a restart, so
receivers dedupe on it, and new for an escalation, a reopen or a later resolution of that incident. The timestamp
and signature are made afresh for each attempt. :meth:`WebhookSink.send_digest` sends a spend
digest (type ``spendsentry.digest``) through the same loop and signature.

With ``cloudevents=True`` the body is a CloudEvents 1.0 structured event instead
(:mod:`alerts.cloudevents`, ``content-type: application/cloudevents+json``), signed the same way.
Every attempt is logged in ``DeliveryResult.attempts_log`` (the loop is
:class:`alerts.sinks.http.HttpPostSink`'s). The sink's own retries are the short, inline kind
(seconds); retrying for hours is :class:`alerts.delivery.RetryQueue`'s job, so one dead endpoint
never holds up other deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from alerts.digest import digest_body, digest_webhook_id
from alerts.cloudevents import CONTENT_TYPE as CE_CONTENT_TYPE, cloudevent_body
from alerts.retry import RetryPolicy, Sleep
from alerts.signing import decode_secret, signed_headers
from alerts.sink_protocol import DeliveryResult
from alerts.sinks.http import HttpPostSink
from schemas.alert import Alert, rfc3339
from schemas.errors import ConfigError

EVENT_TYPES = {"firing": "spendsentry.alert.firing", "resolved": "spendsentry.alert.resolved"}


def webhook_id(alert: Alert) -> str:
    """The idempotency key of one alert state change: ``msg_`` + 24 hex of
    sha256(alert_id:status:triggered_at), the time to the millisecond."""
    change = f"{alert.alert_id}:{alert.status}:{alert.triggered_at:.3f}"
    return "msg_" + hashlib.sha256(change.encode()).hexdigest()[:24]


def webhook_body(alert: Alert, timestamp: int) -> bytes:
    """The exact bytes that are signed and sent."""
    return orjson.dumps({"type": EVENT_TYPES[alert.status], "timestamp": rfc3339(timestamp), "data": alert.to_dict()})


class WebhookSink(HttpPostSink):
    """POSTs each alert to one endpoint, signed with that endpoint's ``whsec_`` secret.

    Retries follow ``retry`` (timeouts, connection errors, 429 with ``Retry-After``, 5xx);
    410 Gone is permanent and flagged so the endpoint can be disabled.
    """

    gone_error = "endpoint is gone (410 Gone): disable this webhook"

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
        super().__init__(url, name=name, client=client, retry=retry, timeout=timeout, sleep=sleep, clock=clock)
        self._secret = secret
        self.cloudevents = cloudevents

    def body(self, alert: Alert, timestamp: int) -> tuple[bytes, str]:
        """The bytes sent for ``alert`` and their content type."""
        if self.cloudevents:
            return cloudevent_body(alert, webhook_id(alert)), CE_CONTENT_TYPE
        return webhook_body(alert, timestamp), "application/json"

    def reference(self, alert: Alert) -> dict[str, str]:
        return {"webhook_id": webhook_id(alert)}

    def request(self, alert: Alert, now: float) -> tuple[bytes, dict[str, str]]:
        """Signed afresh per attempt: the signature covers the attempt's timestamp."""
        timestamp = int(now)
        body, content_type = self.body(alert, timestamp)
        return body, {"content-type": content_type, **signed_headers(self._secret, webhook_id(alert), timestamp, body)}

    async def send_digest(self, digest: Mapping[str, Any]) -> DeliveryResult:
        """POST a spend digest (:func:`alerts.digest.digest_body`, always plain JSON), signed the same way;
        its ``webhook-id`` is the same for one subscription and period on every attempt and resend."""
        msg_id = digest_webhook_id(str(digest["subscription_id"]), str(digest["period"]["label"]))

        def request(now: float) -> tuple[bytes, dict[str, str]]:
            body = digest_body(digest, int(now))
            return body, {"content-type": "application/json",
                          **signed_headers(self._secret, msg_id, int(now), body)}

        return await self.post(request, {"webhook_id": msg_id})
