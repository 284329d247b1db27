"""HTTP API on the worker's web port (Faust web): health, alerts, spend, OpenAPI."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import faust

from streams.auth import bearer_error
from streams.ingest import parse_events
from streams.metrics import render
from streams.openapi import OPENAPI

if TYPE_CHECKING:
    from streams.app import Runtime


def _limit(request: Any, default: int = 100, maximum: int = 500) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ValueError(f"limit: must be an integer from 1 to {maximum} (got {raw!r})")
    return int(raw)


def register_pages(app: faust.App, runtime: Runtime) -> None:
    @app.page("/healthz")
    async def healthz(view: faust.web.View, request: Any) -> Any:
        ready = app.tables.recovery.completed.is_set() and not app.rebalancing
        body = {"status": "ok" if ready else "starting", "recovered": ready,
                "partitions": sorted(runtime.engines.engines)}
        return view.json(body, status=200 if ready else 503)

    @app.page("/v1/alerts")
    async def alerts(view: faust.web.View, request: Any) -> Any:
        try:
            limit = _limit(request)
        except ValueError as exc:
            return view.json({"error": str(exc)}, status=400)
        return view.json({"alerts": runtime.recent_alerts(limit)})

    @app.page("/v1/spend")
    async def spend(view: faust.web.View, request: Any) -> Any:
        keys: list[dict[str, Any]] = []
        totals: dict[str, Any] = asdict(runtime.counters())
        unpriced: dict[str, int] = {}
        for engine in runtime.engines.engines.values():
            keys += engine.spend()
            for (provider, model), count in engine.unpriced_models.items():
                unpriced[f"{provider}/{model}"] = unpriced.get(f"{provider}/{model}", 0) + count
        keys.sort(key=lambda k: -k["total_cost_usd"])
        totals["deadletters"] = runtime.deadletters
        return view.json({
            "bucket_seconds": runtime.settings.bucket_seconds,
            "keys": keys,
            "counters": totals,
            "unpriced_models": unpriced,
        })

    @app.page("/v1/events")
    class Events(faust.web.View):
        async def post(self, request: Any) -> Any:
            """Ingest usage events over HTTP: one object, a JSON array or NDJSON."""
            settings = runtime.settings
            if (reason := bearer_error(request.headers, settings.api_tokens)) is not None:
                return self.json({"error": reason}, status=401)
            if (request.content_length or 0) > settings.max_body_bytes:
                return self.json({"error": f"body over {settings.max_body_bytes} bytes"}, status=413)
            fmt = request.query.get("format", "canonical")
            if fmt not in runtime.formats:
                return self.json({"error": f"format: unknown {fmt!r} (use one of {', '.join(sorted(runtime.formats))})"},
                                 status=400)
            body = await request.read()
            if len(body) > settings.max_body_bytes:
                return self.json({"error": f"body over {settings.max_body_bytes} bytes"}, status=413)
            events, errors = parse_events(body, fmt, runtime.normalize)
            await runtime.send_usage(events)
            status = 400 if errors and not events else 202
            return self.json({"accepted": len(events), "rejected": len(errors), "errors": errors[:100]}, status=status)

    @app.page("/metrics")
    async def metrics(view: faust.web.View, request: Any) -> Any:
        return view.text(render(runtime), content_type="text/plain; version=0.0.4")

    @app.page("/openapi.json")
    async def openapi(view: faust.web.View, request: Any) -> Any:
        return view.json(OPENAPI)
