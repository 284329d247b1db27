"""Slack: one message per alert per channel, escalations and resolution in the thread, buttons,
signed interactivity callbacks, and per-channel pacing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from urllib.parse import urlencode

import orjson
import pytest
from aiohttp import ClientSession, web

from alerts.sinks.slack import ChannelPacer, SlackSink
from alerts.slack_interactivity import (
    InteractionError,
    SlackSignatureError,
    parse_action,
    sign_request,
    update_for_action,
    verify_request,
)
from tests.support import SleepRecorder, make_alert
from tests.support.slack_api import SlackAPIServer

TOKEN = "xoxb-test-token"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"


@pytest.fixture
async def slack() -> AsyncIterator[SlackAPIServer]:
    async with SlackAPIServer(token=TOKEN) as server:
        yield server


@pytest.fixture
async def sink(slack: SlackAPIServer) -> AsyncIterator[SlackSink]:
    assert slack.base_url
    out = SlackSink(TOKEN, "#cost-alerts", base_url=slack.base_url, sleep=SleepRecorder())
    yield out
    await out.aclose()


async def test_one_message_per_incident_escalation_and_resolution_in_thread(
        sink: SlackSink, slack: SlackAPIServer) -> None:
    fired = await sink.send(make_alert())
    dup = await sink.send(make_alert())
    assert dup.ok and dup.ref.get("duplicate") and 1 == len(slack.calls)
    parent = fired.ref["ts"]
    actions = slack.messages[parent]["blocks"][-1]
    assert ["ack", "snooze_1h", "expected"] == [e["action_id"] for e in actions["elements"]]
    assert {make_alert().alert_id} == {e["value"] for e in actions["elements"]}
    up = await sink.send(replace(make_alert(), severity="critical"))
    assert up.ref["escalated"]
    assert ["chat.postMessage", "chat.update", "chat.postMessage"] == [c.method for c in slack.calls]
    assert parent == slack.calls[2].args["thread_ts"] and "warning → critical" in slack.calls[2].args["text"]
    assert (await sink.send(make_alert("resolved"))).ok
    assert (await sink.send(make_alert("resolved"))).ref.get("duplicate")
    top = [m for m in slack.messages.values() if "thread_ts" not in m]
    assert 1 == len(top) and "RESOLVED" in top[0]["blocks"][0]["text"]["text"]
    assert "actions" not in [b["type"] for b in top[0]["blocks"]]
    assert 2 == len([m for m in slack.messages.values() if m.get("thread_ts") == parent])


async def test_refs_store_survives_a_new_sink(slack: SlackAPIServer) -> None:
    """A table-backed refs store: a restarted worker still resolves in the thread."""
    assert slack.base_url
    refs: dict[str, dict] = {}
    first = SlackSink(TOKEN, "#c", base_url=slack.base_url, refs=refs, sleep=SleepRecorder())
    await first.send(make_alert())
    await first.aclose()
    second = SlackSink(TOKEN, "#c", base_url=slack.base_url, refs=refs, sleep=SleepRecorder())
    result = await second.send(make_alert("resolved"))
    await second.aclose()
    assert "reply_ts" in result.ref and "chat.update" == slack.calls[1].method


def click_body(alert_id: str, action_id: str = "ack", channel: str = "C0123", ts: str = "1.000001") -> bytes:
    payload = {"type": "block_actions", "user": {"id": "U42", "username": "ana"}, "channel": {"id": channel},
               "container": {"type": "message", "message_ts": ts, "channel_id": channel},
               "actions": [{"action_id": action_id, "value": alert_id, "type": "button"}],
               "response_url": "https://hooks.slack.com/actions/x"}
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def test_signature_verification() -> None:
    body = click_body("al_1")
    now = 1795759200
    headers = sign_request(SIGNING, body, now)
    verify_request(SIGNING, headers, body, now=now + 299)
    verify_request(SIGNING, {k.lower(): v for k, v in headers.items()}, body, now=now)
    cases = [(headers, body + b"x", now, "bad_signature"), (headers, body, now + 301, "stale_timestamp"),
             ({**headers, "X-Slack-Request-Timestamp": "x"}, body, now, "bad_timestamp"),
             ({"X-Slack-Signature": "v0=00"}, body, now, "missing_header"),
             (sign_request("other", body, now), body, now, "bad_signature")]
    for hdrs, raw, at, reason in cases:
        with pytest.raises(SlackSignatureError) as info:
            verify_request(SIGNING, hdrs, raw, now=at)
        assert reason == info.value.reason


def test_parse_action() -> None:
    action = parse_action(click_body("al_9", "snooze_1h"))
    assert ("al_9", "snooze_1h", "U42", "C0123", "1.000001", "SNOOZED") == (
        action.alert_id, action.action, action.user, action.channel, action.ts, action.state)
    assert 3600 == action.snoozed_until(0)
    for bad in (b"payload=notjson", b"x=1", click_body("al_9", "delete"),
                urlencode({"payload": '{"type": "view_submission"}'}).encode()):
        with pytest.raises(InteractionError):
            parse_action(bad)
    update = update_for_action(make_alert(), action)
    assert "SNOOZED" in update["blocks"][0]["text"]["text"] and "<@U42>" in orjson.dumps(update).decode()


async def test_button_click_round_trip_updates_message_and_thread(sink: SlackSink, slack: SlackAPIServer) -> None:
    """Slack posts a signed callback to our endpoint; we verify, parse and update the message."""
    alert = make_alert()
    fired = await sink.send(alert)

    async def endpoint(request: web.Request) -> web.Response:
        raw = await request.read()
        try:
            verify_request(SIGNING, request.headers, raw)
            action = parse_action(raw)
        except SlackSignatureError:
            return web.Response(status=401)
        result = await sink.set_state(action.alert_id, action.state, user=action.user)
        return web.Response(status=200 if result.ok else 500)

    app = web.Application()
    app.router.add_post("/slack/actions", endpoint)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/actions"
    try:
        body = click_body(alert.alert_id, "ack", ts=fired.ref["ts"])
        async with ClientSession() as http:
            async with http.post(url, data=body, headers=sign_request(SIGNING, body, int(time.time()))) as r:
                assert 200 == r.status
            async with http.post(url, data=body, headers=sign_request("forged", body, int(time.time()))) as r:
                assert 401 == r.status
    finally:
        await runner.cleanup()
    parent = slack.messages[fired.ref["ts"]]
    assert parent["blocks"][0]["text"]["text"].startswith(":eyes: ACKNOWLEDGED")
    assert "actions" == parent["blocks"][-1]["type"]
    assert any(m.get("thread_ts") == fired.ref["ts"] and "Acknowledged by <@U42>" in m["text"]
               for m in slack.messages.values())
    assert "ACKNOWLEDGED" == sink.refs.get(f"#cost-alerts|{alert.alert_id}")["state"]


async def test_pacer_spaces_posts_per_channel() -> None:
    now = [0.0]
    sleep = SleepRecorder()
    pacer = ChannelPacer(1.0, clock=lambda: now[0], sleep=sleep)
    assert [0.0, 1.0, 2.0, 0.0] == [await pacer.wait("#a"), await pacer.wait("#a"), await pacer.wait("#a"),
                                    await pacer.wait("#b")]
    now[0] = 10.0
    assert 0.0 == await pacer.wait("#a")
    assert [1.0, 2.0] == sleep.calls


async def test_sink_posts_are_paced(slack: SlackAPIServer) -> None:
    assert slack.base_url
    sleep = SleepRecorder()
    sink = SlackSink(TOKEN, "#c", base_url=slack.base_url, sleep=sleep,
                     pacer=ChannelPacer(1.0, clock=lambda: 0.0, sleep=sleep))
    for i in range(3):
        assert (await sink.send(make_alert(alert_id=f"al_{i}"))).ok
    await sink.aclose()
    assert [1.0, 2.0] == sleep.calls

