"""The usage agent's per-partition fold: every offset counted once, in order."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson

from streams.app import _process_partition
from streams.config import Settings
from streams.partitions import PartitionEngines
from tests.support import ChangelogTable

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600


def record(offset: int) -> SimpleNamespace:
    value = orjson.dumps({"event_id": f"e{offset}", "timestamp": T0 + offset, "provider": "p", "model": "m",
                          "cost_usd": 1.0})
    return SimpleNamespace(topic="usage", partition=0, offset=offset, key=b"m", value=value)


def events(*offsets: int) -> list[SimpleNamespace]:
    return [SimpleNamespace(message=record(offset)) for offset in offsets]


class FakeRuntime:
    """What ``_process_partition`` uses of :class:`streams.app.Runtime`."""

    def __init__(self, engines: PartitionEngines) -> None:
        self.engines = engines

    def refresh_budgets(self) -> None:
        pass

    def log_unpriced(self, partition: int) -> None:
        pass

    async def send_dead(self, dead: Any, message: Any) -> None:
        raise AssertionError(dead)

    async def publish(self, alerts: list) -> None:
        pass

    async def send_partials(self, partials: list) -> None:
        pass


def runtime() -> FakeRuntime:
    tables = [ChangelogTable() for _ in range(3)]
    return FakeRuntime(PartitionEngines(Settings.from_env({}).engine_config(), None, *tables))  # type: ignore[arg-type]


def counted(rt: FakeRuntime) -> int:
    """Events as ``GET /v1/spend`` counts them (restored with the snapshot)."""
    return sum(key["events"] for key in rt.engines.get(0).spend())


async def test_offsets_with_gaps_are_counted_as_they_come() -> None:
    # transactional producers leave a commit marker at an offset of its own; compaction leaves holes
    rt = runtime()
    await _process_partition(rt, 0, events(3, 4), persist=False)
    assert counted(rt) == 2 and rt.engines.offsets[0] == 4
    await _process_partition(rt, 0, events(5, 8, 9), persist=False)
    assert counted(rt) == 5 and rt.engines.offsets[0] == 9


async def test_snapshot_and_redelivered_offsets_are_not_counted_again() -> None:
    rt = runtime()
    await _process_partition(rt, 0, events(0, 1, 2), persist=False)
    rt.engines.persist(0)
    restarted = FakeRuntime(PartitionEngines(rt.engines.config, None, rt.engines.windows, rt.engines.models,
                                             rt.engines.meta))
    # resumes at the committed offset (before the snapshot's); a rewind re-delivers within one batch
    await _process_partition(restarted, 0, events(1, 2, 3, 4, 3, 4, 5), persist=False)
    assert counted(restarted) == 6 and restarted.engines.offsets[0] == 5
    assert restarted.engines.get(0).counters.duplicates == 0  # skipped by offset, not ingested twice
