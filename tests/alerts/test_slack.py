"""SlackSink against a local Slack-Web-API look-alike, and the pure Block Kit rendering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from alerts.retry import ExponentialBackoff
from alerts.slack_interactivity import TOLERANCE_S, ReplayCache, SlackSignatureError, sign_request, verify_request
from alerts.sinks.slack import SlackSink
from alerts.slack_blocks import (FIELD_MAX, FIELDS_MAX, HEADER_MAX, delta_pct, fallback_text, message_blocks,
                                 render_blocks, window_text)
from tests.support import SleepRecorder, make_alert
from tests.support.slack_api import SlackAPIServer

TOKEN = "xoxb-test-token"


@pytest.fixture
async def slack() -> AsyncIterator[SlackAPIServer]:
    async with SlackAPIServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def sleep() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
async def sink(slack: SlackAPIServer, sleep: SleepRecorder) -> AsyncIterator[SlackSink]:
    assert slack.base_url is not None
    out = SlackSink(TOKEN, "#cost-alerts", base_url=slack.base_url, sleep=sleep,
                    retry=ExponentialBackoff(max_attempts=4, base_s=0.5, max_s=5.0, jitter=0.0))
    yield out
    await out.aclose()


class TestSlackSink:
    async def test_firing_posts_blocks_and_keeps_channel_and_ts(self, sink: SlackSink, slack: SlackAPIServer) -> None:
        """chat.postMessage with fallback text and Block Kit; ref holds the channel id and ts."""
        alert = make_alert()
        result = await sink.send(alert)
        assert result.ok, result.error
        [call] = slack.calls
        assert "chat.postMessage" == call.method
        assert f"Bearer {TOKEN}" == call.headers["Authorization"]
        assert "#cost-alerts" == call.args["channel"]
        assert message_blocks(alert) == call.args["blocks"]
        assert fallback_text(alert) == call.args["text"]
        assert {"channel": "C0123", "ts": call.response["ts"]} == result.ref
        assert ("C0123", call.response["ts"]) == sink.posted(alert.alert_id)

    async def test_429_retry_after_is_honoured_then_ok(
        self, sink: SlackSink, slack: SlackAPIServer, sleep: SleepRecorder
    ) -> None:
        """Two 429s with Retry-After: 0.01, then success; the waits equal Retry-After."""
        slack.rate_limit(2, retry_after=0.01)
        result = await sink.send(make_alert())
        assert (True, 3) == (result.ok, result.attempts)
        assert [429, 429, 200] == [c.status for c in slack.calls]
        assert [0.01, 0.01] == sleep.calls

    async def test_server_error_is_retried_with_backoff(
        self, sink: SlackSink, slack: SlackAPIServer, sleep: SleepRecorder
    ) -> None:
        slack.fail_next(2, 502)
        result = await sink.send(make_alert())
        assert (True, 3) == (result.ok, result.attempts)
        assert [0.5, 1.0] == sleep.calls

    async def test_resolved_updates_parent_and_replies_in_thread(self, sink: SlackSink, slack: SlackAPIServer) -> None:
        """Resolved after firing: chat.update on the parent to show RESOLVED, then a thread reply."""
        fired = await sink.send(make_alert())
        resolved = await sink.send(make_alert("resolved"))
        assert resolved.ok, resolved.error
        assert ["chat.postMessage", "chat.update", "chat.postMessage"] == [c.method for c in slack.calls]
        update, reply = slack.calls[1], slack.calls[2]
        parent_ts = fired.ref["ts"]
        assert ("C0123", parent_ts) == (update.args["channel"], update.args["ts"])
        assert "RESOLVED" in update.args["blocks"][0]["text"]["text"]
        assert "RESOLVED" in slack.messages[parent_ts]["blocks"][0]["text"]["text"]
        assert parent_ts == reply.args["thread_ts"]
        assert {"channel": "C0123", "ts": parent_ts, "reply_ts": reply.response["ts"]} == resolved.ref
        assert 2 == resolved.attempts

    async def test_resolved_without_known_parent_posts_new_message(self, sink: SlackSink, slack: SlackAPIServer) -> None:
        result = await sink.send(make_alert("resolved"))
        assert result.ok
        [call] = slack.calls
        assert "chat.postMessage" == call.method and "thread_ts" not in call.args
        assert "RESOLVED" in call.args["blocks"][0]["text"]["text"]

    async def test_api_error_is_a_permanent_failure(self, slack: SlackAPIServer, sleep: SleepRecorder) -> None:
        """invalid_auth comes back as HTTP 200 ok=false: reported, not raised, not retried."""
        assert slack.base_url is not None
        sink = SlackSink("xoxb-wrong", "#c", base_url=slack.base_url, sleep=sleep)
        result = await sink.send(make_alert())
        await sink.aclose()
        assert (False, True) == (result.ok, result.permanent)
        assert result.error is not None and "invalid_auth" in result.error
        assert [] == sleep.calls

    async def test_rate_limit_beyond_policy_is_reported(self, sink: SlackSink, slack: SlackAPIServer) -> None:
        slack.rate_limit(10, retry_after=0)
        result = await sink.send(make_alert())
        assert (False, 4, 429, False) == (result.ok, result.attempts, result.status, result.permanent)

    async def test_tracked_messages_are_bounded(self, slack: SlackAPIServer) -> None:
        assert slack.base_url is not None
        sink = SlackSink(TOKEN, "#c", base_url=slack.base_url, max_tracked=2, sleep=SleepRecorder())
        alerts = [make_alert(alert_id=f"al_{i}") for i in range(3)]
        for alert in alerts:
            assert (await sink.send(alert)).ok
        await sink.aclose()
        assert [None, True, True] == [sink.posted(a.alert_id) and True for a in alerts]


class TestRenderBlocks:
    def test_layout_header_fields_context(self) -> None:
        """header -> section with summary and fields -> context with id, detector and time."""
        alert = make_alert()
        header, section, context = render_blocks(alert)
        assert ":rotating_light: Cost spike — gpt-4o" == header["text"]["text"]
        stream = make_alert(key={"model": "gpt-4o", "service": "support-bot"})
        assert ":rotating_light: Cost spike — gpt-4o · support-bot" == render_blocks(stream)[0]["text"]["text"]
        texts = [f["text"] for f in section["fields"]]
        assert ["*model*\ngpt-4o", "*team*\ncx", "*Observed*\n$12.50", "*Expected*\n$1.25 (Δ +900%)",
                "*Window*\n2026-11-27 06:00–06:05 UTC", "*Severity*\n:large_orange_circle: warning",
                "*Score*\n0.9876"] == texts
        ctx = " ".join(e["text"] for e in context["elements"])
        assert alert.alert_id in ctx and "hst" in ctx and "2026-11-27T06:05:00Z" in ctx

    def test_resolved_header_and_peak(self) -> None:
        header, _, context = render_blocks(make_alert("resolved"))
        assert header["text"]["text"].startswith(":white_check_mark: RESOLVED: Cost spike")
        assert any("peak $14.00" in e["text"] for e in context["elements"])

    def test_slack_limits_are_respected(self) -> None:
        """Long names and many dimensions: header ≤150, ≤10 fields, each ≤2000 chars."""
        key = {f"dim{i}": "x" * 5000 for i in range(12)} | {"model": "m" * 400}
        header, section, _ = render_blocks(make_alert(key=key, summary="s" * 10_000))
        assert len(header["text"]["text"]) <= HEADER_MAX
        assert len(section["fields"]) <= FIELDS_MAX
        assert all(len(f["text"]) <= FIELD_MAX for f in section["fields"])
        assert len(section["text"]["text"]) <= 3000
        assert "*Other dimensions*" in section["fields"][4]["text"]

    def test_mrkdwn_control_characters_are_escaped(self) -> None:
        _, section, _ = render_blocks(make_alert(key={"team": "<!channel> & co"}))
        assert "*team*\n&lt;!channel&gt; &amp; co" == section["fields"][0]["text"]

    def test_helpers(self) -> None:
        assert "n/a" == delta_pct(3.0, 0.0) and "-50%" == delta_pct(1.0, 2.0)
        assert "2026-11-27 23:55–2026-11-28 00:05 UTC" == window_text(1795823700.0, 1795824300.0)
        assert fallback_text(replace(make_alert(), severity="critical")).startswith("[CRITICAL] Cost spike")


def test_a_signed_interaction_is_accepted_once_inside_the_window() -> None:
    body = b"payload=%7B%7D"
    headers = sign_request("signing-secret", body, 1_800_000_000)
    cache = ReplayCache()
    verify_request("signing-secret", headers, body, now=1_800_000_010)
    cache.check(headers, now=1_800_000_010)
    with pytest.raises(SlackSignatureError, match="replayed"):
        cache.check(headers, now=1_800_000_200)
    other = sign_request("signing-secret", body, 1_800_000_001)
    cache.check(other, now=1_800_000_200)  # a fresh click is not a replay
    cache.check(headers, now=1_800_000_000 + 2 * TOLERANCE_S)  # outside the window verify_request refuses it


def test_the_replay_cache_is_bounded() -> None:
    cache = ReplayCache(max_entries=3)
    for second in range(10):
        cache.check(sign_request("s", b"x", 1_800_000_000 + second), now=1_800_000_010)
    assert len(cache) <= 3
