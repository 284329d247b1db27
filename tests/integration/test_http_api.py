"""The HTTP API on a real worker: ingest with bearer tokens, metrics, OpenAPI."""

from __future__ import annotations

import httpx
import orjson
import pytest

from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration

TOKEN = "test-token-0123456789"
EVENT = {"event_id": "http-1", "timestamp": 1795759200, "provider": "openai", "model": "gpt-4o",
         "input_tokens": 1000, "output_tokens": 100}


async def test_ingest_needs_a_token_and_keeps_good_events(make_worker):
    worker = make_worker(SPENDSENTRY_API_TOKENS=f"other-token-0123456789,{TOKEN}").start()
    await worker.ready()
    async with httpx.AsyncClient(base_url=worker.url, timeout=10) as client:
        assert (await client.post("/v1/events", content=orjson.dumps(EVENT))).status_code == 401
        wrong = await client.post("/v1/events", content=orjson.dumps(EVENT), headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json() == {"error": "invalid bearer token"}
        auth = {"Authorization": f"Bearer {TOKEN}"}
        body = orjson.dumps(EVENT) + b"\n" + orjson.dumps({**EVENT, "event_id": "http-2", "model": None}) + b"\n" \
            + orjson.dumps({**EVENT, "event_id": "http-3", "timestamp": 1795759201}) + b"\n"
        response = await client.post("/v1/events", content=body, headers=auth)
        assert response.status_code == 202
        assert response.json()["accepted"] == 2
        assert response.json()["errors"] == [{"index": 1, "reason": "model: is required (got None)", "field": "model",
                                              "value": None, "rule": "is required"}]
        assert (await client.post("/v1/events?format=nope", content=body, headers=auth)).status_code == 400
        too_big = await client.post("/v1/events", content=b" " * (1024 * 1024 + 1), headers=auth)
        assert too_big.status_code == 413

    async def counted():
        spend = await worker.get("/v1/spend")
        return spend["counters"]["events"] == 2

    await eventually(counted, message="the two accepted events processed")
    openapi = await worker.get("/openapi.json")
    assert {"/v1/events", "/v1/spend", "/v1/alerts", "/v1/alerts/{alert_id}", "/v1/alerts/{alert_id}/feedback",
            "/v1/subscriptions", "/v1/subscriptions/{record_id}", "/v1/budgets", "/v1/budgets/{record_id}",
            "/v1/slack/interactivity", "/v1/gpu", "/metrics", "/healthz"} <= set(openapi["paths"])
