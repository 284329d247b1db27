"""WebhookSink against the real local WebhookReceiver (aiohttp over TCP)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from alerts.receiver import WebhookReceiver
from alerts.retry import ExponentialBackoff
from alerts.signing import generate_secret, verify
from alerts.sinks.webhook import WebhookSink, webhook_body, webhook_id
from schemas.alert import Alert
from schemas.errors import ConfigError
from tests.support import SleepRecorder, make_alert

SECRET = generate_secret()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    async with WebhookReceiver(SECRET) as rx:
        yield rx


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def sink(receiver: WebhookReceiver, sleep: SleepRecorder) -> AsyncIterator[WebhookSink]:
    assert receiver.url is not None
    out = WebhookSink(receiver.url, SECRET, sleep=sleep,
                      retry=ExponentialBackoff(max_attempts=4, base_s=0.5, max_s=5.0, jitter=0.0))
    yield out
    await out.aclose()


async def test_signed_delivery_is_verified_and_recorded(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    """One POST, signature accepted, Standard Webhooks envelope with the alert as data."""
    alert = make_alert()
    result = await sink.send(alert)
    assert (True, 1, 204) == (result.ok, result.attempts, result.status)
    assert 0 == receiver.rejected
    [got] = receiver.received
    assert webhook_id(alert) == got["webhook_id"] == result.ref["webhook_id"]
    assert "spendsentry.alert.firing" == got["body"]["type"]
    assert alert == Alert.from_dict(got["body"]["data"])
    assert got["body"]["timestamp"].endswith("Z")


async def test_resolved_has_its_own_type_and_id(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    firing, resolved = make_alert(), make_alert("resolved")
    assert (await sink.send(firing)).ok and (await sink.send(resolved)).ok
    assert ["spendsentry.alert.firing", "spendsentry.alert.resolved"] == [r["body"]["type"] for r in receiver.received]
    assert webhook_id(firing) != webhook_id(resolved)
    assert webhook_id(resolved) == webhook_id(make_alert("resolved"))


def test_every_state_change_of_one_incident_has_its_own_webhook_id() -> None:
    """An escalation, a reopen and a second resolution repeat the alert id and status of an earlier
    message: a receiver that dedupes on webhook-id (as Standard Webhooks asks) must not drop them."""
    first = make_alert()
    escalated = make_alert(severity="critical", window_end=first.window_end + 60, triggered_at=first.triggered_at + 60,
                           details={"escalated_from": "warning"})
    resolved = make_alert("resolved", triggered_at=first.triggered_at + 600)
    reopened = make_alert(triggered_at=first.triggered_at + 900, details={"reopened": True})
    resolved_again = make_alert("resolved", triggered_at=first.triggered_at + 1500)
    ids = [webhook_id(a) for a in (first, escalated, resolved, reopened, resolved_again)]
    assert len(set(ids)) == 5
    assert webhook_id(Alert.from_dict(escalated.to_dict())) == webhook_id(escalated)  # a redelivery keeps it


async def test_webhook_id_is_stable_across_retries(
    sink: WebhookSink, receiver: WebhookReceiver, sleep: SleepRecorder
) -> None:
    """Two 503s then success: three attempts, one webhook-id, backoff waits taken via the injected sleep."""
    receiver.fail_next(2, 503)
    alert = make_alert()
    result = await sink.send(alert)
    assert (True, 3) == (result.ok, result.attempts)
    assert [503, 503, 204] == [a.status for a in receiver.attempts]
    assert {webhook_id(alert)} == {a.webhook_id for a in receiver.attempts}
    assert [0.5, 1.0] == sleep.calls
    assert 1 == len(receiver.received)


async def test_429_retry_after_is_honoured(sink: WebhookSink, receiver: WebhookReceiver, sleep: SleepRecorder) -> None:
    receiver.fail_next(1, 429, retry_after=0.01)
    result = await sink.send(make_alert())
    assert (True, 2) == (result.ok, result.attempts)
    assert [0.01] == sleep.calls


async def test_410_is_permanent_and_not_retried(
    sink: WebhookSink, receiver: WebhookReceiver, sleep: SleepRecorder
) -> None:
    """410 Gone: one attempt, flagged permanent, the error says the endpoint is gone."""
    receiver.fail_next(5, 410)
    result = await sink.send(make_alert())
    assert (False, 1, 410, True) == (result.ok, result.attempts, result.status, result.permanent)
    assert result.error is not None and "gone" in result.error
    assert [] == sleep.calls and 1 == len(receiver.attempts)


async def test_400_is_not_retried(sink: WebhookSink, receiver: WebhookReceiver, sleep: SleepRecorder) -> None:
    receiver.fail_next(5, 400)
    result = await sink.send(make_alert())
    assert (False, 1, 400, True) == (result.ok, result.attempts, result.status, result.permanent)
    assert [] == sleep.calls


async def test_persistent_5xx_gives_up_after_max_attempts(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    receiver.fail_next(10, 502)
    result = await sink.send(make_alert())
    assert (False, 4, 502, False) == (result.ok, result.attempts, result.status, result.permanent)


async def test_wrong_secret_is_rejected_by_the_receiver(receiver: WebhookReceiver) -> None:
    """The receiver answers 401 to a bad signature and counts it; the sink reports a permanent failure."""
    assert receiver.url is not None
    sink = WebhookSink(receiver.url, generate_secret(), sleep=SleepRecorder())
    result = await sink.send(make_alert())
    await sink.aclose()
    assert (False, 401, 1) == (result.ok, result.status, receiver.rejected)
    assert [] == receiver.received


async def test_duplicate_delivery_is_deduplicated_by_the_receiver(sink: WebhookSink, receiver: WebhookReceiver) -> None:
    alert = make_alert()
    assert (await sink.send(alert)).ok and (await sink.send(alert)).ok
    assert 1 == len(receiver.received) and 2 == len(receiver.attempts)


async def test_on_alert_callback_gets_the_alert() -> None:
    seen: list[Alert] = []

    async def on_alert(alert: Alert) -> None:
        seen.append(alert)

    async with WebhookReceiver(SECRET, on_alert=on_alert) as rx:
        assert rx.url is not None
        sink = WebhookSink(rx.url, SECRET)
        await sink.send(make_alert())
        await sink.aclose()
    assert [make_alert()] == seen


async def test_headers_and_body_with_mock_transport() -> None:
    """The exact wire format: content-type, three webhook headers, and a body the signature covers."""
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200)

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        sink = WebhookSink("https://hooks.example.com/x", SECRET, client=client, clock=lambda: 1795759500.7)
        assert (await sink.send(make_alert())).ok
        await sink.aclose()
        assert not client.is_closed  # a caller's client is the caller's to close
    [req] = requests
    assert "application/json" == req.headers["content-type"]
    assert "1795759500" == req.headers["webhook-timestamp"]
    verify(SECRET, req.headers, req.content, now=1795759500)
    assert webhook_body(make_alert(), 1795759500) == req.content
    assert "2026-11-27T06:05:00Z" == orjson.loads(req.content)["timestamp"]


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ConfigError):
        WebhookSink("ftp://example.com/", SECRET)
    with pytest.raises(ConfigError):
        WebhookSink("https://example.com/", "whsec_%%%")
