"""PagerDutySink against the local Events API v2 stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from alerts.retry import ExponentialBackoff
from alerts.sinks.pagerduty import PagerDutySink, pagerduty_event
from schemas.errors import ConfigError
from tests.support import SleepRecorder, make_alert
from tests.support.pagerduty_api import PagerDutyAPIServer, validate_event

KEY = "R0123456789abcdefghijklmnopqrstu"


@pytest.fixture
async def pd() -> AsyncIterator[PagerDutyAPIServer]:
    async with PagerDutyAPIServer() as server:
        yield server


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def sink(pd: PagerDutyAPIServer, sleep: SleepRecorder) -> AsyncIterator[PagerDutySink]:
    assert pd.base_url
    out = PagerDutySink(KEY, base_url=pd.base_url, sleep=sleep,
                        retry=ExponentialBackoff(max_attempts=4, base_s=0.5, max_s=5, jitter=0.0))
    yield out
    await out.aclose()


async def test_trigger_then_resolve_one_incident(sink: PagerDutySink, pd: PagerDutyAPIServer) -> None:
    alert = make_alert()
    first = await sink.send(alert)
    again = await sink.send(alert)  # a redelivery folds into the same incident
    resolved = await sink.send(make_alert("resolved"))
    assert all(r.ok and r.status == 202 for r in (first, again, resolved))
    trigger = pd.accepted[0]
    assert (alert.alert_id, "trigger") == (trigger["dedup_key"], trigger["event_action"])
    p = trigger["payload"]
    assert ("spendsentry", "warning", "gpt-4o", "cx", "cost_spike") == (
        p["source"], p["severity"], p["component"], p["group"], p["class"])
    assert alert.to_dict() == p["custom_details"] and p["timestamp"] == "2026-11-27T06:05:00Z"
    assert {alert.alert_id: {"status": "resolved", "triggers": 2, "summary": alert.summary,
                             "severity": "warning"}} == pd.incidents
    assert {"routing_key", "event_action", "dedup_key"} == set(pd.accepted[-1])


async def test_429_and_5xx_are_retried(sink: PagerDutySink, pd: PagerDutyAPIServer, sleep: SleepRecorder) -> None:
    pd.fail_next(1, 429, retry_after=0.02)
    assert (await sink.send(make_alert())).ok
    pd.fail_next(2, 502)
    result = await sink.send(make_alert())
    assert (True, 3) == (result.ok, result.attempts)
    assert [0.02, 0.5, 1.0] == sleep.calls
    assert [502, 502, 202] == [a["status"] for a in result.attempts_log]


async def test_400_is_final(sink: PagerDutySink, pd: PagerDutyAPIServer, sleep: SleepRecorder) -> None:
    pd.fail_next(3, 400)
    result = await sink.send(make_alert())
    assert (False, 1, 400, True) == (result.ok, result.attempts, result.status, result.permanent)
    assert [] == sleep.calls


async def test_stand_in_validates_like_pagerduty(pd: PagerDutyAPIServer) -> None:
    assert pd.base_url
    bad = PagerDutySink("x" * 32, base_url=pd.base_url, sleep=SleepRecorder())
    long_summary = make_alert(summary="s" * 5000, severity="critical")
    event = pagerduty_event(long_summary, KEY)
    assert 1024 == len(event["payload"]["summary"]) and [] == validate_event(event)
    assert validate_event({"routing_key": "short", "event_action": "trigger", "payload": {}})
    assert (await bad.send(long_summary)).ok
    await bad.aclose()


def test_bad_configuration() -> None:
    with pytest.raises(ConfigError):
        PagerDutySink("short")
    with pytest.raises(ConfigError):
        PagerDutySink(KEY, base_url="ftp://x")
