"""Hostile HTTP input against one real worker: every request gets a clear 2xx/4xx answer with a
JSON error naming the problem, never a 5xx; the worker keeps serving afterwards.

One worker for the whole module (starting one costs seconds); requests are synchronous so
hypothesis drives them directly. ``schemathesis`` also fuzzes every operation of
``/openapi.json`` and checks the answers against the document.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote, urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.slack_interactivity import sign_request
from streams.api.openapi import OPENAPI
from tests.integration.conftest import Worker
from tests.support import dead_port

pytestmark = pytest.mark.integration

TOKEN = "fuzz-token-0123456789"
SIGNING = "fuzz-slack-signing-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TS = 1795759200
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@pytest.fixture(scope="module")
def worker(broker: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    prefix = f"fz-{uuid.uuid4().hex[:10]}"
    tmp: Path = tmp_path_factory.mktemp("api-fuzz")
    env = {**os.environ, "SPENDSENTRY_BROKER": f"kafka://{broker}", "SPENDSENTRY_TOPIC_PREFIX": prefix,
           "SPENDSENTRY_APP_ID": prefix, "SPENDSENTRY_WEB_PORT": str(dead_port()),
           "SPENDSENTRY_DATA_DIR": str(tmp / "data"), "SPENDSENTRY_API_TOKENS": TOKEN,
           "SPENDSENTRY_SLACK_SIGNING_SECRET": SIGNING, "SPENDSENTRY_MAX_BODY_BYTES": str(256 * 1024),
           # destinations are checked at creation; this machine resolves no public name
           "SPENDSENTRY_WEBHOOK_ALLOWLIST": "hooks.example.com"}
    worker = Worker(prefix, env, tmp / "worker.log").start()
    deadline = time.monotonic() + 120
    while True:
        assert worker.process is not None and worker.process.poll() is None, worker.log()
        try:
            if httpx.get(f"{worker.url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"worker not ready\n{worker.log()}"
        time.sleep(0.3)
    yield worker
    worker.kill(signal.SIGTERM)


@pytest.fixture(scope="module")
def client(worker: Worker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=worker.url, timeout=30, headers=AUTH) as c:
        yield c


def assert_clear(response: httpx.Response, allowed: set[int]) -> Any:
    """Not a 5xx, one of ``allowed``, and a JSON body (an ``error`` text for 4xx)."""
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    assert response.status_code in allowed, f"{response.status_code}: {response.text[:500]}"
    if response.status_code == 204:
        return None
    body = response.json()
    if response.status_code >= 400 and "errors" not in body and "ok" not in body:
        assert isinstance(body.get("error"), str) and body["error"], body
    return body


def assert_clear_status(response: httpx.Response, allowed: set[int]) -> None:
    assert response.status_code in allowed, f"{response.status_code}: {response.text[:500]}"


# -- strategies --------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from([-1, 0, 10**18, 1e308, -1e308, "", "NaN", "Infinity", "1e400", "2026-11-27T06:00:00Z",
                     "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", 946684799, 4102444800, TS * 1000, "x" * 3000]),
)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=12), c,
                                                                                           max_size=4), max_leaves=15)
EVENT = {"event_id": "fz-1", "timestamp": TS, "provider": "openai", "model": "gpt-4o", "input_tokens": 100,
         "output_tokens": 10}
hostile_events = st.fixed_dictionaries({}, optional={name: json_values | json_scalars for name in (
    *EVENT, "cached_input_tokens", "cache_creation_input_tokens", "reasoning_tokens", "cost_usd", "request_count",
    "team", "service", "tags", "service_tier", "unknown_field")}).map(lambda d: {**EVENT, **d})
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"[", b"null", b"1", b'"str"', b"[]", b"{}", b"NaN", b'{"a": NaN}',
                     b'{"input_tokens": Infinity}', b"\xff\xfe\x00garbage", b'{"a": "\xed\xa0\x80"}',
                     b'{"a": "\\ud800"}', b"[" * 5000 + b"]" * 5000, b'{"a":' * 2000 + b"1" + b"}" * 2000,
                     b"1e400", b'{"input_tokens": 1e400}', b"\x00" * 100, b"\n\n\n", b"{}\n{\n[]"]),
)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)


# -- POST /v1/events -----------------------------------------------------------------------

@FUZZ
@given(body=raw_bodies)
def test_events_raw_bytes(client: httpx.Client, body: bytes) -> None:
    response = client.post("/v1/events", content=body, headers=AUTH)
    result = assert_clear(response, {202, 400, 413})
    if response.status_code == 400 and "errors" in result:
        assert result["accepted"] == 0 and all(e["reason"] for e in result["errors"])


@FUZZ
@given(events=st.lists(hostile_events, min_size=1, max_size=5), ndjson=st.booleans())
def test_events_hostile_fields(client: httpx.Client, events: list[dict], ndjson: bool) -> None:
    body = b"\n".join(_dumps(e) for e in events) if ndjson else _dumps(events)
    result = assert_clear(client.post("/v1/events", content=body, headers=AUTH), {202, 400})
    assert result["accepted"] + result["rejected"] == len(events)
    for error in result["errors"]:
        assert error["reason"] and isinstance(error["index"], int)


def test_events_specific_hostile_cases(client: httpx.Client, worker: Worker) -> None:
    cases = {
        "negative tokens": ({**EVENT, "input_tokens": -1}, "input_tokens"),
        "absurd tokens": ({**EVENT, "input_tokens": 10**19}, "input_tokens"),
        "negative cost": ({**EVENT, "cost_usd": -0.01}, "cost_usd"),
        "absurd cost": ({**EVENT, "cost_usd": 1e300}, "cost_usd"),
        "far past": ({**EVENT, "timestamp": "1970-01-01T00:00:00Z"}, "timestamp"),
        "far future": ({**EVENT, "timestamp": 10**15}, "timestamp"),
        "milliseconds": ({**EVENT, "timestamp": TS * 1000}, "timestamp"),
        "string tokens": ({**EVENT, "output_tokens": "10"}, "output_tokens"),
    }
    for name, (event, field) in cases.items():
        response = client.post("/v1/events", content=_dumps(event), headers=AUTH)
        result = assert_clear(response, {400})
        assert result["errors"][0]["field"] == field, (name, result)
    # NaN / Infinity are not JSON: an invalid-JSON error, not a crash
    for raw in (b'{"cost_usd": NaN}', b'{"input_tokens": Infinity}'):
        result = assert_clear(client.post("/v1/events", content=raw, headers=AUTH), {400})
        assert result["errors"][0]["reason"].startswith("invalid JSON")
    # huge payload: refused by size before parsing, with or without a Content-Length
    assert_clear(client.post("/v1/events", content=b"[" + b"{}," * 200_000 + b"{}]", headers=AUTH), {413})
    chunks = (b"x" * 65536 for _ in range(8))
    assert_clear(client.post("/v1/events", content=chunks, headers=AUTH), {413})
    # duplicate ids are accepted at the door and dropped by the engine
    dup = {**EVENT, "event_id": f"dup-{uuid.uuid4().hex[:6]}", "timestamp": time.time() // 60 * 60}
    result = assert_clear(client.post("/v1/events", content=_dumps([dup, dup]), headers=AUTH), {202})
    assert result["accepted"] == 2
    deadline = time.monotonic() + 90
    while httpx.get(f"{worker.url}/v1/spend", timeout=10, headers=AUTH).json()["counters"]["duplicates"] < 1:
        assert time.monotonic() < deadline, "the duplicate was not dropped"
        time.sleep(0.5)


def test_events_unknown_format_and_missing_token(client: httpx.Client) -> None:
    assert_clear(client.post("/v1/events?format=%00%ff", content=b"{}", headers=AUTH), {400})
    assert_clear(httpx.post(f"{client.base_url}/v1/events", content=b"{}", timeout=30), {401})  # no token at all
    assert_clear(client.post("/v1/events", content=b"{}", headers={"Authorization": b"Bearer \xc3\xa9\xff"}), {401})
    assert_clear(client.post("/v1/events", content=b"{}", headers={"Authorization": "Basic Zm9v"}), {401})


# -- subscriptions and budgets ---------------------------------------------------------------

SUBSCRIPTION = {"name": "s", "match": {"model": "gpt-4*"}, "alert_types": ["cost_spike"], "min_severity": "warning",
                "destination": {"type": "webhook", "url": "https://hooks.example.com/x", "secret": "whsec_" + "A" * 32}}
BUDGET = {"name": "b", "match": {"model": "gpt-4o"}, "period": "day", "timezone": "UTC", "amount_usd": 5,
          "thresholds_pct": [50, 80, 100]}


def _hostile_record(base: dict) -> st.SearchStrategy[dict]:
    fields = st.fixed_dictionaries({}, optional={name: json_values for name in (*base, "id", "extra")})
    return fields.map(lambda d: {**base, **d}) | json_values.filter(lambda v: isinstance(v, dict))


@pytest.mark.parametrize("path,base", [("/v1/subscriptions", SUBSCRIPTION), ("/v1/budgets", BUDGET)])
def test_records_accept_the_good_one(client: httpx.Client, path: str, base: dict) -> None:
    response = client.post(path, content=_dumps(base), headers=AUTH)
    assert_clear(response, {201})


@FUZZ
@given(data=st.data())
@pytest.mark.parametrize("path,base", [("/v1/subscriptions", SUBSCRIPTION), ("/v1/budgets", BUDGET)])
def test_records_hostile_bodies(client: httpx.Client, path: str, base: dict, data: st.DataObject) -> None:
    if data.draw(st.booleans()):
        body = _dumps(data.draw(_hostile_record(base)))
    else:
        body = data.draw(raw_bodies)
    created = assert_clear(client.post(path, content=body, headers=AUTH), {201, 400, 413})
    if created and "id" in created and not created.get("error"):
        record = f"{path}/{created['id']}"
        patch = _dumps(data.draw(_hostile_record({})))
        assert_clear(client.patch(record, content=patch, headers=AUTH), {200, 400, 413})
        assert_clear(client.put(record, content=data.draw(raw_bodies), headers=AUTH), {200, 400, 413})
        assert_clear(client.get(record), {200})
    # whatever was stored, listing still works
    assert_clear(client.get(path), {200})


def test_records_odd_ids_and_auth(client: httpx.Client) -> None:
    for path in ("/v1/subscriptions", "/v1/budgets"):
        for record_id in ("nope", "%00", "%ff%fe", "x" * 2000, "..%2F..%2Fetc"):
            assert_clear(client.get(f"{path}/{record_id}"), {404})
            assert_clear(client.delete(f"{path}/{record_id}", headers=AUTH), {404})
            assert_clear(client.patch(f"{path}/{record_id}", content=b"{}", headers=AUTH), {404})
        assert_clear(httpx.post(f"{client.base_url}{path}", content=_dumps(SUBSCRIPTION), timeout=30), {401})


# -- alerts and feedback ----------------------------------------------------------------------

@FUZZ
@given(limit=st.text(max_size=12), alert_id=st.text(min_size=1, max_size=40).filter(lambda s: s.strip(".") != ""))  # "." and ".." are path steps
def test_alert_queries(client: httpx.Client, limit: str, alert_id: str) -> None:
    assert_clear(client.get("/v1/alerts", params={"limit": limit}), {200, 400})
    # 404 from the app (JSON) or, for ids holding an encoded '/', from aiohttp's router (text)
    assert_clear_status(client.get(f"/v1/alerts/{quote(alert_id, safe='')}"), {404})


@FUZZ
@given(body=raw_bodies | json_values.map(_dumps))
def test_feedback_hostile_bodies(client: httpx.Client, body: bytes) -> None:
    assert_clear(client.post("/v1/alerts/al_missing/feedback", content=body, headers=AUTH), {400, 404, 413})


# -- Slack interactivity ------------------------------------------------------------------------

payloads = st.one_of(
    json_values,
    st.fixed_dictionaries({"type": st.just("block_actions")}, optional={
        "user": json_values, "channel": json_values, "container": json_values, "message": json_values,
        "response_url": json_values,
        "actions": st.lists(st.fixed_dictionaries({}, optional={
            "action_id": st.sampled_from(["ack", "snooze_1h", "expected", "other"]) | json_scalars,
            "value": st.text(max_size=30) | json_scalars}), max_size=3) | json_values}),
)


@FUZZ
@given(payload=payloads, raw=st.none() | raw_bodies)
def test_slack_interactivity_signed_hostile_payloads(client: httpx.Client, payload: Any, raw: bytes | None) -> None:
    """Correctly signed (so the body reaches the parser) but hostile: 200 with an error or 400; a body
    hypothesis draws twice within a second is the same signed request, refused as a replay (401)."""
    body = raw if raw is not None else urlencode({"payload": _dumps(payload).decode()}).encode()
    headers = sign_request(SIGNING, body, int(time.time()))
    response = client.post("/v1/slack/interactivity", content=body, headers=headers)
    if response.status_code == 401:
        assert response.json()["error"].startswith("replayed"), response.text
    else:
        assert_clear(response, {200, 400, 413})


@FUZZ
@given(body=raw_bodies, timestamp=st.binary(max_size=20), signature=st.binary(max_size=80))
def test_slack_interactivity_forged(client: httpx.Client, body: bytes, timestamp: bytes, signature: bytes) -> None:
    headers = {"X-Slack-Request-Timestamp": timestamp, "X-Slack-Signature": signature}
    try:
        response = client.post("/v1/slack/interactivity", content=body, headers=headers)
    except httpx.LocalProtocolError:
        return  # the client refused to send such a header (CR/LF, NUL)
    # aiohttp itself answers 400 to header bytes it cannot parse; the app answers 401
    assert_clear(response, {400, 401}) if response.headers.get("content-type", "").startswith("application/json") \
        else assert_clear_status(response, {400})


def test_worker_still_healthy(client: httpx.Client) -> None:
    assert_clear(client.get("/healthz"), {200})
    assert_clear(client.get("/v1/spend"), {200})


# -- schemathesis over /openapi.json ------------------------------------------------------------

def test_served_document_is_the_module_document(client: httpx.Client) -> None:
    assert client.get("/openapi.json").json() == orjson.loads(orjson.dumps(OPENAPI))


try:
    import schemathesis
except ImportError:  # pragma: no cover - the test extra installs it
    schemathesis = None

if schemathesis is not None:
    schema = schemathesis.openapi.from_dict(orjson.loads(orjson.dumps(OPENAPI)))

    from schemathesis.checks import (content_type_conformance, not_a_server_error, response_schema_conformance,
                                     status_code_conformance)

    #: no 5xx, and every answer's status, content type and body are the ones the document declares.
    #: (Not ``positive_data_acceptance``: the document types query strings like ``group_by`` as free text
    #: and the API rightly answers 400, a documented status, to values it cannot use.)
    CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

    @schema.parametrize()
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def test_openapi_operations_conform(case: Any, worker: Worker) -> None:
        case.call_and_validate(base_url=worker.url, headers=AUTH, checks=CHECKS, timeout=30)
