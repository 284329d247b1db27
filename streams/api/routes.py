"""HTTP API on the worker's web port (Faust web): health, alerts, spend, OpenAPI."""

from __future__ import annotations

from dataclasses import asdict
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from alerts.slack_interactivity import InteractionError, ReplayCache, SlackSignatureError, parse_action, verify_request
from alerts.ssrf import SsrfGuard
from schemas.budget import Budget, validate_budget
from schemas.subscription import Subscription, validate_subscription
from streams.api.spend_views import spend_segments, wants_segments
from streams.api.auth import write_error
from streams.api.dashboard import register_dashboard
from streams.api.resources import Resource, error, parse_body
from streams.api.ingest import parse_events
from streams.api.prometheus import render
from streams.api.openapi import OPENAPI
from streams.api.web_guard import off_loop, read_body, read_gate, vet_destination

from streams.api.state import ApiState
from streams.core.attribution import parse_window
from streams.core.paging import ALERT_CURSOR, SPEND_CURSOR, decode_cursor, page


def _limit(request: Any, default: int = 100, maximum: int = 500) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ValueError(f"limit: must be an integer from 1 to {maximum} (got {raw!r})")
    return int(raw)


def _spend_order(item: tuple[Any, Any]) -> tuple[float, str]:
    """``GET /v1/spend`` order: biggest spend first, then by key name (the cursor is this key)."""
    state = item[1]
    return -round(state.total_cost, 6), state.name


def _reply(view: faust.web.View, response: tuple[int, Any]) -> Any:
    status, body = response
    if body is None:
        return view.bytes(b"", status=status)
    return view.json(body, status=status)


def _resource_pages(app: faust.App, runtime: ApiState, path: str, resource: Resource,
                    vet: Callable[[dict[str, Any]], Awaitable[tuple[int, Any] | None]] | None = None) -> None:
    """``GET/POST {path}`` and ``GET/PUT/PATCH/DELETE {path}/{id}``; mutations need a bearer token
    (reads a read token, checked by :func:`streams.api.web_guard.read_gate`); ``vet`` may refuse a body."""
    settings = runtime.settings

    async def authorized_body(request: Any) -> dict[str, Any] | tuple[int, Any]:
        if (refused := write_error(request.headers, settings)) is not None:
            return error(*refused)
        raw = await read_body(request, settings.max_body_bytes, settings.web_read_timeout_s)
        if isinstance(raw, tuple):
            return raw
        body = await off_loop(parse_body, raw, settings.max_body_bytes)
        if vet is not None and not isinstance(body, tuple) and (refused := await vet(body)) is not None:
            return refused
        return body

    async def durable(response: tuple[int, Any]) -> tuple[int, Any]:
        """Answer a mutation only once its changelog write reached Kafka (it survives a crash)."""
        if response[0] < 300:
            await runtime.flush_writes()
        return response

    class Collection(faust.web.View):
        async def get(self, request: Any) -> Any:
            return _reply(self, resource.list())

        async def post(self, request: Any) -> Any:
            body = await authorized_body(request)
            return _reply(self, body if isinstance(body, tuple) else await durable(resource.create(body)))

    class Item(faust.web.View):
        async def get(self, request: Any, record_id: str) -> Any:
            return _reply(self, resource.get(record_id))

        async def put(self, request: Any, record_id: str) -> Any:
            body = await authorized_body(request)
            return _reply(self, body if isinstance(body, tuple)
                          else await durable(resource.replace(record_id, body, merge=False)))

        async def patch(self, request: Any, record_id: str) -> Any:
            body = await authorized_body(request)
            return _reply(self, body if isinstance(body, tuple)
                          else await durable(resource.replace(record_id, body, merge=True)))

        async def delete(self, request: Any, record_id: str) -> Any:
            if (refused := write_error(request.headers, settings)) is not None:
                return _reply(self, error(*refused))
            return _reply(self, await durable(resource.delete(record_id)))

    app.page(path)(Collection)
    app.page(path + "/{record_id}")(Item)


def register_pages(app: faust.App, runtime: ApiState) -> None:
    settings = runtime.settings
    app.web.web_app.middlewares.append(read_gate(settings))
    guard = SsrfGuard(settings.webhook_allowlist)
    replays = ReplayCache()

    async def vet(body: dict[str, Any]) -> tuple[int, Any] | None:
        return await vet_destination(guard, body)

    register_dashboard(app, runtime)  # /ui/, /v1/series, /v1/forecast
    _resource_pages(app, runtime, "/v1/subscriptions", Resource(
        "subscriptions", runtime.delivery.subscriptions, validate_subscription, Subscription.from_dict,
        render=lambda sub: sub.to_dict(masked=True), store_form=lambda sub: sub.to_dict(masked=False)), vet=vet)
    _resource_pages(app, runtime, "/v1/budgets", Resource(
        "budgets", runtime.budgets_store, validate_budget, Budget.from_dict,
        render=runtime.budget_view, store_form=lambda budget: budget.to_dict()))

    @app.page("/v1/alerts/{alert_id}")
    class AlertItem(faust.web.View):
        async def get(self, request: Any, alert_id: str) -> Any:
            record = runtime.delivery.recent.get(alert_id)
            if record is None:
                return self.json({"error": f"alert {alert_id} not found"}, status=404)
            return self.json({**record, "pending_retries": [
                {"destination": p.sink, "next_at": p.next_at,
                 "attempts": len(p.attempts_log), "last_error": p.last_error}
                for p in runtime.delivery.pending() if p.alert["alert_id"] == alert_id]})

    @app.page("/v1/alerts/{alert_id}/feedback")
    class Feedback(faust.web.View):
        async def post(self, request: Any, alert_id: str) -> Any:
            if (refused := write_error(request.headers, settings)) is not None:
                return _reply(self, error(*refused))
            raw = await read_body(request, settings.max_body_bytes, settings.web_read_timeout_s)
            body = raw if isinstance(raw, tuple) else parse_body(raw, settings.max_body_bytes)
            if isinstance(body, tuple):
                return _reply(self, body)
            return _reply(self, await runtime.feedback(alert_id, body.get("action"), user=body.get("user")))

    @app.page("/v1/slack/interactivity")
    class SlackInteractivity(faust.web.View):
        async def post(self, request: Any) -> Any:
            if not settings.slack_signing_secret:
                return self.json({"error": "SPENDSENTRY_SLACK_SIGNING_SECRET is not set"}, status=503)
            body = await read_body(request, settings.max_body_bytes, settings.web_read_timeout_s)
            if isinstance(body, tuple):
                return _reply(self, body)
            try:
                verify_request(settings.slack_signing_secret, request.headers, body)
                replays.check(request.headers)
            except SlackSignatureError as exc:
                return self.json({"error": str(exc)}, status=401)
            try:
                action = parse_action(body)
            except InteractionError as exc:
                return self.json({"error": str(exc)}, status=400)
            status, reply = await runtime.feedback(action.alert_id, action.action, user=action.user)
            return self.json(reply if status >= 400 else {"ok": True}, status=200 if status < 500 else status)

    @app.page("/healthz")
    async def healthz(view: faust.web.View, request: Any) -> Any:
        ready = runtime.ready()
        problems = runtime.problems()
        status = "unwell" if problems else "ok" if ready else "starting"
        body = {"status": status, "recovered": ready, "problems": problems,
                "partitions": sorted(runtime.engines.engines)}
        return view.json(body, status=200 if ready and not problems else 503)

    @app.page("/v1/alerts")
    async def alerts(view: faust.web.View, request: Any) -> Any:
        try:
            limit = _limit(request)
            after = decode_cursor(request.query.get("cursor"), ALERT_CURSOR)
        except ValueError as exc:
            return view.json({"error": str(exc)}, status=400)
        records, next_cursor = runtime.recent_alerts(limit, after)
        return view.json({"alerts": records, "next_cursor": next_cursor})

    @app.page("/v1/spend")
    async def spend(view: faust.web.View, request: Any) -> Any:
        if wants_segments(request.query):  # ?group_by=team,pipeline_stage&window=1h
            status, body = spend_segments(runtime, request.query)
            return view.json(body, status=status)
        try:
            limit = _limit(request, default=1000, maximum=10_000)
            after = decode_cursor(request.query.get("cursor"), SPEND_CURSOR)
        except ValueError as exc:
            return view.json({"error": str(exc)}, status=400)
        totals: dict[str, Any] = asdict(runtime.counters())
        unpriced: dict[str, int] = {}
        for engine in runtime.engines.engines.values():
            for (provider, model), count in engine.unpriced_models.items():
                unpriced[f"{provider}/{model}"] = unpriced.get(f"{provider}/{model}", 0) + count
        # one page of keys by spend (biggest first), picked before any key's view is built
        chosen, next_cursor = page(((engine, state) for engine in runtime.engines.engines.values()
                                    for state in engine.keys.values()), _spend_order, limit, after)
        keys = [row for engine, state in chosen for row in engine.spend([state])]
        totals["deadletters"] = runtime.deadletters
        return view.json({
            "bucket_seconds": runtime.settings.bucket_seconds,
            "keys": keys,
            "next_cursor": next_cursor,
            "counters": totals,
            "unpriced_models": unpriced,
            # imported bills (FOCUS) judged at their own grain, per service and account
            "billing": [row for e in runtime.engines.engines.values() if e.bills for row in e.bills.view()],
        })

    @app.page("/v1/events")
    class Events(faust.web.View):
        async def post(self, request: Any) -> Any:
            """Ingest usage events over HTTP: one object, a JSON array or NDJSON."""
            settings = runtime.settings
            if (refused := write_error(request.headers, settings)) is not None:
                return _reply(self, error(*refused))
            fmt = request.query.get("format", "canonical")
            if fmt not in runtime.formats:
                return self.json({"error": f"format: unknown {fmt!r} (use one of {', '.join(sorted(runtime.formats))})"},
                                 status=400)
            body = await read_body(request, settings.max_body_bytes, settings.web_read_timeout_s)
            if isinstance(body, tuple):
                return _reply(self, body)
            events, errors = await off_loop(parse_events, body, fmt, runtime.normalize)
            await runtime.send_usage(events)
            status = 400 if errors and not events else 202
            return self.json({"accepted": len(events), "rejected": len(errors), "errors": errors[:100]}, status=status)

    @app.page("/metrics")
    async def metrics(view: faust.web.View, request: Any) -> Any:
        return view.text(render(runtime), content_type="text/plain; version=0.0.4")

    @app.page("/v1/gpu")
    async def gpu_page(view: faust.web.View, request: Any) -> Any:
        if runtime.gpu is None:
            return view.json({"error": "GPU accounting is not running"}, status=404)
        unknown = set(request.query) - {"window"}
        if unknown:
            return view.json({"error": f"unknown query parameter(s): {', '.join(sorted(unknown))} (use window)"},
                             status=400)
        try:
            window_s = parse_window(request.query.get("window"), bucket_seconds=300.0, horizon_s=86_400.0,
                                    default="24h")
        except ValueError as exc:
            return view.json({"error": str(exc)}, status=400)
        return view.json(runtime.gpu.view(window_s))

    @app.page("/openapi.json")
    async def openapi(view: faust.web.View, request: Any) -> Any:
        return view.json(OPENAPI)
