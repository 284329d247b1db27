"""GET /v1/alerts and GET /v1/spend page with limit and cursor; a bad cursor is one 400."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from schemas.alert import rfc3339
from streams.app import create_app
from streams.config import Settings
from streams.core.pricing import PriceCatalogue

T0 = 1_795_000_000.0


async def get(app: Any, path: str, **query: str) -> tuple[int, Any]:
    response = await app.web.views[path].get(SimpleNamespace(query=query))
    return response.status, orjson.loads(response.body)


async def walk(app: Any, path: str, field: str, limit: int) -> list[Any]:
    items: list[Any] = []
    query = {"limit": str(limit)}
    while True:
        status, body = await get(app, path, **query)
        assert status == 200, body
        assert len(body[field]) <= limit
        items += body[field]
        if body["next_cursor"] is None:
            return items
        query["cursor"] = body["next_cursor"]


async def test_spend_and_alerts_page_through_everything_once(tmp_path) -> None:
    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path)})
    app, runtime = create_app(settings, PriceCatalogue.load(settings.prices_file))
    for partition in (0, 1):
        engine = runtime.engines.get(partition)
        for i in range(7):
            engine.ingest(orjson.dumps({"event_id": f"{partition}-{i}", "timestamp": T0, "provider": "openai",
                                        "model": f"m{partition}-{i}", "cost_usd": float(i % 3)}))
    keys = await walk(app, "/v1/spend", "keys", 3)
    assert len(keys) == 14 and len({k["key"]["model"] for k in keys}) == 14
    assert [k["total_cost_usd"] for k in keys] == sorted((k["total_cost_usd"] for k in keys), reverse=True)
    runtime.delivery.recent = {  # a plain dict for the table: no broker to write its changelog to
        f"al{i}": {"alert": {"alert_id": f"al{i}", "triggered_at": rfc3339(T0 + i % 2), "status": "firing"}, "deliveries": []}
        for i in range(5)}
    alerts = await walk(app, "/v1/alerts", "alerts", 2)
    assert [a["alert"]["alert_id"] for a in alerts] == ["al1", "al3", "al0", "al2", "al4"]


async def test_a_bad_cursor_is_one_400(tmp_path) -> None:
    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path)})
    app, _ = create_app(settings, PriceCatalogue.load(settings.prices_file))
    for path in ("/v1/spend", "/v1/alerts"):
        status, body = await get(app, path, cursor="not-a-cursor")
        assert (status, body) == (400, {"error": "cursor: not a cursor this endpoint returned"})
