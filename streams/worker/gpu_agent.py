"""The worker's GPU side: ``<prefix>.gpu`` -> idle-GPU waste alerts, GPU spend, ``GET /v1/gpu``.

``process_gpu`` takes batches from the GPU topic (what ``spendsentry collect-gpu`` sends, keyed
``cluster|node``), validates each event (:func:`schemas.gpu.validate_gpu`; invalid ones go to the
dead-letter topic with their reason, like usage events), folds it into its partition's
:class:`streams.gpu_ledger.GpuLedger` and publishes the idle detector's ``gpu_idle`` alerts to the
alerts topic, where they are routed and delivered like cost alerts. Each partition's ledger is
written to the ``gpu`` table once per batch (:mod:`streams.core.state_codec`, never pickle; with the
last source offset, so a restarted worker skips what the snapshot already holds).

Idle detection runs per partition, i.e. per set of nodes: a cluster/team/gpu-model group whose
nodes hash to several partitions can show one incident per partition (each with its own devices).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

import faust
import orjson

from schemas.errors import SchemaError, ValidationError
from schemas.gpu import validate_gpu
from streams.core import state_codec
from streams.core.engine import DeadLetter
from streams.core.gpu_ledger import GpuLedger, gpu_view, load_gpu_prices
from streams.worker.partition_engines import persist
from streams.worker.runtime import Runtime


log = logging.getLogger("spendsentry.gpu")


class GpuRuntime:
    def __init__(self, runtime: Runtime) -> None:
        settings = runtime.settings
        self.settings = settings
        self.table = runtime.app.Table("gpu", key_type=bytes, value_type=bytes, partitions=settings.partitions)
        self.table.key_serializer = self.table.value_serializer = "raw"
        self.ledgers: dict[int, GpuLedger] = {}
        self.prices = load_gpu_prices(settings.gpu_prices_file) if settings.gpu_prices_file else {}
        self.invalid = 0

    def ledger(self, partition: int) -> GpuLedger:
        ledger = self.ledgers.get(partition)
        if ledger is None:
            blob = self.table.data.get(str(partition).encode())
            ledger = state_codec.load_or_skip(blob, "gpu ledger") if blob else None
            if not isinstance(ledger, GpuLedger):
                settings = self.settings
                ledger = GpuLedger()
                ledger.detector.threshold = settings.gpu_idle_threshold
                ledger.detector.min_idle_s = settings.gpu_idle_minutes * 60.0
            self.ledgers[partition] = ledger
        return ledger

    def fold(self, partition: int, raw: bytes) -> tuple[list, list[DeadLetter]]:
        """Alerts and dead letters of one message (an event or an array of events); never raises:
        an unexpected error dead-letters the message, so one bad message never stops the agent."""
        try:
            return self._fold(partition, raw)
        except Exception as exc:
            self.invalid += 1
            return [], [DeadLetter(f"processing failed: {type(exc).__name__}: {exc}"[:500], raw)]

    def _fold(self, partition: int, raw: bytes) -> tuple[list, list[DeadLetter]]:
        ledger = self.ledger(partition)
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.invalid += 1
            return [], [DeadLetter(f"invalid JSON: {exc}", raw)]
        items = data if isinstance(data, list) else [data]
        alerts, dead = [], []
        for index, item in enumerate(items):
            try:
                event = validate_gpu(item)
            except SchemaError as exc:
                self.invalid += 1
                error = exc.as_dict() if isinstance(exc, ValidationError) else None
                dead.append(DeadLetter(exc.reason, orjson.dumps(item) if isinstance(data, list) else raw, error,
                                       index if isinstance(data, list) else None))
                continue
            try:
                alerts += ledger.observe(event)
            except Exception as exc:
                self.invalid += 1
                dead.append(DeadLetter(f"processing failed: {type(exc).__name__}: {exc}"[:500],
                                       orjson.dumps(item) if isinstance(data, list) else raw, None,
                                       index if isinstance(data, list) else None))
        return alerts, dead

    def persist(self, partition: int) -> None:
        ledger = self.ledgers[partition]
        ledger.prune()
        persist(self.table, partition, str(partition).encode(), state_codec.dumps(ledger))

    def view(self, window_s: float) -> dict[str, Any]:
        body = gpu_view(self.ledgers.values(), window_s=window_s, prices=self.prices)
        body["events"] = sum(l.events for l in self.ledgers.values())
        body["invalid"] = self.invalid
        return body


def register_gpu(app: faust.App, runtime: Runtime) -> GpuRuntime:
    settings = runtime.settings
    gpu = runtime.gpu = GpuRuntime(runtime)
    topic = app.topic(settings.gpu_topic, partitions=settings.partitions, key_type=bytes, value_type=bytes,
                      key_serializer="raw", value_serializer="raw")

    @app.agent(topic, name="process_gpu")
    async def process_gpu(stream: faust.StreamT) -> None:
        async for events in stream.take_events(2000, within=0.5):
            by_partition: dict[int, list[Any]] = defaultdict(list)
            for event in events:
                by_partition[event.message.partition].append(event.message)
            for partition, messages in by_partition.items():
                if not runtime.owns(settings.gpu_topic, partition):
                    continue  # revoked while the batch was taken: its new owner reads it
                ledger = gpu.ledger(partition)
                alerts = []
                for message in messages:
                    if message.offset <= ledger.offset:
                        continue  # already in the restored snapshot
                    ledger.offset = message.offset
                    found, dead = gpu.fold(partition, message.value)
                    alerts += found
                    for letter in dead:
                        await runtime.send_dead(letter, message)
                await runtime.publish(alerts)
                gpu.persist(partition)

    @app.on_partitions_revoked.connect
    async def on_gpu_revoked(sender: Any, revoked: set, **_: Any) -> None:
        for tp in revoked:
            if tp.topic == settings.gpu_topic:
                gpu.ledgers.pop(tp.partition, None)

    return gpu
