"""The Faust app and its thin agents around the pure engine.

Agents
------
``process_usage``  usage topic -> engine per partition -> dead letters, alerts; at most once a
                   second per partition, one snapshot (a delta record of its dirty keys, then the
                   meta record that commits it: :mod:`streams.worker.partition_engines`).
``deliver_alerts`` alerts topic -> :class:`streams.worker.alert_delivery.DeliveryService` (route,
                   group, gate, send); each alert state delivered once, recorded in a table so a
                   restarted worker does not deliver twice.
``track_budgets``  budget-spend partials -> burn-rate trackers.
``close_idle``     timer: quiet partitions still close buckets (and resolve incidents).
``retry_deliveries`` timer: due long-period delivery retries; give-ups go to the undeliverable topic.
``send_digests``   timer: roll up closed spend, send each digest subscription's closed period once
                   (:mod:`streams.worker.digests`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import faust
import orjson

from schemas.alert import Alert
from streams.config import Settings
from streams.core.budgets import Partial
from streams.core.engine import DeadLetter, Pricer
from streams.worker.consumer import App, KeyHashedGlobalTable
from streams.worker.runtime import BATCH_MAX, BATCH_WITHIN_S, PERSIST_EVERY_S, Runtime

#: how often due digests are looked for (a digest goes out within a minute of being due)
DIGEST_EVERY_S = 60.0
#: how often the idle close looks at the partitions (``_close_idle``)
IDLE_LOOK_S = 1.0


def create_worker(settings: Settings, pricer: Pricer) -> tuple[faust.App, Runtime]:
    """Build the Faust app with its topics, tables, agents and timers (no web pages)."""
    app = App(
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
        GlobalTable=KeyHashedGlobalTable,  # partitions its changelog writes by key itself
        # on stop, Faust otherwise waits for every message handed to a stream to be acked, and
        # the usage agent's buffered, never-processed ones never are: a SIGTERM hung until SIGKILL.
        # What was processed is snapshotted and acked in `snapshot_on_stop`; the rest is replayed.
        stream_wait_empty=False,
        stream_buffer_maxsize=BATCH_MAX,
        # a killed worker's partitions move within seconds, not Faust's default minute
        broker_session_timeout=10.0,
        broker_heartbeat_interval=2.0,
        broker_credentials=settings.kafka_security.faust_credentials(),
        topic_replication_factor=settings.replication_factor,
        # Faust's /table/* and /router/* pages would show tables (secrets included) to anyone;
        # aiohttp refuses bodies over the configured limit (its own default is 1 MiB)
        web_tables_enabled=False,
        web_router_enabled=False,
        web_application_options={"client_max_size": settings.max_body_bytes + 1},
    )
    runtime = Runtime(app, settings, pricer)
    app.on_agent_crash = runtime.health.agent_crashed

    @app.agent(runtime.usage_topic, name="process_usage")
    async def process_usage(stream: faust.StreamT) -> None:
        # events are acked (their offsets become committable) only after the snapshot that counts
        # them is written (flush_held), so a crash or rebalance replays them onto the last snapshot
        held_stream[:] = [stream]
        async for events in stream.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for event in events:
                by_partition[event.message.partition].append(event)
            async with runtime.lock:
                for partition, batch in by_partition.items():
                    if not runtime.owns(settings.usage_topic, partition):
                        continue
                    await _process_partition(runtime, partition, batch, persist=False)
                    engine = runtime.engines.engines[partition]
                    if partition not in held or held[partition][0] is not engine:
                        held[partition] = (engine, [])
                    held[partition][1].extend(batch)
                if time.monotonic() - flushed[0] >= PERSIST_EVERY_S:
                    await flush_held()

    held: dict[int, tuple[Any, list[Any]]] = {}  # partition -> (its engine, events processed, not acked)
    held_stream: list[Any] = []
    flushed = [time.monotonic()]

    async def flush_held() -> None:
        """Snapshot every partition with held events, then ack them (caller holds runtime.lock)."""
        for partition, (engine, events) in held.items():
            if runtime.engines.engines.get(partition) is engine:  # else revoked: its next owner replays them
                await runtime.send_partials(engine.drain_partials())
                runtime.engines.persist(partition)
                for event in events:
                    await held_stream[0].ack(event)
        held.clear()
        flushed[0] = time.monotonic()

    @app.timer(interval=PERSIST_EVERY_S / 2)
    async def flush_usage() -> None:
        if held and time.monotonic() - flushed[0] >= PERSIST_EVERY_S:
            async with runtime.lock:
                await flush_held()

    @app.agent(runtime.alerts_topic, name="deliver_alerts")
    async def deliver_alerts(stream: faust.StreamT) -> None:
        # grouping is the grouper's window (SPENDSENTRY_GROUP_WINDOW_SECONDS), so a batch waits at most
        # 0.1 s: every wait here adds to alert latency (0.5 s cost 0.3 s of bucket close -> webhook)
        async for events in stream.take_events(1000, within=0.1):
            alerts = []
            for event in events:
                try:
                    alerts.append(Alert.from_dict(orjson.loads(event.value)))
                except Exception as exc:  # one undecodable record is dead-lettered, the rest delivered
                    await runtime.send_dead(DeadLetter(f"undecodable alert record: {type(exc).__name__}: {exc}"[:500],
                                                       event.message.value), event.message)
            await runtime.delivery.handle(alerts)
            await runtime.send_undeliverable()

    @app.agent(runtime.budget_spend_topic, name="track_budgets")
    async def track_budgets(stream: faust.StreamT) -> None:
        async for events in stream.take_events(1000, within=0.2):
            runtime.refresh_budgets()
            by_partition: dict[int, list[tuple[int, Partial]]] = defaultdict(list)
            for event in events:
                message = event.message
                try:
                    partial = Partial(**orjson.loads(event.value))
                except Exception as exc:  # one undecodable record is dead-lettered, the rest applied
                    await runtime.send_dead(DeadLetter(f"undecodable budget-spend record: {type(exc).__name__}: {exc}"[:500],
                                                       message.value), message)
                    continue
                by_partition[message.partition].append((message.offset, partial))
            for partition, partials in by_partition.items():
                if runtime.owns(settings.budget_spend_topic, partition):
                    await runtime.track_budgets(partition, partials)

    @app.agent(runtime.control_topic, name="apply_control")
    async def apply_control(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await runtime.apply_control(event.message.partition, event.value)

    @app.timer(interval=1.0)
    async def retry_deliveries() -> None:
        await runtime.delivery.retry_due()

    @app.timer(interval=DIGEST_EVERY_S)
    async def send_digests() -> None:
        if runtime.ready():
            await runtime.digests.tick()

    @app.timer(interval=0.1)  # a closed grouping window goes out within 0.1 s
    async def flush_groups() -> None:
        if app.tables.recovery.completed.is_set() and not app.rebalancing:
            await runtime.delivery.flush_due()
        await runtime.send_undeliverable()

    @app.on_before_shutdown.connect
    async def snapshot_on_stop(sender: Any, **_: Any) -> None:
        """A stopping worker snapshots what it counted and acks it (its offsets are committed when
        the consumer stops), so its successor does not replay the last second of events."""
        async with runtime.lock:
            await flush_held()

    @app.on_before_shutdown.connect
    async def close_sinks(sender: Any, **_: Any) -> None:
        await runtime.delivery.aclose()

    @app.timer(interval=IDLE_LOOK_S)
    async def close_idle() -> None:
        await _close_idle(runtime)

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, revoked: set, **_: Any) -> None:
        async with runtime.lock:
            await flush_held()  # snapshot and ack what was counted before the partitions move
            runtime.revoked |= {(tp.topic, tp.partition) for tp in revoked}
            runtime.drop_partitions({tp.partition for tp in revoked if tp.topic == settings.usage_topic})
        if any(tp.topic == settings.budget_spend_topic for tp in revoked):
            runtime.reload_trackers()

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, assigned: set, **_: Any) -> None:
        runtime.revoked -= {(tp.topic, tp.partition) for tp in assigned}

    return app, runtime


async def _process_partition(runtime: Runtime, partition: int, batch: list[Any], persist: bool = True) -> None:
    engines = runtime.engines
    engine = engines.get(partition)
    runtime.refresh_budgets()
    last = engines.offsets[partition]
    unpriced_before = len(engine.unpriced_models)
    for event in batch:
        message = event.message
        if message.offset <= last:
            continue  # already folded: into the restored snapshot, or earlier in this batch
        last = message.offset
        for dead in engine.ingest(message.value):
            await runtime.send_dead(dead, message)
    if last != engines.offsets[partition]:
        runtime.health.progressed(partition)
    engines.offsets[partition] = last
    engines.last_input[partition] = time.monotonic()
    if len(engine.unpriced_models) != unpriced_before:
        runtime.log_unpriced(partition)
    await runtime.publish(engine.drain_alerts())
    if persist:  # else the agent's flush_held persists (and sends budget partials) once per PERSIST_EVERY_S
        await runtime.send_partials(engine.drain_partials())
        engines.persist(partition)


async def _close_idle(runtime: Runtime) -> None:
    """Advance the event time of each partition quiet for ``idle_close_s`` by its silence.

    Wall-clock silence is silence of the source (not the worker being slow) only when nothing of the
    partition waits unprocessed: in Kafka past the consumer's position, or fetched and not processed
    yet. A partition with lag keeps its event time from its own events, so a worker behind under load
    never closes the bucket its waiting events belong to (they would all be late and never judged).

    And only silence the worker was awake to see: after a look more than ``idle_close_s`` (at
    least three looks' interval) after the previous one (the process was stopped, suspended or its
    loop stalled) the lag it reads is the
    last fetch's, from before the pause, and the pause is no news of the source; the partitions'
    silence counts from then on. Read as silence, a worker resumed from a freeze moved event time
    past the backlog that waited for it (every event of it late, an extra alert).
    """
    engines = runtime.engines
    # the gap between looks is the event loop's (taken before waiting for the lock a busy batch holds)
    last_look, engines.idle_checked = engines.idle_checked, time.monotonic()
    paused = (last_look is not None
              and engines.idle_checked - last_look > max(runtime.settings.idle_close_s, 3 * IDLE_LOOK_S))
    async with runtime.lock:
        runtime.ensure_engines()
        runtime.refresh_budgets()
        now = time.monotonic()
        if paused:
            for partition in engines.last_input:
                engines.last_input[partition] = now
            return
        lag = runtime.lag()
        for partition, engine in list(engines.engines.items()):
            quiet = now - engines.last_input[partition]
            if quiet < runtime.settings.idle_close_s:
                continue
            engines.last_input[partition] = now
            if lag.get(partition) != 0:  # behind (or not known yet): its own events move its event time
                continue
            engine.idle(quiet)
            await runtime.publish(engine.drain_alerts())
            await runtime.send_partials(engine.drain_partials())
            engines.persist(partition)
