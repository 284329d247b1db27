"""``spendsentry redeliver``: send the records of ``<prefix>.alerts.undeliverable`` again.

Records carry the destination masked; the secret comes back from where it lives: the
environment for the default destinations, the subscriptions table's changelog topic for
subscriptions. Receivers dedupe on the stable ``webhook-id`` / ``dedup_key``, so replaying a
record twice is harmless.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from alerts.sink_protocol import DeliveryResult
from alerts.delivery import UndeliverableRecord, redeliver
from alerts.destinations import SinkFactory
from alerts.ssrf import guarded_client
from schemas.subscription import Destination, Subscription
from streams.config import Settings
from streams.worker.alert_delivery import default_destinations


async def read_topic(settings: Settings, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) of a topic, from the beginning to its current end."""
    probe = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, **settings.kafka_security.client_options())
    await probe.start()
    try:
        exists = topic in await probe.topics()
    finally:
        await _stop(probe)
    if not exists:
        return []
    # without a group id, a subscribed consumer is assigned every partition of the topic
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=settings.bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", **settings.kafka_security.client_options())
    await consumer.start()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while not consumer.assignment() and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(timeout_ms=100)
        tps = sorted(consumer.assignment())
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[tuple[bytes | None, bytes | None]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out += [(r.key, r.value) for r in records]
        return out
    finally:
        await _stop(consumer)


async def _stop(consumer: AIOKafkaConsumer) -> None:
    """Stop a group-less consumer. aiokafka 0.14's NoGroupCoordinator.close() awaits its own
    cancelled task and leaks that CancelledError; swallow it unless we are being cancelled."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


async def destinations(settings: Settings) -> dict[str, Destination]:
    """Destination key -> destination with its secret: defaults, then the subscriptions."""
    found = {dest.key: dest for dest in default_destinations(settings)}
    latest: dict[bytes, bytes | None] = {}
    for key, value in await read_topic(settings, f"{settings.app_id}-subscriptions-changelog"):
        if key is not None:
            latest[key] = value
    for value in latest.values():
        if value:
            sub = Subscription.from_dict(orjson.loads(value))
            found.setdefault(sub.destination.key, sub.destination)
    return found


async def run_redeliver(settings: Settings, alert_id: str | None = None) -> list[tuple[UndeliverableRecord, DeliveryResult]]:
    records = [UndeliverableRecord.from_dict(orjson.loads(value))
               for _, value in await read_topic(settings, settings.undeliverable_topic) if value]
    if alert_id is not None:
        records = [r for r in records if r.alert.get("alert_id") == alert_id]
    known = await destinations(settings)
    http = guarded_client(settings.webhook_allowlist, settings.webhook_timeout_s)  # the worker's guard, not a plain client
    factory = SinkFactory(slack_token=settings.slack_token, slack_api_url=settings.slack_api_url,
                          pagerduty_url=settings.pagerduty_api_url, webhook_client=http)

    def sink_for(record: UndeliverableRecord) -> Any:
        dest = known.get(record.destination_key)
        return None if dest is None else factory.sink_for(dest)

    try:
        results = await redeliver(records, sink_for)
    finally:
        await factory.aclose()
        await http.aclose()
    return list(zip(records, results))
