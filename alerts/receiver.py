"""A real local webhook endpoint (aiohttp): verifies Standard Webhooks signatures and keeps what it got.

Used by the demo (point a :class:`~alerts.sinks.webhook.WebhookSink` at it and watch alerts
arrive) and by the integration tests, which can make it fail the next N requests to exercise
retries. It dedupes on ``webhook-id`` like a well-behaved receiver: a redelivery is answered
204 and not recorded twice.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from alerts.signing import HEADER_ID, HEADER_TIMESTAMP, SignatureError, verify
from schemas.alert import Alert

log = logging.getLogger("spendsentry.alerts.receiver")

OnAlert = Callable[[Alert], Awaitable[None] | None]


@dataclass(slots=True)
class Attempt:
    """One request as it reached the receiver, whatever was answered."""

    webhook_id: str | None
    timestamp: str | None
    status: int


class WebhookReceiver:
    """Serves ``POST {path}`` on ``host:port`` (port 0 picks a free one).

    ``received`` holds each verified delivery as ``{"webhook_id": ..., "body": {...}}``;
    ``attempts`` every request with the status it was answered; ``rejected`` counts bad signatures.
    """

    def __init__(
        self,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        on_alert: OnAlert | None = None,
        *,
        path: str = "/webhooks/spendsentry",
        tolerance_s: float = 300,
        fail_first: int = 0,
        fail_status: int = 503,
    ) -> None:
        self.secret = secret
        self.host = host
        self.port = port
        self.path = path
        self.on_alert = on_alert
        self.tolerance_s = tolerance_s
        self.received: list[dict[str, Any]] = []
        self.attempts: list[Attempt] = []
        self.rejected = 0
        self._seen: set[str] = set()
        self._fail_left = fail_first
        self._fail_status = fail_status
        self._fail_retry_after: str | None = None
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    def fail_next(self, count: int, status: int = 503, *, retry_after: float | None = None) -> None:
        """Answer the next ``count`` requests with ``status`` (and a ``Retry-After`` if given)."""
        self._fail_left = count
        self._fail_status = status
        self._fail_retry_after = None if retry_after is None else f"{retry_after:g}"

    async def start(self) -> str:
        """Start listening; return the endpoint URL."""
        if self.url is not None:
            return self.url
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.url = f"http://{self.host}:{self.port}{self.path}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.url = None

    async def __aenter__(self) -> WebhookReceiver:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _answer(self, request: web.Request, status: int, text: str = "", **headers: str) -> web.Response:
        self.attempts.append(Attempt(request.headers.get(HEADER_ID), request.headers.get(HEADER_TIMESTAMP), status))
        return web.Response(status=status, text=text or None, headers=headers or None)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self._fail_left > 0:
            self._fail_left -= 1
            extra = {"Retry-After": self._fail_retry_after} if self._fail_retry_after is not None else {}
            return self._answer(request, self._fail_status, "injected failure", **extra)
        try:
            verify(self.secret, request.headers, body, tolerance_s=self.tolerance_s)
        except SignatureError as exc:
            self.rejected += 1
            log.warning("rejected webhook %s: %s", request.headers.get(HEADER_ID), exc)
            return self._answer(request, 401, exc.reason)
        webhook_id = request.headers[HEADER_ID]
        if webhook_id in self._seen:
            return self._answer(request, 204)
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return self._answer(request, 400, "body is not JSON")
        self._seen.add(webhook_id)
        self.received.append({"webhook_id": webhook_id, "body": payload})
        if self.on_alert is not None and isinstance(payload, dict) and isinstance(payload.get("data"), dict):
            try:
                outcome = self.on_alert(Alert.from_dict(payload["data"]))
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:  # the caller's callback: log it, the delivery itself succeeded
                log.exception("on_alert failed for %s", webhook_id)
        return self._answer(request, 204)
