"""The worker's web app as the network sees it, without a broker: tokens, Faust's own pages,
body limits and timeouts, destinations vetted at creation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from streams.app import create_app
from streams.config import Settings
from streams.core.pricing import PriceCatalogue

WRITE = "w" * 16
READ = "r" * 16


async def _client(tmp_path: Path, **env: str) -> AsyncIterator[TestClient]:
    settings = Settings.from_env({"SPENDSENTRY_API_TOKENS": WRITE, "SPENDSENTRY_READ_TOKENS": READ,
                                  "SPENDSENTRY_DATA_DIR": str(tmp_path), **env})
    app, _ = create_app(settings, PriceCatalogue.load(None))
    app.web.init_server()
    async with TestClient(TestServer(app.web.web_app)) as client:
        yield client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    async for each in _client(tmp_path, SPENDSENTRY_WEB_READ_TIMEOUT_SECONDS="0.2"):
        yield each


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("path", ["/v1/subscriptions", "/v1/budgets", "/v1/alerts", "/v1/alerts/al_x",
                                  "/v1/spend", "/v1/gpu", "/metrics"])
async def test_every_read_needs_a_token(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status == 401
    assert (await response.json())["error"] == "missing bearer token (Authorization: Bearer <token>)"
    assert (await client.get(path, headers=_bearer("x" * 16))).status == 401


async def test_read_and_write_tokens_read_only_write_tokens_write(client: TestClient) -> None:
    for token in (READ, WRITE):
        response = await client.get("/v1/subscriptions", headers=_bearer(token))
        assert response.status == 200 and await response.json() == {"subscriptions": []}
    refused = await client.post("/v1/subscriptions", headers=_bearer(READ), data=b"{}")
    assert refused.status == 403  # authenticated, not allowed


@pytest.mark.parametrize("method, path", [
    ("POST", "/v1/subscriptions"), ("PUT", "/v1/subscriptions/s1"), ("PATCH", "/v1/subscriptions/s1"),
    ("DELETE", "/v1/subscriptions/s1"), ("POST", "/v1/budgets"), ("DELETE", "/v1/budgets/b1"),
    ("POST", "/v1/alerts/al_x/feedback"), ("POST", "/v1/events"),
])
async def test_a_read_token_on_a_write_is_403_and_no_token_401(client: TestClient, method: str, path: str) -> None:
    forbidden = await client.request(method, path, headers=_bearer(READ), data=b"{}")
    assert forbidden.status == 403
    assert (await forbidden.json())["error"] == "read-only token: writes need a token of SPENDSENTRY_API_TOKENS"
    assert (await client.request(method, path, data=b"{}")).status == 401
    assert (await client.request(method, path, headers=_bearer("x" * 16), data=b"{}")).status == 401
    operation = (await (await client.get("/openapi.json")).json())["paths"][
        path.replace("s1", "{record_id}").replace("b1", "{record_id}").replace("al_x", "{alert_id}")][method.lower()]
    assert {"401", "403"} <= set(operation["responses"])


async def test_health_and_openapi_stay_open(client: TestClient) -> None:
    assert (await client.get("/openapi.json")).status == 200
    assert (await client.get("/healthz")).status == 503  # open (no broker here: not ready)


@pytest.mark.parametrize("path", ["/table/subscriptions/abc", "/table", "/router"])
async def test_faust_table_and_router_pages_are_off(client: TestClient, path: str) -> None:
    assert (await client.get(path, headers=_bearer(WRITE))).status == 404


@pytest.mark.parametrize("url, reason", [
    ("http://169.254.169.254/latest/meta-data/", "link-local (cloud metadata)"),
    ("http://100.100.100.200/latest/meta-data/", "shared address space"),
    ("http://[2002:a9fe:a9fe::]/x", "embedded in 2002:a9fe:a9fe::"),
])
async def test_internal_destinations_are_refused_at_creation(client: TestClient, url: str, reason: str) -> None:
    body = {"name": "x", "destination": {"type": "webhook", "url": url, "secret": "whsec_" + "QUFB" * 8}}
    response = await client.post("/v1/subscriptions", headers=_bearer(WRITE), json=body)
    assert response.status == 422
    answer = await response.json()
    assert reason in answer["error"] and answer["field"] == "destination.url"
    assert "meta-data" not in answer["value"]


async def test_body_limit_above_one_mebibyte_is_honoured(tmp_path: Path) -> None:
    async for client in _client(tmp_path, SPENDSENTRY_MAX_BODY_BYTES=str(3 * 1024 * 1024)):
        body = b"not json\n" * (2 * 1024 * 1024 // 9)  # 2 MiB of junk NDJSON: parsed, every line rejected
        response = await client.post("/v1/events", headers=_bearer(WRITE), data=body)
        assert response.status == 400 and (await response.json())["rejected"] > 0
        too_big = await client.post("/v1/events", headers=_bearer(WRITE), data=b" " * (3 * 1024 * 1024 + 1))
        assert too_big.status == 413


async def test_a_body_that_never_arrives_times_out(client: TestClient) -> None:
    never = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield b"{"
        await never.wait()

    response = await client.post("/v1/events", headers=_bearer(WRITE), data=stalled())
    assert response.status == 408
    assert (await response.json())["error"] == "request body not received within 0.2s"
