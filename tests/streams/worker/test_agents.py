"""The worker's per-partition folds: every usage offset counted once, in order; every budget-spend
record applied to its tracker once, also when replayed after a crash; event time follows the wall
clock only on a partition that has nothing waiting."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import orjson
from faust.types import TP

from schemas.budget import Budget
from streams.app import create_app
from streams.worker.agents import _close_idle, _process_partition
from streams.config import Settings
from streams.core.budgets import Partial
from streams.core.pricing import PriceCatalogue
from streams.worker.health import Health
from streams.worker.partition_engines import PartitionEngines
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
        self.health = Health(stall_s=120.0)
        self.settings = Settings.from_env({})
        self.lock = asyncio.Lock()
        #: what :meth:`streams.worker.runtime.Runtime.lag` would say: messages waiting per partition
        self.waiting: dict[int, int] = {}

    def lag(self) -> dict[int, int]:
        return self.waiting

    def ensure_engines(self) -> None:
        pass

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
    return FakeRuntime(PartitionEngines(Settings.from_env({}).engine_config(), None, ChangelogTable()))  # type: ignore[arg-type]


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
    restarted = FakeRuntime(PartitionEngines(rt.engines.config, None, rt.engines.meta))
    # resumes at the committed offset (before the snapshot's); a rewind re-delivers within one batch
    await _process_partition(restarted, 0, events(1, 2, 3, 4, 3, 4, 5), persist=False)
    assert counted(restarted) == 6 and restarted.engines.offsets[0] == 5
    assert restarted.engines.get(0).counters.duplicates == 0  # skipped by offset, not ingested twice


async def test_a_partition_behind_keeps_its_bucket_open_through_wall_clock_silence() -> None:
    """A worker behind under load sees no new batch of a partition for longer than idle_close_s while
    its messages wait in Kafka: that is not a quiet source. Closing the bucket then made every waiting
    event of it late (counted, never judged): the burst the demo sends was missed that way."""
    rt = runtime()
    await _process_partition(rt, 0, events(0, 1, 2, 3, 4), persist=False)  # bucket [T0, T0 + 60) open
    engine = rt.engines.get(0)
    rt.waiting = {0: 5}
    rt.engines.last_input[0] -= 120.0  # two minutes without a batch of it
    await _close_idle(rt)
    await _process_partition(rt, 0, events(5, 6, 7, 8, 9), persist=False)
    assert engine.counters.late == 0 and engine.counters.buckets_closed == 0
    assert engine.keys[(0, ("m",))].open[T0].events == 10
    # caught up (nothing waiting) and quiet: now event time follows the wall clock and the bucket closes
    rt.waiting = {0: 0}
    rt.engines.last_input[0] -= 120.0
    await _close_idle(rt)
    assert engine.counters.buckets_closed > 0 and T0 not in engine.keys[(0, ("m",))].open
    assert engine.counters.late == 0


def budget_runtime(tmp_path: Any, trackers: ChangelogTable) -> Any:
    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path)})
    _, rt = create_app(settings, PriceCatalogue.load(settings.prices_file))
    rt.trackers, rt.budget_state = trackers, {}

    async def publish(alerts: list) -> None:
        pass

    rt.publish = publish
    rt.budget_book.set_budgets([Budget.from_dict({"id": "bud_gpt4omonth", "name": "gpt", "amount_usd": 100.0,
                                                  "period": "month", "match": {"model": "gpt-4o"}})])
    return rt


def spend(minute: int, cost: float) -> Partial:
    return Partial("bud_gpt4omonth", T0 + 60 * minute, cost, closed_until=T0 + 60 * (minute + 1))


async def test_budget_spend_replayed_after_a_crash_is_counted_once(tmp_path) -> None:
    trackers = ChangelogTable()
    first = budget_runtime(tmp_path, trackers)
    await first.track_budgets(0, [(0, spend(0, 10.0)), (1, spend(1, 5.0))])
    assert first.budget_state["bud_gpt4omonth"]["spent_usd"] == 15.0
    # killed after the tracker's snapshot, before the offsets were committed: the restarted worker
    # gets records 0-1 again, then new ones; a redelivery within a batch is skipped too
    restarted = budget_runtime(tmp_path, trackers)
    await restarted.track_budgets(0, [(0, spend(0, 10.0)), (1, spend(1, 5.0)), (2, spend(2, 1.0)), (2, spend(2, 1.0))])
    assert restarted.budget_state["bud_gpt4omonth"]["spent_usd"] == 16.0
    restarted.reload_trackers()  # the partition moved away and back: read from the snapshot again
    await restarted.track_budgets(0, [(2, spend(2, 1.0)), (3, spend(3, 2.0))])
    assert restarted.budget_state["bud_gpt4omonth"]["spent_usd"] == 18.0


class Stream:
    """The usage agent's stream: hands out the given batches (as ``noack_take`` would), records acks."""

    def __init__(self, *batches: list[SimpleNamespace]) -> None:
        self.batches = batches
        self.acked: list[SimpleNamespace] = []

    async def noack_take(self, max_: int, within: float):
        for batch in self.batches:
            yield batch

    async def ack(self, event: SimpleNamespace) -> None:
        self.acked.append(event)


def on_partition(partition: int, *offsets: int) -> list[SimpleNamespace]:
    batch = events(*offsets)
    for event in batch:
        event.message.partition = partition
    return batch


async def test_a_revoked_partition_is_not_processed_until_assigned_again(tmp_path) -> None:
    """A batch the agent took before a revoke still holds the moved partition's messages: the real
    agent skips them (its new owner reads them) and writes no state for it; once the partition is
    assigned again, its next batch is processed."""
    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path)})
    app, rt = create_app(settings, PriceCatalogue.load(settings.prices_file))
    tables = [ChangelogTable() for _ in range(2)]  # meta (the state log) and segments
    rt.engines = PartitionEngines(rt.engines.config, rt.engines.pricer, *tables)
    moved, kept = TP(settings.usage_topic, 1), TP(settings.usage_topic, 0)
    rt.engines.get(1)
    await app.on_partitions_revoked.send({moved})
    assert not rt.owns(moved.topic, 1) and rt.owns(kept.topic, 0) and 1 not in rt.engines.engines
    agent = app.agents["process_usage"].fun
    await agent(Stream(on_partition(1, 0, 1, 2) + on_partition(0, 0, 1)))
    assert 1 not in rt.engines.engines and 1 not in rt.engines.offsets
    assert not any(key.startswith(b"1|") for table in tables for key in table.data)
    assert sum(key["events"] for key in rt.engines.get(0).spend()) == 2
    await app.on_partitions_assigned.send({moved, kept})
    assert rt.owns(moved.topic, 1)
    await agent(Stream(on_partition(1, 3, 4)))
    assert sum(key["events"] for key in rt.engines.get(1).spend()) == 2


async def test_a_worker_resumed_from_a_freeze_does_not_take_its_pause_for_silence() -> None:
    """Stopped for two minutes (SIGSTOP, a suspended VM), the worker's lag is the last fetch's (0)
    and every partition looks quiet for two minutes: closing then moved event time past the backlog
    that waited in Kafka (all of it late). The silence counts from the first look after the pause."""
    rt = runtime()
    await _process_partition(rt, 0, events(0, 1, 2, 3, 4), persist=False)  # bucket [T0, T0 + 60) open
    engine = rt.engines.get(0)
    rt.waiting = {0: 0}
    await _close_idle(rt)  # a look: nothing quiet yet
    rt.engines.idle_checked = time.monotonic() - 120.0  # ... then the process froze for two minutes
    rt.engines.last_input[0] -= 120.0
    await _close_idle(rt)
    assert engine.counters.buckets_closed == 0
    await _process_partition(rt, 0, events(5, 6, 7, 8, 9), persist=False)  # the backlog, fetched
    assert engine.counters.late == 0 and engine.keys[(0, ("m",))].open[T0].events == 10
    # silence the worker saw (looking every second) still closes the bucket
    rt.engines.last_input[0] -= 120.0
    await _close_idle(rt)
    assert engine.counters.buckets_closed > 0 and engine.counters.late == 0


async def test_looks_a_second_apart_are_no_pause_even_at_the_shortest_idle_close() -> None:
    """``SPENDSENTRY_IDLE_CLOSE_SECONDS=0.5`` is allowed, and the looks are a second apart: that gap
    is the timer's own, not a freeze, so a quiet partition still closes."""
    rt = runtime()
    rt.settings = Settings.from_env({"SPENDSENTRY_IDLE_CLOSE_SECONDS": "0.5"})
    await _process_partition(rt, 0, events(0, 1, 2), persist=False)
    rt.waiting = {0: 0}
    rt.engines.idle_checked = time.monotonic() - 1.0
    rt.engines.last_input[0] -= 120.0
    await _close_idle(rt)
    assert rt.engines.get(0).counters.buckets_closed > 0
