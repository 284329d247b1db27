"""Faults on the real broker: a worker SIGKILLed at several points of a burst, and sinks that are
down, throttled or failing for a while. Every alert is delivered, none twice under different ids.

(The broker restart lives in ``test_zz_broker_restart.py`` so it runs last in a session.)
"""

from __future__ import annotations

import re
import signal
from collections import Counter, defaultdict

import httpx
import orjson
import pytest

from alerts.receiver import WebhookReceiver
from tests.integration.conftest import assert_delivered_once, eventually, settle
from tests.integration.test_pipeline import BURST, T0, history, produce, total_events
from tests.support.pagerduty_api import PagerDutyAPIServer
from tests.support.slack_api import SlackAPIServer

pytestmark = pytest.mark.integration

ALERT_ID = re.compile(r"al_[0-9a-f]{24}")
TOKEN = "faults-token-0123456789"
ROUTING_KEY = "FAULTSKEY0123456789abcdefABCDEF0"


def sink_env(receiver: WebhookReceiver, slack: SlackAPIServer, **extra: str) -> dict[str, str]:
    return {"SPENDSENTRY_WEBHOOK_URLS": receiver.url, "SPENDSENTRY_WEBHOOK_SECRET": receiver.secret,
            "SPENDSENTRY_SLACK_TOKEN": slack.token, "SPENDSENTRY_SLACK_CHANNEL": "#llm-oncall",
            "SPENDSENTRY_SLACK_API_URL": slack.base_url, **extra}


def webhooks(receiver: WebhookReceiver, kind: str) -> list[dict]:
    return [r["body"]["data"] for r in receiver.received if r["body"]["type"] == f"spendsentry.alert.{kind}"]


def assert_no_double_delivery(receiver: WebhookReceiver, slack: SlackAPIServer) -> None:
    """One verified webhook per (alert, status), every attempt of it under one webhook-id, and one
    top-level Slack post per alert (resolutions are thread replies and updates)."""
    per_state = Counter((r["body"]["data"]["alert_id"], r["body"]["type"]) for r in receiver.received)
    assert all(n == 1 for n in per_state.values()), per_state
    ids_by_state: dict[tuple, set] = defaultdict(set)
    for r in receiver.received:
        ids_by_state[(r["body"]["data"]["alert_id"], r["body"]["type"])].add(r["webhook_id"])
    assert all(len(ids) == 1 for ids in ids_by_state.values()), ids_by_state
    assert_delivered_once(receiver)
    top_level = Counter()
    for call in slack.calls_to("chat.postMessage"):
        if call.status == 200 and call.response.get("ok") and not call.args.get("thread_ts"):
            ids = set(ALERT_ID.findall(orjson.dumps(call.args).decode()))
            assert len(ids) == 1, call.args
            top_level[ids.pop()] += 1
    assert all(n == 1 for n in top_level.values()), top_level


@pytest.mark.parametrize("kill_point", ["burst_bucket_open", "firing_in_delivery", "after_firing_delivered"])
async def test_sigkill_during_a_burst(make_worker, receiver, slack_api, broker, topic_prefix, kill_point):
    """SIGKILL at a point of the burst's life, restart: state comes back from Kafka, the burst's
    alert is delivered (firing and resolved) to the webhook and Slack, and nothing twice."""
    env = sink_env(receiver, slack_api, SPENDSENTRY_DELIVERY_RETRY_SCHEDULE="1,1,1,1,1,1,1,1,1,1",
                   SPENDSENTRY_API_TOKENS=TOKEN)
    first = make_worker(**env).start()
    await first.ready()
    async with httpx.AsyncClient(base_url=first.url, timeout=10, headers=first.auth) as client:  # a subscription must survive too
        created = await client.post("/v1/subscriptions", headers={"Authorization": f"Bearer {TOKEN}"}, json={
            "name": "gpt", "match": {"model": "gpt-4o"}, "destination": {"type": "webhook", "url": receiver.url,
                                                                          "secret": receiver.secret}})
        assert created.status_code == 201, created.text
    events = history(0, 200)
    split = BURST.start + 30 if kill_point == "burst_bucket_open" else T0 + 200 * 60
    before = [e for e in events if e["timestamp"] < split]
    after = [e for e in events if e["timestamp"] >= split]
    if kill_point == "firing_in_delivery":
        receiver.fail_next(10_000, 503)
    await produce(broker, topic_prefix, before, batch=50)

    if kill_point == "burst_bucket_open":
        await eventually(lambda: _counted(first, len(before)), timeout=120, message="the first part processed")
        assert not receiver.received  # the burst's bucket is still open
    elif kill_point == "firing_in_delivery":
        await eventually(lambda: len(receiver.attempts) >= 2, timeout=120, message="webhook attempts failing")
    else:
        await eventually(lambda: webhooks(receiver, "firing") and slack_api.calls_to("chat.postMessage"),
                         timeout=120, message="the firing delivered")
        # delivered means recorded too: a kill in the milliseconds between the POSTs and their
        # record (a table write) sends them again (docs/operations/guarantees.md)
        await settle()
    first.kill(signal.SIGKILL)
    receiver.fail_next(0)

    second = make_worker(**env).start()
    await second.ready(timeout=120)
    listed = await second.get("/v1/subscriptions")
    assert [s["name"] for s in listed["subscriptions"]] == ["gpt"]
    if after:
        await produce(broker, topic_prefix, after, batch=50)
    await eventually(lambda: _counted(second, len(events)), timeout=120,
                     message=lambda: f"every event counted once ({len(events)}; last seen: {LAST_COUNT})")
    await eventually(lambda: webhooks(receiver, "firing") and webhooks(receiver, "resolved"), timeout=120,
                     message="the burst's firing and resolved webhooks")
    firing = webhooks(receiver, "firing")
    assert {a["key"]["model"] for a in firing} == {"gpt-4o"}
    assert {a["alert_id"] for a in firing} == {a["alert_id"] for a in webhooks(receiver, "resolved")}
    await eventually(lambda: slack_api.calls_to("chat.update"), timeout=60, message="the Slack resolution")
    await settle()
    assert_no_double_delivery(receiver, slack_api)


LAST_COUNT: dict[int, int] = {}


async def _counted(worker, n: int) -> bool:
    LAST_COUNT[n] = await total_events(worker)
    return LAST_COUNT[n] == n


async def test_sinks_down_throttled_and_failing_then_everything_is_delivered(make_worker, receiver, slack_api,
                                                                             broker, topic_prefix):
    """Slack 429 (Retry-After) then 5xx, the webhook down, PagerDuty failing, all for longer than
    the inline retries: the retry queue delivers every alert state after recovery, once each.
    (The burst's firing and resolved arrive together: a resolve that came while its firing was in
    its inline retries used to be dropped; tests/streams/test_delivery.py has that case alone.)"""
    pagerduty = PagerDutyAPIServer()
    await pagerduty.start()
    try:
        env = sink_env(receiver, slack_api, SPENDSENTRY_API_TOKENS=TOKEN,
                       SPENDSENTRY_PAGERDUTY_API_URL=pagerduty.base_url,
                       SPENDSENTRY_DELIVERY_RETRY_SECONDS="3600",
                       SPENDSENTRY_DELIVERY_RETRY_SCHEDULE="2,2,2,2,2,2,2,2,2,2,2,2,2,2,2")
        worker = make_worker(**env).start()
        await worker.ready()
        async with httpx.AsyncClient(base_url=worker.url, timeout=10, headers=worker.auth) as client:
            page = await client.post("/v1/subscriptions", headers={"Authorization": f"Bearer {TOKEN}"}, json={
                "name": "pager", "match": {"model": "gpt-4o"}, "alert_types": ["cost_spike"],
                "destination": {"type": "pagerduty", "routing_key": ROUTING_KEY}})
            assert page.status_code == 201, page.text
        receiver.fail_next(12, 503, retry_after=0)
        slack_api.rate_limit(3, retry_after=1)
        pagerduty.fail_next(10, 503)
        await produce(broker, topic_prefix, history(0, 200), batch=50)
        await eventually(lambda: len(receiver.attempts) >= 12, timeout=120, message="the webhook outage seen")
        slack_api.fail_next(6, 500)  # after the throttling, a while of server errors

        await eventually(lambda: webhooks(receiver, "firing") and webhooks(receiver, "resolved"), timeout=180,
                         message="firing and resolved webhooks after the outage")
        await eventually(lambda: [e for e in pagerduty.accepted if e["event_action"] == "resolve"], timeout=180,
                         message="PagerDuty trigger and resolve after its failures")
        (alert_id,) = {a["alert_id"] for a in webhooks(receiver, "firing") if a["type"] == "cost_spike"}
        actions = [(e["event_action"], e["dedup_key"]) for e in pagerduty.accepted]
        assert actions == [("trigger", alert_id), ("resolve", alert_id)]
        assert any(e.status == 503 for e in pagerduty.events)

        async def slack_done():
            posts = [c for c in slack_api.calls_to("chat.postMessage") if c.response.get("ok")]
            return posts and slack_api.calls_to("chat.update") and posts
        await eventually(slack_done, timeout=180, message="the Slack post and its resolution")
        assert any(c.status == 429 for c in slack_api.calls)
        assert_no_double_delivery(receiver, slack_api)
        detail = await worker.get(f"/v1/alerts/{alert_id}")
        assert not detail["pending_retries"]
    finally:
        await pagerduty.stop()
