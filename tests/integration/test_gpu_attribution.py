"""GPU idle waste and segmented spend on a real worker: GPU events on <prefix>.gpu with an idle
fleet -> a signed gpu_idle webhook; usage events with team/pipeline_stage -> GET /v1/spend?group_by=."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from streams.producer import UsageProducer
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


def gpu_events(now: float) -> list[dict]:
    """Two idle H100s and one idle 1/7 MIG slice for 40 one-minute intervals, plus a busy GPU."""
    out = []
    for minute in range(40):
        ts = now - (39 - minute) * 60
        for gpu, util, fraction in (("GPU-a", 0.01, 1.0), ("GPU-b", 0.0, 1.0), ("GPU-c", 0.02, 1 / 7),
                                    ("GPU-d", 0.9, 1.0)):
            out.append({"event_id": f"g-{gpu}-{minute}", "timestamp": ts, "interval_s": 60.0, "cluster": "c1",
                        "node": "n1", "gpu_model": "NVIDIA H100 80GB HBM3", "gpu_uuid": gpu, "fraction": fraction,
                        "utilization": util, "hourly_price_usd": 7.0, "team": "ml" if gpu != "GPU-d" else "search"})
    return out


USAGE = [  # team, pipeline_stage, cost, tokens
    ("a", "train", 1.0, 1000), ("a", "train", 1.5, 500), ("a", "infer", 0.25, 250),
    ("b", "train", 2.0, 4000), (None, None, 0.5, 100),
]


async def test_gpu_idle_alert_and_segmented_spend(make_worker, receiver, topic_prefix, broker):
    worker = make_worker(SPENDSENTRY_WEBHOOK_URLS=receiver.url, SPENDSENTRY_WEBHOOK_SECRET=receiver.secret,
                         SPENDSENTRY_PARTITIONS="2", SPENDSENTRY_REQUIRED_TAGS="team").start()
    await worker.ready()
    now = time.time() - 5
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        for event in gpu_events(now):
            await producer.send(f"{topic_prefix}.gpu", orjson.dumps(event), key=b"c1|n1")
        await producer.send(f"{topic_prefix}.gpu", orjson.dumps({"event_id": "bad", "timestamp": now}), key=b"c1|n1")
        await producer.flush()
    finally:
        await producer.stop()
    events = []
    for i, (team, stage, cost, tokens) in enumerate(USAGE):
        event = {"event_id": f"u{i}", "timestamp": now - 120 + i, "provider": "openai", "model": "gpt-4o",
                 "cost_usd": cost, "input_tokens": tokens, "output_tokens": 0}
        if team:
            event.update(team=team, pipeline_stage=stage)
        events.append(event)
    async with UsageProducer(broker, f"{topic_prefix}.usage") as usage:
        await usage.send_events(events)

    firing = await eventually(lambda: [r for r in receiver.received if r["body"]["data"]["type"] == "gpu_idle"],
                              timeout=60, message="a gpu_idle webhook")
    alert = firing[0]["body"]["data"]
    assert alert["status"] == "firing"
    assert alert["key"] == {"cluster": "c1", "team": "ml", "gpu_model": "NVIDIA H100 80GB HBM3"}
    assert alert["details"]["detector"] == "gpu_idle" and alert["details"]["idle_gpus"] >= 1

    async def segmented():
        body = await worker.get("/v1/spend?group_by=team,pipeline_stage&window=1h")
        return body if body["total"]["events"] == len(USAGE) else None

    body = await eventually(segmented, message="usage events in the segmented view")
    rows = {(r["key"]["team"], r["key"]["pipeline_stage"]): r for r in body["rows"]}
    assert {k: v["cost_usd"] for k, v in rows.items()} == {("a", "train"): 2.5, ("a", "infer"): 0.25,
                                                           ("b", "train"): 2.0, (None, None): 0.5}
    assert rows[("a", "train")]["tokens"] == 1500 and rows[("a", "train")]["requests"] == 2
    assert rows[("a", "train")]["cost_per_1k_tokens"] == pytest.approx(2.5 / 1.5)
    assert body["total"]["cost_usd"] == 5.25
    assert body["untagged"] == {"required": ["team"], "cost_usd": 0.5, "share": pytest.approx(0.5 / 5.25, rel=1e-5)}
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as client:
        bad = await client.get("/v1/spend?group_by=team,colour&window=1h")
        assert bad.status_code == 400 and "group_by: unknown dimension 'colour'" in bad.json()["error"]
        assert (await client.get("/v1/spend?group_by=team&window=90x")).status_code == 400
    gpu = await worker.get("/v1/gpu?window=1h")
    assert gpu["invalid"] == 1
    by_team = {r["key"]["team"]: r for r in gpu["keys"]}
    assert by_team["search"]["gpu_hours"] == pytest.approx(40 / 60, rel=1e-4)
    assert by_team["search"]["cost_per_used_gpu_hour"] == pytest.approx(7 / 0.9, rel=1e-4)
    assert by_team["ml"]["cost_usd"] == pytest.approx(40 / 60 * 7 * (2 + 1 / 7), rel=1e-4)
    # the whole idle group now: 2 GPUs + a 1/7 slice, 40 idle minutes at $7 per GPU-hour
    [idle] = gpu["idle"]
    assert idle["alert_id"] == alert["alert_id"]
    assert idle["details"]["idle_gpus"] == pytest.approx(2 + 1 / 7)
    assert idle["details"]["wasted_usd"] == pytest.approx(40 / 60 * 7 * (2 + 1 / 7), rel=1e-4)
