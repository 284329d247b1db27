"""The broker restarts while the worker is part way through a backlog: it reconnects and catches up
without operator action, counts every event once and delivers the burst's alert once.

Named to run last: it stops the shared test broker (and always brings it back)."""

from __future__ import annotations

import asyncio
import signal

import pytest

from streams.dev import localkafka
from tests.integration.conftest import assert_delivered_once, eventually, settle
from tests.integration.test_pipeline import history, produce, total_events

pytestmark = pytest.mark.integration


async def test_a_broker_restart_with_messages_in_flight_loses_and_doubles_nothing(make_worker, receiver, broker,
                                                                                   topic_prefix):
    # event time moves only with the data: the alerts are counted exactly, and a broker away for
    # seconds must not close buckets by the wall clock (a freeze is not taken for source silence
    # either: tests/streams/worker/test_agents.py)
    env = {"SPENDSENTRY_WEBHOOK_URLS": receiver.url, "SPENDSENTRY_WEBHOOK_SECRET": receiver.secret,
           "SPENDSENTRY_IDLE_CLOSE_SECONDS": "3600"}
    creator = make_worker(**env).start()  # creates the topics, then steps aside
    await creator.ready()
    creator.kill(signal.SIGTERM)
    warm_up, backlog = history(0, 10), history(10, 200)  # ~33k events in all, the burst at minute 180
    events = warm_up + backlog
    await produce(broker, topic_prefix, warm_up, batch=50)
    worker = make_worker(**env).start()
    await worker.ready(timeout=120)

    async def seen() -> int:
        try:
            return await total_events(worker)
        except Exception:  # the worker's web API may answer slowly while Kafka is away
            return -1

    async def warmed_up() -> bool:
        return await seen() == len(warm_up)

    await eventually(warmed_up, timeout=120, message="the worker counting the warm-up events")
    # frozen while the backlog is written, the worker cannot have read it all by the time the broker
    # stops: a busy CI machine once let it read all 33k events before its web API first answered
    assert worker.process is not None
    worker.process.send_signal(signal.SIGSTOP)
    try:
        await produce(broker, topic_prefix, backlog, batch=50)
    finally:
        worker.process.send_signal(signal.SIGCONT)

    async def started() -> bool:
        return await seen() > len(warm_up)

    await eventually(started, timeout=120, interval=0.05, message="the worker reading the backlog")
    before = await seen()
    try:
        await asyncio.to_thread(localkafka.down)
    finally:
        await asyncio.to_thread(localkafka.up)
    # the broker went away with most of the backlog unread (and its changelog writes, offset
    # commits and the burst still ahead)
    assert len(warm_up) < before < len(events), before

    async def all_counted() -> bool:
        return await seen() == len(events)

    await eventually(all_counted, timeout=180, interval=1.0,
                     message=lambda: f"every event counted once after the broker came back ({len(events)})")
    await eventually(lambda: {r["body"]["type"] for r in receiver.received} >= {"spendsentry.alert.firing",
                                                                                "spendsentry.alert.resolved"},
                     timeout=120, message="the burst's firing and resolved webhooks")
    await settle()
    assert await seen() == len(events)  # and not one more
    assert_delivered_once(receiver)
    assert {r["body"]["data"]["key"]["model"] for r in receiver.received} == {"gpt-4o"}
    assert worker.process is not None and worker.process.poll() is None  # no operator action: same process
