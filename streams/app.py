"""The Faust app: topics, tables and thin agents around the pure engine.

Agents
------
``process_usage``  usage topic -> engine per partition -> dead letters, alerts; one table
                   snapshot per batch and dirty key.
``deliver_alerts`` alerts topic -> sinks; ``(alert_id, status)`` delivered once, recorded in
                   a table so a restarted worker does not deliver twice.
``close_idle``     timer: quiet partitions still close buckets (and resolve incidents).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any

import faust
import orjson

from alerts.dispatch import Dispatcher
from schemas.alert import Alert
from schemas.usage import UsageEvent
from streams.config import Settings
from streams.core.engine import Counters, DeadLetter, Pricer
from streams.ingest import Normalizer
from streams.metrics import Histogram
from streams.produce import message_key
from streams.partitions import PartitionEngines
from streams.sinks import build_sinks
from streams.web import register_pages

log = logging.getLogger("spendsentry.streams")

BATCH_MAX = 10_000
BATCH_WITHIN_S = 0.2
RECENT_ALERTS = 500


class Runtime:
    """What the agents and pages share: settings, engines, topics, tables, counters."""

    def __init__(self, app: faust.App, settings: Settings, pricer: Pricer, dispatcher: Dispatcher) -> None:
        self.app = app
        self.settings = settings
        self.dispatcher = dispatcher
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.usage_topic = app.topic(settings.usage_topic, partitions=settings.partitions, **raw)
        self.alerts_topic = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
        self.deadletter_topic = app.topic(settings.deadletter_topic, partitions=settings.partitions, **raw)
        self.windows = _bytes_table(app, "windows", settings.partitions)
        self.models = _bytes_table(app, "models", settings.partitions)
        self.meta = _bytes_table(app, "meta", settings.partitions)
        self.delivered = _bytes_table(app, "delivered", settings.partitions)
        self.recent = _bytes_table(app, "recent-alerts", settings.partitions)
        self.engines = PartitionEngines(settings.engine_config(), pricer, self.windows, self.models, self.meta)
        self.deadletters = 0
        #: counters of engines whose partitions were revoked, so process totals never go down
        self.retired = Counters()
        self.alerts_published: Counter[tuple[str, str, str]] = Counter()
        self.deliveries: Counter[tuple[str, str]] = Counter()
        self.delivery_latency = Histogram()
        self.logged_unpriced: set[tuple[str, str]] = set()
        #: accepted ``?format=`` values of POST /v1/events and the provider normalizer behind them
        self.formats: set[str] = {"canonical"}
        self.normalize: Normalizer | None = None
        #: the agent and the idle timer both drive engines; batches must not interleave
        self.lock = asyncio.Lock()

    async def send_dead(self, dead: DeadLetter, message: Any) -> None:
        """Dead-letter record: the original bytes as value, the reason and origin in headers."""
        self.deadletters += 1
        headers = {
            "spendsentry-reason": dead.reason.encode(),
            "spendsentry-source": f"{message.topic}/{message.partition}/{message.offset}".encode(),
        }
        if dead.error is not None:
            headers["spendsentry-error"] = orjson.dumps(dead.error)
        if dead.index is not None:
            headers["spendsentry-index"] = str(dead.index).encode()
        log.warning("dead letter %s/%d/%d: %s", message.topic, message.partition, message.offset, dead.reason)
        await self.deadletter_topic.send(key=message.key, value=dead.original, headers=headers)

    async def send_usage(self, events: list[UsageEvent]) -> None:
        """Write validated events to the usage topic, one JSON array per partition key."""
        by_key: dict[bytes, list[dict]] = defaultdict(list)
        dims = self.settings.group_bys[0]
        for event in events:
            data = event.to_dict()
            by_key[message_key(data, dims)].append(data)
        for key, group in by_key.items():
            await self.usage_topic.send(key=key, value=orjson.dumps(group))

    async def publish(self, alerts: list[Alert]) -> None:
        for alert in alerts:
            self.alerts_published[(alert.type, alert.severity, alert.status)] += 1
            log.warning("alert %s %s %s: %s", alert.status, alert.severity, alert.alert_id, alert.summary)
            await self.alerts_topic.send(key=alert.alert_id.encode(), value=orjson.dumps(alert.to_dict()))

    def log_unpriced(self, partition: int) -> None:
        for provider, model in self.engines.get(partition).unpriced_models:
            if (provider, model) not in self.logged_unpriced:
                self.logged_unpriced.add((provider, model))
                log.warning("unpriced model %s/%s: events are counted with cost 0 and flagged unpriced "
                            "(add it to SPENDSENTRY_PRICES_FILE)", provider, model)

    def counters(self) -> Counters:
        """Process totals over every engine this worker ran."""
        total = Counters()
        total.add(self.retired)
        for engine in self.engines.engines.values():
            total.add(engine.counters)
        return total

    def drop_partitions(self, partitions: set[int]) -> None:
        for partition in partitions:
            engine = self.engines.engines.get(partition)
            if engine is not None:
                self.retired.add(engine.counters)
        self.engines.drop(partitions)

    def consumer_lag(self) -> dict[int, int]:
        """Messages not yet processed per assigned usage partition."""
        lag = {}
        for tp in self.app.consumer.assignment():
            if tp.topic == self.settings.usage_topic:
                highwater = self.app.consumer.highwater(tp)
                if highwater is not None:
                    lag[tp.partition] = max(0, highwater - 1 - self.engines.offsets.get(tp.partition, -1))
        return lag

    def ensure_engines(self) -> None:
        """Restore the engine of every assigned usage partition once tables are recovered,
        so a restarted worker shows its state and closes idle buckets before new events come."""
        if not self.app.tables.recovery.completed.is_set() or self.app.rebalancing:
            return
        for tp in self.app.consumer.assignment():
            if tp.topic == self.settings.usage_topic:
                self.engines.get(tp.partition)

    def recent_alerts(self, limit: int) -> list[dict[str, Any]]:
        records = [orjson.loads(v) for v in self.recent.data.values()]
        records.sort(key=lambda r: (r["alert"]["triggered_at"], r["alert"]["status"]), reverse=True)
        return records[:limit]


def _bytes_table(app: faust.App, name: str, partitions: int) -> faust.Table:
    """A table of raw bytes keys and values: we serialise snapshots ourselves (pickle/orjson)."""
    table = app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions)
    table.key_serializer = table.value_serializer = "raw"  # read when the changelog topic is made
    return table


def create_app(settings: Settings, pricer: Pricer) -> tuple[faust.App, Runtime]:
    """Build the app with its agents, timer and web pages."""
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        datadir=str(settings.data_dir / settings.app_id),
        table_cleanup_interval=60.0,
        stream_buffer_maxsize=BATCH_MAX,
        # a killed worker's partitions move within seconds, not Faust's default minute
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_credentials=settings.kafka_security.faust_credentials(),
        topic_replication_factor=settings.replication_factor,
    )
    runtime = Runtime(app, settings, pricer, Dispatcher(build_sinks(settings)))

    @app.agent(runtime.usage_topic, name="process_usage")
    async def process_usage(stream: faust.StreamT) -> None:
        async for events in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for event in events:
                by_partition[event.message.partition].append(event)
            async with runtime.lock:
                for partition, batch in by_partition.items():
                    await _process_partition(runtime, partition, batch)

    @app.agent(runtime.alerts_topic, name="deliver_alerts")
    async def deliver_alerts(stream: faust.StreamT) -> None:
        async for value in stream:
            await _deliver(runtime, Alert.from_dict(orjson.loads(value)))

    @app.timer(interval=1.0)
    async def close_idle() -> None:
        engines = runtime.engines
        async with runtime.lock:
            runtime.ensure_engines()
            now = time.monotonic()
            for partition, engine in list(engines.engines.items()):
                quiet = now - engines.last_input[partition]
                if quiet < runtime.settings.idle_close_s:
                    continue
                engines.last_input[partition] = now
                engine.idle(quiet)
                await runtime.publish(engine.drain_alerts())
                engines.persist(partition)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set, **_: Any) -> None:
        runtime.drop_partitions({tp.partition for tp in revoked if tp.topic == settings.usage_topic})

    register_pages(app, runtime)
    return app, runtime


async def _process_partition(runtime: Runtime, partition: int, batch: list[Any]) -> None:
    engines = runtime.engines
    engine = engines.get(partition)
    skip_until = engines.offsets[partition]
    last = skip_until
    unpriced_before = len(engine.unpriced_models)
    for event in batch:
        message = event.message
        if message.offset <= skip_until:
            continue  # already folded into the restored snapshot
        last = message.offset
        for dead in engine.ingest(message.value):
            await runtime.send_dead(dead, message)
    engines.offsets[partition] = last
    engines.last_input[partition] = time.monotonic()
    if len(engine.unpriced_models) != unpriced_before:
        runtime.log_unpriced(partition)
    await runtime.publish(engine.drain_alerts())
    engines.persist(partition)


async def _deliver(runtime: Runtime, alert: Alert) -> None:
    record_key = f"{alert.alert_id}:{alert.status}".encode()
    if runtime.delivered.get(record_key):
        log.info("alert %s %s already delivered; skipping replay", alert.alert_id, alert.status)
        return
    results = await runtime.dispatcher.deliver(alert)
    for result in results:
        runtime.deliveries[(result.sink, "ok" if result.ok else "failed")] += 1
        runtime.delivery_latency.observe(result.latency_s, sink=result.sink)
    runtime.delivered[record_key] = b"1"
    previous = runtime.recent.get(alert.alert_id.encode())
    deliveries = orjson.loads(previous)["deliveries"] if previous else []
    deliveries += [
        {"sink": r.sink, "status": alert.status, "ok": r.ok, "attempts": r.attempts, "http_status": r.status,
         "latency_s": round(r.latency_s, 4), "error": r.error}
        for r in results
    ]
    runtime.recent[alert.alert_id.encode()] = orjson.dumps({"alert": alert.to_dict(), "deliveries": deliveries})
    if len(runtime.recent) > RECENT_ALERTS:
        oldest = min(runtime.recent.data.items(), key=lambda kv: orjson.loads(kv[1])["alert"]["triggered_at"])[0]
        del runtime.recent[oldest]
