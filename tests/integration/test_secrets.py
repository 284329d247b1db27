"""Issue 13 end to end: a webhook URL's path and query (for Slack, Teams, Discord and many incident
tools *the* secret) leave the subscriptions table nowhere: no API answer, no log line, no record of
any topic (key, value or header), delivered, retried and given up on alike."""

from __future__ import annotations

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from alerts.receiver import WebhookReceiver
from alerts.signing import generate_secret
from tests.integration.conftest import eventually
from tests.integration.test_pipeline import history, produce
from tests.support import dead_port

pytestmark = pytest.mark.integration

TOKEN = "secrets-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SECRETS = (b"SECRETPATH", b"SECRETQUERY")


async def topic_records(broker: str, prefix: str) -> dict[str, list]:
    """Every record of every topic named with ``prefix``, from the beginning to the end offsets."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        topics = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        described = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: dict[str, list] = {t: [] for t in topics}
        left = {tp for tp in partitions if ends[tp] > 0}
        while left:
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                records[tp.topic] += [r for r in batch if r.offset < ends[tp]]
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
        return records
    finally:
        await consumer.stop()


def leaks(blob: bytes) -> list[bytes]:
    return [secret for secret in SECRETS if secret in blob]


async def test_a_webhook_urls_path_and_query_appear_in_no_answer_log_or_topic(make_worker, broker, topic_prefix):
    """The subscriptions table's own changelog (``<app id>-subscriptions-changelog``) must hold the
    real URL, or nothing could be delivered after a restart: it is checked to hold it, and to be the
    only topic that does. Everything else (alerts, undeliverable, dead letters, control, every other
    table's changelog: deliveries, pending retries, grouping, routes) holds the masked form."""
    hook = WebhookReceiver(generate_secret(), path="/services/T0/B0/SECRETPATH")
    await hook.start()
    try:
        worker = make_worker(SPENDSENTRY_API_TOKENS=TOKEN, SPENDSENTRY_DELIVERY_RETRY_SECONDS="8").start()
        await worker.ready()
        answers: list[tuple[str, bytes]] = []
        async with httpx.AsyncClient(base_url=worker.url, headers=AUTH, timeout=10) as client:
            live = {"type": "webhook", "url": f"{hook.url}?token=SECRETQUERY", "secret": hook.secret}
            dead = {"type": "webhook", "url": f"http://127.0.0.1:{dead_port()}/services/T0/B0/SECRETPATH"
                                              "?token=SECRETQUERY", "secret": generate_secret()}
            for name, destination in (("live", live), ("dead", dead)):
                created = await client.post("/v1/subscriptions", json={
                    "name": name, "alert_types": ["cost_spike"], "destination": destination})
                assert created.status_code == 201, created.text
                answers.append(("POST /v1/subscriptions", created.content))

            await produce(broker, topic_prefix, history(0, 190), batch=50)
            (firing,) = await eventually(
                lambda: [r["body"]["data"] for r in hook.received if r["body"]["type"] == "spendsentry.alert.firing"],
                message="the burst delivered to the live destination")

            async def gave_up() -> list:
                records = (await topic_records(broker, f"{topic_prefix}.alerts.undeliverable"))
                return [r for batch in records.values() for r in batch]
            (record, *_) = await eventually(gave_up, timeout=90, message="the dead destination given up on")
            assert orjson.loads(record.value)["reason"].startswith("gave up after")  # retried, found again by key

            paths = ["/v1/subscriptions", "/v1/alerts", "/v1/spend", "/metrics", "/v1/series", "/v1/budgets"]
            subscriptions = (await client.get("/v1/subscriptions")).json()["subscriptions"]
            paths += [f"/v1/subscriptions/{s['id']}" for s in subscriptions]
            alerts = (await client.get("/v1/alerts")).json()["alerts"]
            paths += [f"/v1/alerts/{a['alert']['alert_id']}" for a in alerts]
            assert f"/v1/alerts/{firing['alert_id']}" in paths
            for path in paths:
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
                answers.append((f"GET {path}", response.content))
        # the dead destination's failures (masked) are on the alert: the check below looks at real traffic
        detail = next(body for what, body in answers if what == f"GET /v1/alerts/{firing['alert_id']}")
        assert b'"ok":false' in detail.replace(b" ", b"")

        assert [(what, leaks(body)) for what, body in answers if leaks(body)] == []
        log = worker.log_path.read_bytes()
        assert b"undeliverable to webhook:http://127.0.0.1:" in log  # the give-up was logged, masked
        assert [line for line in log.splitlines() if leaks(line)] == []

        records = await topic_records(broker, topic_prefix)
        assert {f"{topic_prefix}.alerts", f"{topic_prefix}.alerts.undeliverable", f"{topic_prefix}.control",
                f"{topic_prefix}-pending-changelog", f"{topic_prefix}-recent-changelog"} <= set(records)
        holding = sorted({topic for topic, batch in records.items() for r in batch
                          if leaks(r.key or b"") or leaks(r.value or b"")
                          or any(leaks(name.encode()) or leaks(value or b"") for name, value in r.headers)})
        assert holding == [f"{topic_prefix}-subscriptions-changelog"]
        # no state record is a pickle (protocol 2+ starts with 0x80): the engines' state log (snapshot
        # deltas of key windows and models, in the meta changelog) was written during the burst
        changelogs = {topic: batch for topic, batch in records.items() if topic.endswith("-changelog")}
        assert any(b"|d|" in (r.key or b"") for r in changelogs.get(f"{topic_prefix}-meta-changelog", []))
        assert [topic for topic, batch in changelogs.items() for r in batch if (r.value or b"")[:1] == b"\x80"] == []
    finally:
        await hook.stop()
