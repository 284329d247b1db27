"""The whole path on the real broker: usage events -> worker -> signed webhook + Slack."""

from __future__ import annotations

import asyncio
import random
import re
import signal
import time
from collections import Counter
from dataclasses import replace

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.producer import UsageProducer
from streams.dev.traffic import DEFAULT_MODELS, Burst, TrafficGenerator
from tests.integration.conftest import assert_delivered_once, eventually, settle

pytestmark = pytest.mark.integration

MODELS = tuple(replace(m, rate_per_s=m.rate_per_s / 5) for m in DEFAULT_MODELS)
T0 = time.time() // 3600 * 3600 - 6 * 3600  # six hours ago, on the hour
BURST = Burst("gpt-4o", T0 + 180 * 60, T0 + 185 * 60, 10.0)


def history(start_min: int, end_min: int, seed: int = 5) -> list[dict]:
    generator = TrafficGenerator(MODELS, seed=seed, id_prefix=f"h{start_min}")
    return list(generator.events(T0 + start_min * 60, T0 + end_min * 60, (BURST,)))


async def produce(broker: str, prefix: str, events: list[dict], batch: int = 1) -> None:
    async with UsageProducer(broker, f"{prefix}.usage") as producer:
        await producer.send_events(events, batch=batch)


async def total_events(worker) -> int:
    """Events the worker's model keys have counted (``GET /v1/spend``; every event also counts in its
    ``model x service`` key)."""
    spend = await worker.get("/v1/spend")
    return sum(k["events"] for k in spend["keys"] if list(k["key"]) == ["model"])


async def _seen(worker, what: str) -> str:
    """A failure message with what the worker had counted when the wait gave up."""
    spend = await worker.get("/v1/spend")
    return f"{what}; the worker had {spend['counters']['events']} events, counters {spend['counters']}"


async def counted(worker, n: int) -> bool:
    return await total_events(worker) == n


async def test_burst_reaches_signed_webhook_and_slack(make_worker, receiver, slack_api, broker, topic_prefix):
    """Three hours of history then a 10x burst on gpt-4o: one signed firing webhook, one Slack post."""
    worker = make_worker(SPENDSENTRY_WEBHOOK_URLS=receiver.url, SPENDSENTRY_WEBHOOK_SECRET=receiver.secret,
                         SPENDSENTRY_SLACK_TOKEN=slack_api.token, SPENDSENTRY_SLACK_CHANNEL="#llm-oncall",
                         SPENDSENTRY_SLACK_API_URL=slack_api.base_url).start()
    await worker.ready()
    await produce(broker, topic_prefix, history(0, 200), batch=50)

    def firing():
        return [r for r in receiver.received if r["body"]["type"] == "spendsentry.alert.firing"]

    (delivery,) = await eventually(firing, message="a firing webhook")
    alert = delivery["body"]["data"]
    # judged per model and per model x service (the default): the alert names the stream
    assert alert["key"] == {"model": "gpt-4o", "service": "support-bot"} and alert["type"] == "cost_spike"
    assert alert["window_start"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(BURST.start))
    assert alert["observed"] > 5 * alert["expected"]
    assert receiver.rejected == 0  # every delivery carried a valid Standard Webhooks signature
    posts = await eventually(lambda: slack_api.calls_to("chat.postMessage"), message="a Slack post")
    assert posts[0].args["channel"] == "#llm-oncall"
    assert "gpt-4o" in orjson.dumps(posts[0].args["blocks"]).decode()
    # the burst resolves once spend is back to normal; the other models stay quiet
    await eventually(lambda: [r for r in receiver.received if r["body"]["type"] == "spendsentry.alert.resolved"],
                     message="the resolved webhook")
    assert {r["body"]["data"]["key"]["model"] for r in receiver.received} == {"gpt-4o"}
    await settle()
    assert_delivered_once(receiver)
    assert len(receiver.received) == 2  # the firing and the resolution
    top_level = [c for c in slack_api.calls_to("chat.postMessage") if not c.args.get("thread_ts")]
    assert len(top_level) == 1, top_level
    listed = await worker.get("/v1/alerts")
    assert {a["alert"]["alert_id"] for a in listed["alerts"]} == {alert["alert_id"]}
    assert all(d["ok"] for a in listed["alerts"] for d in a["deliveries"])
    slack_done = 'spendsentry_deliveries_total{sink="slack",outcome="ok"} 2'  # Slack is paced at 1 msg/s

    async def metrics_complete():
        text = await worker.text("/metrics")
        return slack_done in text and text

    metrics = await eventually(metrics_complete, timeout=20, message="both Slack deliveries in /metrics")
    assert 'spendsentry_spend_usd_total{key="model=gpt-4o"}' in metrics
    assert 'spendsentry_alerts_total{type="cost_spike",severity="critical",status="firing"} 1' in metrics
    assert 'spendsentry_deliveries_total{sink="webhook",outcome="ok"} 2' in metrics


async def test_malformed_messages_go_to_dead_letter_and_good_ones_flow(make_worker, broker, topic_prefix):
    """Bad bytes, bad fields and a half-bad array: dead letters with reasons; the rest is counted."""
    worker = make_worker().start()
    await worker.ready()
    good = history(0, 2)
    bad_field = {**good[0], "event_id": "bad-1", "input_tokens": -3}
    mixed = [good[1] | {"event_id": "array-ok"}, {"event_id": "array-bad", "provider": "openai"}]
    async with UsageProducer(broker, f"{topic_prefix}.usage") as producer:
        await producer.send_raw(b"{not json", b"gpt-4o")
        await producer.send_raw(b"\xff\xfe\x00garbage", b"gpt-4o")
        await producer.send_raw(orjson.dumps(bad_field), b"gpt-4o")
        await producer.send_raw(orjson.dumps(mixed), b"gpt-4o")
        await producer.send_events(good)
        await producer.flush()

    async def all_good_counted():
        spend = await worker.get("/v1/spend")
        return spend["counters"]["events"] == len(good) + 1 and spend

    spend = await eventually(all_good_counted, message="all good events counted")
    assert spend["counters"]["invalid"] == 4 and spend["counters"]["deadletters"] == 4

    consumer = AIOKafkaConsumer(f"{topic_prefix}.deadletter", bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 4 and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
    finally:
        await consumer.stop()
    by_value = {r.value: dict(r.headers) for r in records}
    assert by_value[b"{not json"]["spendsentry-reason"].startswith(b"invalid JSON")
    assert b"\xff\xfe\x00garbage" in by_value
    assert orjson.loads(by_value[orjson.dumps(bad_field)]["spendsentry-error"]) == {
        "field": "input_tokens", "value": -3, "rule": "must be >= 0"}
    array_bad = by_value[orjson.dumps(mixed[1])]
    assert array_bad["spendsentry-index"] == b"1"
    assert array_bad["spendsentry-reason"] == b"timestamp: is required (got None)"
    assert array_bad["spendsentry-source"].startswith(f"{topic_prefix}.usage/".encode())


def hostile_batch() -> list[bytes]:
    """One of each kind of bad message a new user threw at the worker (issue 12)."""
    rng = random.Random(12)
    good = orjson.dumps(history(0, 1)[0])
    bad = [rng.randbytes(rng.randint(50, 2_000)) for _ in range(10)]  # random bytes
    bad += [good[:cut] for cut in (1, 10, len(good) // 2, len(good) - 1)]  # truncated JSON
    bad += [good.replace(b'"input_tokens":', b'"input_tokens":' + number + b",\"x\":") for number in
            (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"9" * 400)]  # NaN, Infinity, absurd numbers
    bad += [b"1", b'"gpt-4o"', b"true", b"null", b"-1e999"]  # bare scalars
    bad += [b"\xff\xfe" + good, good.replace(b"gpt-4o", b"gpt-4o\xed\xa0\x80")]  # invalid UTF-8
    bad += [b"[" * depth + b"]" * depth for depth in (2_000, 100_000)] + [b'{"a":' * 100_000 + b"1" + b"}" * 100_000]
    bad += [b"[" * 1_000_000]  # nested a million deep, at the broker's size limit
    bad += [orjson.dumps({**orjson.loads(good), "event_id": "from-2099", "timestamp": 4_070_908_800.0})]
    return bad


async def test_a_hostile_batch_is_one_dead_letter_each_and_the_partition_goes_on(make_worker, receiver, broker,
                                                                                 topic_prefix):
    """Hostile messages in the middle of gpt-4o's partition: exactly one dead letter per bad
    message, and the good events after them in that partition are counted and alert."""
    worker = make_worker(SPENDSENTRY_WEBHOOK_URLS=receiver.url, SPENDSENTRY_WEBHOOK_SECRET=receiver.secret).start()
    await worker.ready()
    before, after, bad = history(0, 170), history(170, 200), hostile_batch()
    await produce(broker, topic_prefix, before, batch=50)
    async with UsageProducer(broker, f"{topic_prefix}.usage") as producer:
        for value in bad:
            await producer.send_raw(value, b"gpt-4o")
        await producer.flush()
    await produce(broker, topic_prefix, after, batch=50)
    await eventually(lambda: counted(worker, len(before) + len(after)), timeout=120,
                     message=lambda: _seen(worker, f"all {len(before) + len(after)} good events counted"))
    await eventually(lambda: [r for r in receiver.received if r["body"]["type"] == "spendsentry.alert.firing"],
                     message="the burst after the hostile batch alerts")
    consumer = AIOKafkaConsumer(f"{topic_prefix}.deadletter", bootstrap_servers=broker, auto_offset_reset="earliest",
                                fetch_max_bytes=8 * 1024 * 1024, max_partition_fetch_bytes=8 * 1024 * 1024)
    await consumer.start()
    try:
        records = []
        deadline = time.monotonic() + 30
        settled_at = None
        while time.monotonic() < deadline and (settled_at is None or time.monotonic() < settled_at):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
            if len(records) >= len(bad) and settled_at is None:
                settled_at = time.monotonic() + 3.0  # then read on a little: one more would be a second letter
    finally:
        await consumer.stop()
    sources = Counter(dict(r.headers)["spendsentry-source"] for r in records)
    assert len(records) == len(bad) and set(sources.values()) == {1}, (len(records), len(bad), sources.most_common(3))
    reasons = [dict(r.headers)["spendsentry-reason"].decode() for r in records]
    assert sum("ahead of the wall clock" in reason for reason in reasons) == 1, reasons
    assert not [reason for reason in reasons if reason.startswith("processing failed")], reasons
    assert "agent_restarts_total{" not in await worker.text("/metrics")
    assert (await worker.get("/healthz"))["problems"] == []


async def test_killed_worker_resumes_without_double_counting(make_worker, receiver, broker, topic_prefix):
    """SIGKILL after two hours of history; the restarted worker restores windows and detector
    state from Kafka, counts every event exactly once, and still alerts on the burst once."""
    env = {"SPENDSENTRY_WEBHOOK_URLS": receiver.url, "SPENDSENTRY_WEBHOOK_SECRET": receiver.secret}
    first = make_worker(**env).start()
    await first.ready()
    part1, part2 = history(0, 120), history(120, 200)
    await produce(broker, topic_prefix, part1, batch=20)

    await eventually(lambda: counted(first, len(part1)), message="part 1 processed")
    first.kill(signal.SIGKILL)
    second = make_worker(**env).start()
    await second.ready()
    await produce(broker, topic_prefix, part2, batch=20)
    await eventually(lambda: counted(second, len(part1) + len(part2)), timeout=90, message="all events, once")
    await eventually(lambda: any(r["body"]["type"] == "spendsentry.alert.firing" for r in receiver.received),
                     message="the burst alert after restart")
    await settle()
    assert_delivered_once(receiver)
    assert {r["body"]["data"]["key"]["model"] for r in receiver.received} == {"gpt-4o"}


async def test_sigterm_while_events_flow_stops_the_worker_promptly_and_loses_nothing(make_worker, broker, topic_prefix):
    """A worker asked to stop (SIGTERM: Ctrl-C, docker stop, a rollout) while it processes events
    snapshots what it counted, commits offsets that agree with that snapshot and exits by itself;
    its successor resumes right after the snapshot and counts every event once."""
    first = make_worker().start()
    await first.ready()
    events = history(0, 200)
    await produce(broker, topic_prefix, events, batch=1)  # ~27k messages: still being read at the signal
    await eventually(lambda: total_events(first), message="events being processed")
    assert first.process is not None
    first.process.send_signal(signal.SIGTERM)
    # the docs say it exits in about a second; 10 s leaves room for a loaded machine, and a hang
    # (Faust waiting for buffered, never-processed events to be acked) takes far longer
    await asyncio.to_thread(first.process.wait, 10)
    assert "Waiting for tasks" not in first.log_path.read_text(errors="replace")
    group = AIOKafkaConsumer(bootstrap_servers=broker, group_id=topic_prefix, enable_auto_commit=False)
    await group.start()
    try:
        committed = {p: await group.committed(TopicPartition(f"{topic_prefix}.usage", p)) for p in range(4)}
    finally:
        await group.stop()
    second = make_worker().start()
    await second.ready()
    await eventually(lambda: counted(second, len(events)), timeout=120, message="every event counted once")
    resumed = {int(p): int(offset) + 1 for p, offset in
               re.findall(r"partition (\d+): restored \d+ keys, resuming after offset (\d+)", second.log_path.read_text())}
    assert resumed and resumed == {p: c for p, c in committed.items() if c}, (resumed, committed)
