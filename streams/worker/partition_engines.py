"""One engine per source partition, persisted to Faust tables once per batch (not per event).

Table keys are ``<partition>|<key name>`` and every write goes to the changelog partition of
the source partition it came from, so a key's state moves with its partition on rebalance.
The per-partition meta record stores the last source offset folded into the snapshot: on
restart, messages at or below it are skipped, so replayed messages are never counted twice.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from streams.core import state_codec
from detectors.bill_grain import BillGrainDetector
from streams.core.engine import Engine, EngineConfig, Pricer

log = logging.getLogger("spendsentry.streams")


def persist(table: Any, partition: int, key: bytes, value: bytes) -> None:
    """Write a table entry to an explicit changelog partition (the batch spans partitions)."""
    table.data[key] = value
    table.send_changelog(partition, key, value)


class PartitionEngines:
    def __init__(self, config: EngineConfig, pricer: Pricer, windows: Any, models: Any, meta: Any,
                 segments: Any = None) -> None:
        self.config = config
        #: attribution segments (one blob per bucket, in a ring of slots so no key is ever deleted)
        #: and the partition's attribution/bill state; see streams/core/attribution.py
        self.segments = segments
        self.pricer = pricer
        self.windows = windows
        self.models = models
        self.meta = meta
        self.engines: dict[int, Engine] = {}
        self.offsets: dict[int, int] = {}
        self.last_input: dict[int, float] = {}

    def get(self, partition: int) -> Engine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = self._restore(partition)
        return engine

    def _restore(self, partition: int) -> Engine:
        prefix = f"{partition}|".encode()
        engine = Engine(self.config, self.pricer)
        meta = self.meta.data.get(str(partition).encode())
        windows = [v for k, v in self.windows.data.items() if k.startswith(prefix)]
        models = [v for k, v in self.models.data.items() if k.startswith(prefix)]
        offset = -1
        values = _meta(meta) if meta else None
        if values is not None:
            offset = values["offset"]
            engine.restore(values["engine"], windows, models)
            self._restore_extra(partition, engine)
        self.offsets[partition] = offset
        self.last_input[partition] = time.monotonic()
        if values is not None:
            log.info("partition %d: restored %d keys, resuming after offset %d", partition, len(engine.keys), offset)
        return engine

    def persist(self, partition: int) -> None:
        """Snapshot what changed in this partition's engine since the last call."""
        engine = self.engines[partition]
        windows, models = engine.drain_dirty()
        prefix = f"{partition}|"
        for name, blob in windows:
            persist(self.windows, partition, (prefix + name).encode(), blob)
        for name, blob in models:
            persist(self.models, partition, (prefix + name).encode(), blob)
        self._persist_extra(partition, engine)
        meta = orjson.dumps({"offset": self.offsets[partition], "engine": engine.meta()})
        persist(self.meta, partition, str(partition).encode(), meta)

    def _slot(self, start: float) -> int:
        size = self.config.bucket_seconds
        attribution = self.config.attribution
        slots = int(attribution.horizon_s // size) + 120 if attribution is not None else 1
        return int(start // size) % slots

    def _persist_extra(self, partition: int, engine: Engine) -> None:
        if self.segments is None:
            return
        if engine.segments is not None:
            for start, rows in engine.segments.drain_dirty():
                if rows is not None:  # pruned buckets: the slot is overwritten later, restore skips old ones
                    persist(self.segments, partition, f"{partition}|seg|{self._slot(start)}".encode(),
                            state_codec.dumps((start, rows)))
        bills_dirty = engine.bills is not None and engine.bills.dirty
        if bills_dirty or (engine.segments is not None and engine.segments.state_dirty):
            if engine.bills is not None:
                engine.bills.dirty = False
            state = {"segments": engine.segments.state() if engine.segments is not None else None,
                     "bills": engine.bills}
            persist(self.segments, partition, f"{partition}|state".encode(), state_codec.dumps(state))

    def _restore_extra(self, partition: int, engine: Engine) -> None:
        if self.segments is None:
            return
        blob = self.segments.data.get(f"{partition}|state".encode())
        state = state_codec.load_or_skip(blob, "attribution") if blob else None
        if not isinstance(state, dict):
            state = {}
        if isinstance(state.get("bills"), BillGrainDetector):
            engine.bills = state["bills"]
        if engine.segments is not None:
            prefix = f"{partition}|seg|".encode()
            found = (state_codec.load_or_skip(v, "segment") for k, v in self.segments.data.items() if k.startswith(prefix))
            buckets = [b for b in found if type(b) is tuple and len(b) == 2 and isinstance(b[0], float)]
            engine.segments.restore(state.get("segments"), buckets)

    def drop(self, partitions: set[int]) -> None:
        """Forget engines of revoked partitions; they reload from the tables if they come back."""
        for partition in partitions:
            self.engines.pop(partition, None)
            self.offsets.pop(partition, None)
            self.last_input.pop(partition, None)


def _meta(blob: bytes) -> dict[str, Any] | None:
    """A partition's meta record (JSON: last source offset and engine clocks), or None when it does
    not decode: the partition then starts fresh (logged and counted like any skipped state record)."""
    try:
        values = orjson.loads(blob)
        if (isinstance(values, dict) and type(values.get("offset")) is int and isinstance(values.get("engine"), dict)
                and isinstance(values["engine"].get("max_ts"), (int, float))
                and isinstance(values["engine"].get("closed_until"), (int, float))):
            return values
    except orjson.JSONDecodeError:
        pass
    state_codec.SKIPPED["meta"] += 1
    log.warning("skipped a partition meta record that does not decode; the partition starts fresh")
    return None
