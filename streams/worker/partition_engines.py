"""One engine per source partition, persisted to Faust tables once per batch (not per event).

A partition's engine state lives in the ``meta`` table, on the changelog partition of its source
partition (so it moves with the partition on rebalance), as a log that is one Kafka topic-partition,
so a restore always sees a prefix of the writes:

* ``<p>|d|<seq>|<i>``: snapshot ``seq``'s **delta**, the records of every key that changed since the
  snapshot before (:func:`streams.core.state_codec.dumps_entries`; ``i`` counts chunks of at most
  :data:`CHUNK_BYTES`, so one record per partition and snapshot unless a snapshot is large);
* ``<p>|p|<page>|<gen>|<i>``: the **image**, every key's latest records in :data:`PAGES` pages by
  CRC-32 of the key name, written by a compaction at snapshot ``gen``;
* ``<p>``: the **meta** record, written last, which commits a snapshot: the last source offset it
  counts, the engine's clocks, its ``seq``, the image's pages and the deltas after them, in order.

Restore reads the meta record, then the pages and deltas it names (later records win): exactly the
committed snapshot; on restart, messages at or below its offset are skipped, so replayed messages
are never counted twice. Chunks a kill left uncommitted (a delta or pages written, the meta record
not) are not named by it and are deleted on restore. A compaction folds the deltas into the pages
they touch (when they hold half the image's bytes, at least :data:`COMPACT_MIN_BYTES`, or there are
:data:`MAX_DELTAS` of them), commits, then deletes the folded deltas and the replaced page chunks
(tombstones), so the compacted changelog holds about one image.
"""

from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.core import state_codec
from detectors.bill_grain import BillGrainDetector
from streams.core.engine import Engine, EngineConfig, Pricer

log = logging.getLogger("spendsentry.streams")

#: pages of a partition's image: a compaction rewrites the pages its deltas touched
PAGES = 256
#: most bytes of state records in one changelog record (Kafka's default limit is 1 MB a message)
CHUNK_BYTES = 512 * 1024
#: deltas are folded into the image once they hold this many bytes (or half the image's)
COMPACT_MIN_BYTES = 4 * 1024 * 1024
#: ... or once there are this many (a quiet partition: one small delta a snapshot)
MAX_DELTAS = 256


def persist(table: Any, partition: int, key: bytes, value: bytes) -> None:
    """Write a table entry to an explicit changelog partition (the batch spans partitions)."""
    table.data[key] = value
    table.send_changelog(partition, key, value)


def forget(table: Any, partition: int, key: bytes) -> None:
    """Delete a table entry: a tombstone on the changelog, so compaction drops the key."""
    table.data.pop(key, None)
    table.send_changelog(partition, key, None)


@dataclass
class StateLog:
    """Where a partition's committed state lies in the ``meta`` table."""

    seq: int = 0
    #: page -> (generation, chunks) of the image
    pages: dict[int, tuple[int, int]] = field(default_factory=dict)
    #: (seq, chunks) of the deltas after the image, oldest first
    deltas: list[tuple[int, int]] = field(default_factory=list)
    image_bytes: int = 0
    delta_bytes: int = 0


class PartitionEngines:
    def __init__(self, config: EngineConfig, pricer: Pricer, meta: Any, segments: Any = None) -> None:
        self.config = config
        #: attribution segments (one blob per bucket, in a ring of slots so no key is ever deleted)
        #: and the partition's attribution/bill state; see streams/core/attribution.py
        self.segments = segments
        self.pricer = pricer
        self.meta = meta
        self.engines: dict[int, Engine] = {}
        self.offsets: dict[int, int] = {}
        self.last_input: dict[int, float] = {}
        #: when the idle closer last looked (monotonic; None before its first look)
        self.idle_checked: float | None = None
        self.logs: dict[int, StateLog] = {}

    def get(self, partition: int) -> Engine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = self._restore(partition)
        return engine

    def _restore(self, partition: int) -> Engine:
        engine = Engine(self.config, self.pricer)
        data = self.meta.data
        meta_key = str(partition).encode()
        blob = data.get(meta_key)
        values = _meta(blob) if blob else None
        state = self.logs[partition] = StateLog()
        live = {meta_key}
        offset = -1
        if values is not None:
            offset = values["offset"]
            state.seq = values["seq"]
            windows: dict[str, bytes] = {}
            models: dict[str, bytes] = {}
            for page, gen, chunks in values["pages"]:
                state.image_bytes += self._load(_chunk_keys(f"{partition}|p|{page}|{gen}", chunks), windows, models, live)
                state.pages[page] = (gen, chunks)
            for seq, chunks in values["deltas"]:
                state.delta_bytes += self._load(_chunk_keys(f"{partition}|d|{seq}", chunks), windows, models, live)
                state.deltas.append((seq, chunks))
            engine.restore(values["engine"], windows.values(), models.values())
            self._restore_extra(partition, engine)
        prefix = f"{partition}|".encode()
        for key in [k for k in data if k.startswith(prefix) and k not in live]:
            forget(self.meta, partition, key)  # left by a kill before its meta record, or undecodable
        self.offsets[partition] = offset
        self.last_input[partition] = time.monotonic()
        if values is not None:
            log.info("partition %d: restored %d keys, resuming after offset %d", partition, len(engine.keys), offset)
        return engine

    def _load(self, keys: list[bytes], windows: dict[str, bytes], models: dict[str, bytes], live: set[bytes]) -> int:
        """Add the records of these chunks to ``windows`` and ``models`` and the chunks that decode to
        ``live`` (a compaction later reads only those); their size in bytes."""
        size = 0
        for key in keys:
            blob = self.meta.data.get(key)
            try:
                found_windows, found_models = state_codec.loads_entries(blob)
            except state_codec.StateDecodeError as exc:
                state_codec.SKIPPED["state batch"] += 1
                log.warning("skipped a state batch %s that is missing or does not decode (%s); its keys "
                            "restore from earlier records", key.decode(errors="replace"), exc)
                continue
            windows.update(found_windows)
            models.update(found_models)
            live.add(key)
            size += len(blob)
        return size

    def persist(self, partition: int) -> None:
        """Snapshot what changed in this partition's engine since the last call: one delta (or a
        compaction), then the meta record that commits it, then tombstones of what it replaced."""
        engine = self.engines[partition]
        windows, models = engine.drain_dirty()
        state = self.logs[partition]
        state.seq += 1
        size = sum(len(b) for _, b in windows) + sum(len(b) for _, b in models)
        dead: list[bytes] = []
        if len(state.deltas) >= MAX_DELTAS or (
                state.deltas and state.delta_bytes + size >= max(COMPACT_MIN_BYTES, state.image_bytes // 2)):
            dead = self._compact(partition, state, windows, models)
        elif windows or models:
            chunks, written = self._write(f"{partition}|d|{state.seq}", partition, windows, models)
            state.deltas.append((state.seq, chunks))
            state.delta_bytes += written
        self._persist_extra(partition, engine)
        meta = orjson.dumps({"offset": self.offsets[partition], "engine": engine.meta(), "seq": state.seq,
                             "pages": [[page, gen, chunks] for page, (gen, chunks) in sorted(state.pages.items())],
                             "deltas": state.deltas})
        persist(self.meta, partition, str(partition).encode(), meta)
        for key in dead:
            forget(self.meta, partition, key)

    def _compact(self, partition: int, state: StateLog, windows: list[tuple[str, bytes]],
                 models: list[tuple[str, bytes]]) -> list[bytes]:
        """Fold the deltas and this snapshot's records into new chunks of the pages they touch; the
        keys it replaced (deleted once the meta record commits the new pages)."""
        data = self.meta.data
        dead: list[bytes] = []
        changed: tuple[dict[str, bytes], dict[str, bytes]] = ({}, {})
        for seq, chunks in state.deltas:
            for key in _chunk_keys(f"{partition}|d|{seq}", chunks):
                if key in data:  # else skipped (and deleted) at restore
                    for records, found in zip(changed, state_codec.loads_entries(data[key])):
                        records.update(found)
                dead.append(key)
        changed[0].update(windows)
        changed[1].update(models)
        touched: dict[int, tuple[dict[str, bytes], dict[str, bytes]]] = {}
        for kind, records in enumerate(changed):
            for name, blob in records.items():
                touched.setdefault(zlib.crc32(name.encode()) % PAGES, ({}, {}))[kind][name] = blob
        for page, (page_windows, page_models) in sorted(touched.items()):
            old = state.pages.get(page)
            if old is not None:
                merged: tuple[dict[str, bytes], dict[str, bytes]] = ({}, {})
                for key in _chunk_keys(f"{partition}|p|{page}|{old[0]}", old[1]):
                    if key in data:
                        state.image_bytes -= len(data[key])
                        for records, found in zip(merged, state_codec.loads_entries(data[key])):
                            records.update(found)
                    dead.append(key)
                merged[0].update(page_windows)
                merged[1].update(page_models)
                page_windows, page_models = merged
            chunks, written = self._write(f"{partition}|p|{page}|{state.seq}", partition,
                                          list(page_windows.items()), list(page_models.items()))
            state.pages[page] = (state.seq, chunks)
            state.image_bytes += written
        state.deltas = []
        state.delta_bytes = 0
        return dead

    def _write(self, prefix: str, partition: int, windows: list[tuple[str, bytes]],
               models: list[tuple[str, bytes]]) -> tuple[int, int]:
        """Write records as chunks ``<prefix>|0``, ``|1``, ... of at most :data:`CHUNK_BYTES`; (chunks, bytes)."""
        chunks = written = 0
        batch: tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]] = ([], [])
        size = 0
        for kind, records in enumerate((windows, models)):
            for name, blob in records:
                batch[kind].append((name, blob))
                size += len(blob) + len(name)
                if size >= CHUNK_BYTES:
                    written += self._chunk(f"{prefix}|{chunks}", partition, batch)
                    chunks += 1
                    batch, size = ([], []), 0
        if batch[0] or batch[1]:
            written += self._chunk(f"{prefix}|{chunks}", partition, batch)
            chunks += 1
        return chunks, written

    def _chunk(self, key: str, partition: int, batch: tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]) -> int:
        blob = state_codec.dumps_entries(*batch)
        persist(self.meta, partition, key.encode(), blob)
        return len(blob)

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
            self.logs.pop(partition, None)


def _chunk_keys(prefix: str, chunks: int) -> list[bytes]:
    return [f"{prefix}|{i}".encode() for i in range(chunks)]


def _rows(value: Any, width: int) -> bool:
    """Whether ``value`` is a list of lists of ``width`` integers."""
    return isinstance(value, list) and all(
        isinstance(row, list) and len(row) == width and all(type(x) is int for x in row) for row in value)


def _meta(blob: bytes) -> dict[str, Any] | None:
    """A partition's meta record (JSON: last source offset, engine clocks, the pages and deltas that
    hold its keys), or None when it does not decode (or is of the per-key layout before deltas): the
    partition then starts fresh (logged and counted like any skipped state record)."""
    try:
        values = orjson.loads(blob)
        if (isinstance(values, dict) and type(values.get("offset")) is int and isinstance(values.get("engine"), dict)
                and isinstance(values["engine"].get("max_ts"), (int, float))
                and isinstance(values["engine"].get("closed_until"), (int, float))
                and type(values.get("seq")) is int and _rows(values.get("pages"), 3) and _rows(values.get("deltas"), 2)):
            return values
    except orjson.JSONDecodeError:
        pass
    state_codec.SKIPPED["meta"] += 1
    log.warning("skipped a partition meta record that does not decode; the partition starts fresh")
    return None
