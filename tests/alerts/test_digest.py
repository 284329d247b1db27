"""Spend digests: periods in a time zone (DST included), the builder, Slack blocks, the signed webhook."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from alerts.digest import (EVENT_TYPE, Period, build_digest, dashboard_link, digest_blocks, digest_webhook_id,
                           fallback_text, last_closed_period, period_of, previous_period)
from alerts.retry import ExponentialBackoff
from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from alerts.sinks.slack import SlackSink
from alerts.sinks.webhook import WebhookSink
from alerts.slack_blocks import FIELD_MAX, FIELDS_MAX, HEADER_MAX, SECTION_TEXT_MAX
from schemas.subscription import Subscription, validate_subscription
from tests.support import SleepRecorder, make_alert
from tests.support.slack_api import SlackAPIServer

PARIS = ZoneInfo("Europe/Paris")
SECRET = generate_secret()


def at(text: str, zone: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def sub(**changes: Any) -> Subscription:
    body = {"name": "search team", "match": {"team": "search"}, "digest": "daily", "timezone": "Europe/Paris",
            "destination": {"type": "webhook", "url": "https://hooks.example.com/d", "secret": SECRET}} | changes
    return validate_subscription(body)


class TestPeriods:
    def test_daily_period_is_the_local_day(self) -> None:
        p = period_of("daily", datetime(2026, 6, 2).date(), PARIS)
        assert (p.label, p.start, p.end) == ("2026-06-02", at("2026-06-02T00:00"), at("2026-06-03T00:00"))

    @pytest.mark.parametrize("day, hours", [("2026-03-29", 23), ("2026-10-25", 25), ("2026-03-30", 24)])
    def test_days_across_dst_are_23_or_25_hours(self, day: str, hours: int) -> None:
        p = period_of("daily", datetime.fromisoformat(day).date(), PARIS)
        assert p.end - p.start == hours * 3600 and p.start == at(f"{day}T00:00")

    def test_weekly_period_runs_monday_to_monday_and_loses_the_dst_hour(self) -> None:
        p = period_of("weekly", datetime(2026, 3, 26).date(), PARIS)  # a Thursday; clocks go forward on Sunday 29
        assert p.label == "2026-W13" and p.start == at("2026-03-23T00:00") and p.end == at("2026-03-30T00:00")
        assert p.end - p.start == 7 * 86400 - 3600

    def test_last_closed_period_is_the_one_before_now_in_the_zone(self) -> None:
        # 23:30 UTC on 28 March is already 00:30 on the 29th in Paris: the 28th just closed there
        now = datetime(2026, 3, 28, 23, 30, tzinfo=ZoneInfo("UTC")).timestamp()
        assert last_closed_period("daily", PARIS, now).label == "2026-03-28"
        assert last_closed_period("daily", ZoneInfo("UTC"), now).label == "2026-03-27"
        assert last_closed_period("weekly", PARIS, at("2026-03-30T00:00")).label == "2026-W13"
        assert last_closed_period("weekly", PARIS, at("2026-03-29T23:59")).label == "2026-W12"

    def test_previous_period_of_a_dst_day_and_week(self) -> None:
        day = period_of("daily", datetime(2026, 3, 30).date(), PARIS)
        assert previous_period(day, PARIS) == Period("daily", "2026-03-29", at("2026-03-29T00:00"),
                                                     at("2026-03-30T00:00"))
        week = period_of("weekly", datetime(2026, 1, 1).date(), PARIS)
        assert week.label == "2026-W01" and previous_period(week, PARIS).label == "2025-W52"

    def test_unknown_kind_is_refused(self) -> None:
        with pytest.raises(ValueError, match="daily or weekly"):
            period_of("hourly", datetime(2026, 1, 1).date(), PARIS)


DAY = period_of("daily", datetime(2026, 6, 2).date(), PARIS)
BEFORE = previous_period(DAY, PARIS)


def build(s: Subscription | None = None, **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "spend": [({"team": "search", "model": "gpt-4o"}, 60.0), ({"team": "search", "model": "o3"}, 40.0),
                  ({"team": "ads", "model": "gpt-4o"}, 500.0)],
        "previous_spend": [({"team": "search", "model": "gpt-4o"}, 20.0), ({"team": "search", "model": "o3"}, 45.0),
                           ({"team": "search", "model": "claude"}, 15.0)],
        "key_dims": ("model",),
        "budgets": [({"id": "b1", "name": "search monthly", "match": {"team": "search"}, "amount_usd": 1000},
                     {"spent_usd": 250.0, "pct": 25.0, "projected_period_spend_usd": 900.0}),
                    ({"id": "b2", "name": "ads monthly", "match": {"team": "ads"}, "amount_usd": 5000}, None)],
        "alerts": [make_alert(key={"team": "search", "model": "gpt-4o"}, triggered_at=DAY.start + 3600),
                   make_alert(key={"team": "ads", "model": "gpt-4o"}, triggered_at=DAY.start + 3600),
                   make_alert(key={"team": "search", "model": "o3"}, triggered_at=DAY.end),
                   replace(make_alert(key={"team": "search", "cluster": "c1"}, triggered_at=DAY.start + 7200),
                           type="gpu_idle", observed=12.345, expected=0.0)],
        "base_url": "https://spend.example.com/",
    } | overrides
    return build_digest(s or sub(), DAY, BEFORE, **args)


class TestBuildDigest:
    def test_spend_and_change_against_the_previous_period_of_the_subscriptions_scope(self) -> None:
        d = build()
        assert (d["spend_usd"], d["previous_spend_usd"], d["change_pct"]) == (100.0, 80.0, 25.0)
        assert d["period"]["label"] == "2026-06-02" and d["previous_period"]["label"] == "2026-06-01"

    def test_top_movers_by_size_of_change_either_way(self) -> None:
        movers = build()["top_movers"]
        assert [(m["key"]["model"], m["change_usd"]) for m in movers] == [("gpt-4o", 40.0), ("claude", -15.0),
                                                                           ("o3", -5.0)]

    def test_budgets_in_scope_only(self) -> None:
        (budget,) = build()["budgets"]
        assert budget["name"] == "search monthly" and budget["spent_usd"] == 250.0 and budget["pct"] == 25.0

    def test_the_periods_covered_alerts_and_gpu_idle_waste(self) -> None:
        d = build()
        assert d["alerts"]["count"] == 2  # not ads', not the one at the period's end
        assert {a["type"] for a in d["alerts"]["items"]} == {"cost_spike", "gpu_idle"}
        assert d["gpu_idle_waste_usd"] == 12.35

    def test_no_gpu_idle_alert_means_waste_unknown(self) -> None:
        assert build(alerts=[])["gpu_idle_waste_usd"] is None and build(alerts=[])["alerts"]["count"] == 0

    def test_no_previous_spend_has_no_change_pct(self) -> None:
        assert build(previous_spend=[])["change_pct"] is None

    def test_dashboard_link_is_the_teams_view(self) -> None:
        assert build()["dashboard_url"] == "https://spend.example.com/ui/?team=search"
        assert dashboard_link("http://h:6066", {"team": "a b&c", "model": "gpt-*"}) == "http://h:6066/ui/?team=a+b%26c"
        assert dashboard_link("http://h:6066", {}) == "http://h:6066/ui/"

    def test_an_unfiltered_subscription_sees_all_spend(self) -> None:
        d = build(sub(match={}))
        assert d["spend_usd"] == 600.0 and len(d["budgets"]) == 2 and d["alerts"]["count"] == 3


class TestSlackBlocks:
    def test_layout(self) -> None:
        blocks = digest_blocks(build())
        assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "section", "context",
                                               "actions"]
        assert blocks[0]["text"]["text"] == "Daily spend digest 2026-06-02 — search team"
        texts = [f["text"] for f in blocks[1]["fields"]]
        assert "*Spend*\n$100.00" in texts and "*Change*\n+25.0%" in texts and "*GPU idle waste*\n$12.35" in texts
        assert "gpt-4o: $60.00 (+$40.00)" in blocks[2]["text"]["text"]
        assert blocks[-1]["elements"][0]["url"] == "https://spend.example.com/ui/?team=search"
        assert "$100.00" in fallback_text(build())

    def test_slack_limits_hold_for_huge_input(self) -> None:
        long = "x" * 5000
        d = build(sub(name="n" * 200), alerts=[make_alert(key={"team": "search", "model": f"m{i}"}, summary=long,
                                                          triggered_at=DAY.start + i) for i in range(40)],
                  spend=[({"team": "search", "model": f"{long}{i}"}, float(i)) for i in range(50)],
                  budgets=[({"id": f"b{i}", "name": long, "match": {}, "amount_usd": 1}, None) for i in range(30)])
        blocks = digest_blocks(d)
        assert len(blocks) <= 50 and len(blocks[0]["text"]["text"]) <= HEADER_MAX
        for block in blocks:
            assert len(block.get("text", {}).get("text", "")) <= SECTION_TEXT_MAX
            assert len(block.get("fields", [])) <= FIELDS_MAX
            assert all(len(f["text"]) <= FIELD_MAX for f in block.get("fields", []))
            assert len(block.get("elements", [])) <= 10

    def test_mrkdwn_is_escaped(self) -> None:
        d = build(spend=[({"team": "search", "model": "<!channel>"}, 5.0)])
        assert "&lt;!channel&gt;" in digest_blocks(d)[2]["text"]["text"]

    async def test_posted_through_the_slack_sink(self) -> None:
        async with SlackAPIServer(token="xoxb-t") as slack:
            assert slack.base_url is not None
            sink = SlackSink("xoxb-t", "#finance", base_url=slack.base_url, sleep=SleepRecorder())
            d = build()
            result = await sink.post_message(fallback_text(d), digest_blocks(d))
            await sink.aclose()
        assert result.ok and result.ref["ts"]
        (call,) = slack.calls_to("chat.postMessage")
        assert call.args["blocks"][0]["type"] == "header" and call.args["channel"] == "#finance"


class TestWebhook:
    async def test_signed_with_a_distinct_type_and_a_stable_id(self) -> None:
        async with WebhookReceiver(SECRET) as receiver:
            assert receiver.url is not None
            sink = WebhookSink(receiver.url, SECRET, sleep=SleepRecorder(),
                               retry=ExponentialBackoff(max_attempts=3, base_s=0.1, jitter=0.0))
            d = build()
            receiver.fail_next(1, 503)
            first = await sink.send_digest(d)
            again = await sink.send_digest(d)
            await sink.aclose()
        assert first.ok and first.attempts == 2 and again.ok and receiver.rejected == 0
        (got,) = receiver.received  # the resend carried the same webhook-id: deduplicated
        assert got["webhook_id"] == digest_webhook_id(d["subscription_id"], "2026-06-02") == first.ref["webhook_id"]
        assert got["body"]["type"] == EVENT_TYPE and got["body"]["data"]["spend_usd"] == 100.0
        assert digest_webhook_id(d["subscription_id"], "2026-06-03") != got["webhook_id"]
