"""A partition's state log: one delta record per snapshot, compaction into pages, and a restore that
is exact from any prefix of the changelog (a kill after any write)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.config import Settings
from streams.core import state_codec
from streams.worker import partition_engines
from streams.worker.partition_engines import PartitionEngines
from tests.support import ChangelogTable

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600
CONFIG = Settings.from_env({}).engine_config()


def messages(count: int, keys: int, per_message: int = 20, step: float = 0.5) -> list[bytes]:
    """Messages of priced events over ``keys`` models and 3 services, ``step`` seconds of event time
    apart (buckets close as they come)."""
    out = []
    for m in range(count):
        batch = []
        for j in range(per_message):
            i = m * per_message + j
            k = (i * 7) % keys
            batch.append({"event_id": f"e{i}", "timestamp": T0 + i * step, "provider": "p", "model": f"m{k}",
                          "service": f"s{k % 3}", "cost_usd": 0.01 * (1 + i % 5), "input_tokens": 10})
        out.append(orjson.dumps(batch))
    return out


def view(engines: PartitionEngines) -> tuple[int, dict[str, Any], dict[str, tuple[bytes, bytes]]]:
    """Offset, clocks and every key's records, byte for byte."""
    engine = engines.get(0)
    return (engines.offsets[0], engine.meta(),
            {s.name: (state_codec.dumps(s.window_state()), state_codec.dumps(s.model_state()))
             for s in engine.keys.values()})


def unnamed(table: ChangelogTable) -> set[bytes]:
    """Keys of the table that its meta record does not name (none once a restore swept them)."""
    if b"0" not in table.data:
        return set(table.data)
    meta = orjson.loads(table.data[b"0"])
    named = {f"0|p|{page}|{gen}|{i}".encode() for page, gen, chunks in meta["pages"] for i in range(chunks)}
    named |= {f"0|d|{seq}|{i}".encode() for seq, chunks in meta["deltas"] for i in range(chunks)}
    return set(table.data) - named - {b"0"}


def feed(engines: PartitionEngines, msgs: list[bytes], first: int) -> None:
    engine = engines.get(0)
    for offset, raw in enumerate(msgs[first:], start=first):
        engine.ingest(raw)
        engines.offsets[0] = offset


def test_a_snapshot_is_one_delta_record_and_its_meta_record_whatever_the_key_count() -> None:
    table = ChangelogTable()
    engines = PartitionEngines(CONFIG, None, table)  # type: ignore[arg-type]
    feed(engines, messages(50, 1000, step=0.01), 0)  # 10 s: one open bucket each, nothing closes
    engines.persist(0)
    assert len(engines.get(0).keys) == 2000  # 1,000 models, each on one service (two families): all dirty
    sent = [key for _, key, _ in table.sent]
    # one delta (its chunks: every new key's window and detector), then the meta record naming it
    assert sent == [b"0|d|1|%d" % i for i in range(len(sent) - 1)] + [b"0"]
    assert orjson.loads(table.data[b"0"])["deltas"] == [[1, len(sent) - 1]]


@pytest.fixture
def small_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks, pages and compaction thresholds small enough that a short run uses them all."""
    monkeypatch.setattr(partition_engines, "CHUNK_BYTES", 3_000)
    monkeypatch.setattr(partition_engines, "PAGES", 4)
    monkeypatch.setattr(partition_engines, "COMPACT_MIN_BYTES", 30_000)
    monkeypatch.setattr(partition_engines, "MAX_DELTAS", 4)


def test_restore_after_a_kill_at_any_write_is_the_last_committed_snapshot_and_resumes_exactly(small_log: None) -> None:
    msgs = messages(48, 12)
    table = ChangelogTable()
    engines = PartitionEngines(CONFIG, None, table)  # type: ignore[arg-type]
    committed: list[tuple[int, Any]] = []  # (changelog records up to its meta record, snapshot)
    for first in range(0, len(msgs), 3):
        feed(engines, msgs[:first + 3], first)
        engines.persist(0)
        meta_at = max(i for i, (_, key, _) in enumerate(table.sent) if key == b"0") + 1
        committed.append((meta_at, view(engines)))
    final = view(engines)
    sent = [key for _, key, _ in table.sent]
    assert any(b"|p|" in key for key in sent) and any(v is None for _, _, v in table.sent)  # compacted
    assert any(key.endswith(b"|1") for key in sent)  # a snapshot spanning chunks

    for records in range(len(table.sent) + 1):
        recovered = table.recovered(records)
        restarted = PartitionEngines(CONFIG, None, recovered)  # type: ignore[arg-type]
        expected = [snapshot for meta_at, snapshot in committed if meta_at <= records]
        assert view(restarted) == (expected[-1] if expected else (-1, {"max_ts": 0.0, "closed_until": 0.0,
                                                                      "budget_sums": []}, {})), records
        assert unnamed(recovered) == set(), records  # what the kill left uncommitted is deleted
        feed(restarted, msgs, restarted.offsets[0] + 1)
        assert view(restarted) == final, records


def test_the_compacted_changelog_holds_the_image_and_the_deltas_since_not_the_history(small_log: None) -> None:
    table = ChangelogTable()
    engines = PartitionEngines(CONFIG, None, table)  # type: ignore[arg-type]
    msgs = messages(300, 12)
    for first in range(0, len(msgs), 3):
        feed(engines, msgs[:first + 3], first)
        engines.persist(0)
    recovered = table.recovered()
    meta = orjson.loads(recovered.data[b"0"])
    assert meta["seq"] == 100 and len(meta["deltas"]) < partition_engines.MAX_DELTAS
    assert unnamed(recovered) == set()  # nothing superseded survives compaction
    restarted = PartitionEngines(CONFIG, None, recovered)  # type: ignore[arg-type]
    assert view(restarted) == view(engines)
    assert recovered.sent == []  # nothing left over to delete


def test_a_chunk_that_does_not_decode_is_skipped_counted_and_deleted(small_log: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(partition_engines, "COMPACT_MIN_BYTES", 1_000_000)  # the second snapshot stays a delta
    table = ChangelogTable()
    engines = PartitionEngines(CONFIG, None, table)  # type: ignore[arg-type]
    msgs = messages(6, 12)
    feed(engines, msgs[:3], 0)
    engines.persist(0)
    before = view(engines)
    feed(engines, msgs, 3)
    engines.persist(0)
    after = view(engines)
    recovered = table.recovered()
    bad = {name for name, _ in state_codec.loads_entries(recovered.data[b"0|d|2|0"])[0]}
    recovered.data[b"0|d|2|0"] = b"\x80\x04garbage"
    skipped = state_codec.SKIPPED["state batch"]
    restarted = PartitionEngines(CONFIG, None, recovered)  # type: ignore[arg-type]
    offset, _, keys = view(restarted)
    assert state_codec.SKIPPED["state batch"] == skipped + 1
    assert (0, b"0|d|2|0", None) in recovered.sent and b"0|d|2|0" not in recovered.data
    # the keys of the skipped chunk are as the snapshot before left them; the others are the latest
    assert offset == after[0] and bad and set(after[2]) - set(before[2]) <= bad
    assert keys == {name: (before if name in bad else after)[2][name] for name in after[2] if name in keys}
    assert set(keys) == set(after[2]) - (bad - set(before[2]))
