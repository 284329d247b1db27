"""A local PagerDuty Events API v2 look-alike (aiohttp) for the PagerDuty sink tests.

``POST /v2/enqueue`` validates like PagerDuty (JSON object, 32-character ``routing_key``,
``event_action`` trigger/acknowledge/resolve, ``dedup_key`` <= 255, and for a trigger
``payload.summary`` (<= 1024), ``payload.source`` and ``payload.severity`` in
critical/error/warning/info) and answers 202 ``{"status": "success", "dedup_key": ...}`` or 400
``{"status": "invalid event", "errors": [...]}``. ``fail_next`` injects 429/5xx. ``incidents``
follows the dedup semantics: a trigger for an open dedup key is folded into it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

SEVERITIES = ("critical", "error", "warning", "info")


@dataclass(slots=True)
class Event:
    body: Any
    status: int
    errors: list[str] = field(default_factory=list)


def validate_event(body: Any) -> list[str]:
    if not isinstance(body, dict):
        return ["Event object is invalid"]
    errors = []
    key = body.get("routing_key")
    if not isinstance(key, str) or len(key) != 32:
        errors.append("'routing_key' must be a 32 character string")
    action = body.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is missing or invalid")
    dedup = body.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or len(dedup) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup:
        errors.append("'dedup_key' is required for acknowledge and resolve")
    if action == "trigger":
        payload = body.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing")
        else:
            summary = payload.get("summary")
            if not isinstance(summary, str) or not summary or len(summary) > 1024:
                errors.append("'payload.summary' is missing or longer than 1024 characters")
            if not isinstance(payload.get("source"), str) or not payload.get("source"):
                errors.append("'payload.source' is missing")
            if payload.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' must be critical, error, warning or info")
    return errors


class PagerDutyAPIServer:
    """``await start()`` returns the base URL to pass as ``PagerDutySink(base_url=...)``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.events: list[Event] = []
        #: dedup_key -> {"status": "triggered"|"acknowledged"|"resolved", "triggers": n, "summary": ...}
        self.incidents: dict[str, dict[str, Any]] = {}
        self._fail_left = 0
        self._fail_status = 503
        self._retry_after: str | None = None
        self._runner: web.AppRunner | None = None
        self.base_url: str | None = None

    def fail_next(self, times: int, status: int = 503, *, retry_after: float | None = None) -> None:
        self._fail_left, self._fail_status = times, status
        self._retry_after = None if retry_after is None else f"{retry_after:g}"

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [e.body for e in self.events if e.status == 202]

    async def start(self) -> str:
        if self.base_url is None:
            app = web.Application()
            app.router.add_post("/v2/enqueue", self._handle)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, self.host, 0).start()
            self._runner = runner
            self.base_url = f"http://{self.host}:{runner.addresses[0][1]}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner, self.base_url = None, None

    async def __aenter__(self) -> PagerDutyAPIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _json(self, event: Event, status: int, body: dict[str, Any], **headers: str) -> web.Response:
        event.status = status
        self.events.append(event)
        return web.json_response(body, status=status, headers=headers or None,
                                 dumps=lambda o: orjson.dumps(o).decode())

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = None
        event = Event(body, 0)
        if self._fail_left > 0:
            self._fail_left -= 1
            extra = {"Retry-After": self._retry_after} if self._retry_after else {}
            return self._json(event, self._fail_status, {"status": "throttled" if self._fail_status == 429
                                                         else "error", "message": "injected"}, **extra)
        if len(raw) > 512 * 1024:
            return self._json(event, 413, {"status": "invalid event", "message": "payload too large"})
        errors = validate_event(body)
        if errors:
            event.errors = errors
            return self._json(event, 400, {"status": "invalid event", "message": "Event object is invalid",
                                           "errors": errors})
        dedup = body.get("dedup_key") or uuid.uuid4().hex
        action = body["event_action"]
        incident = self.incidents.get(dedup)
        if action == "trigger":
            if incident is None or incident["status"] == "resolved":
                self.incidents[dedup] = {"status": "triggered", "triggers": 1,
                                         "summary": body["payload"]["summary"],
                                         "severity": body["payload"]["severity"]}
            else:
                incident["triggers"] += 1
        elif incident is not None:
            incident["status"] = "resolved" if action == "resolve" else "acknowledged"
        return self._json(event, 202, {"status": "success", "message": "Event processed", "dedup_key": dedup})
