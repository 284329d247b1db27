"""The worker's Kafka consumer: after table recovery every stream partition is read from where it
must be, also one that has no committed offset yet (Faust dropped a fetch of it while paused); its
fetch position (the worker's measure of lag) is aiokafka's."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from aiokafka.consumer.subscription_state import SubscriptionState
from aiokafka.structs import TopicPartition
from faust.types import TP

from streams.worker.consumer import App, RewindingConsumer

USAGE, ALERTS, CHANGELOG = TP("t.usage", 0), TP("t.alerts", 1), TP("t-windows-changelog", 0)


class Thread:
    """The consumer thread's calls the seek makes, against made-up committed/earliest offsets."""

    def __init__(self, committed: Mapping[TP, int | None], earliest: Mapping[TP, int]) -> None:
        self.committed = committed
        self.earliest = earliest
        self.positions: dict[TP, int] = {tp: 7 for tp in committed}  # after the dropped fetch

    async def seek_to_committed(self) -> Mapping[TP, int | None]:
        for tp, offset in self.committed.items():
            if offset and offset > 0:  # as aiokafka does
                self.positions[tp] = offset
        return self.committed

    async def earliest_offsets(self, *partitions: TP) -> Mapping[TP, int]:
        return {tp: self.earliest[tp] for tp in partitions}

    def seek(self, tp: TP, offset: int) -> None:
        self.positions[tp] = offset


def consumer(thread: Thread, reset: str = "earliest") -> RewindingConsumer:
    app = App("t", broker="kafka://127.0.0.1:9", store="memory://", consumer_auto_offset_reset=reset)
    app.Table("windows")
    made = app.consumer
    assert isinstance(made, RewindingConsumer)
    made._thread = thread  # type: ignore[assignment]
    return made


@pytest.mark.parametrize("no_commit", [None, 0])
async def test_a_stream_partition_without_a_committed_offset_is_read_from_its_beginning(no_commit) -> None:
    thread = Thread({USAGE: no_commit, ALERTS: 5, CHANGELOG: None}, {USAGE: 2, ALERTS: 0, CHANGELOG: 0})
    await consumer(thread).perform_seek()
    assert thread.positions == {USAGE: 2, ALERTS: 5, CHANGELOG: 7}  # changelogs are recovery's business


async def test_latest_offset_reset_is_left_alone() -> None:
    thread = Thread({USAGE: None}, {USAGE: 0})
    await consumer(thread, reset="latest").perform_seek()
    assert thread.positions == {USAGE: 7}


class Subscribed:
    """aiokafka's own subscription state, as its consumer holds it, behind the consumer thread."""

    def __init__(self, *assigned: TP) -> None:
        self._subscription = SubscriptionState()
        self._subscription.assign_from_user({TopicPartition(tp.topic, tp.partition) for tp in assigned})

    def _ensure_consumer(self) -> Subscribed:
        return self


async def test_the_fetch_position_is_aiokafkas_and_unknown_until_it_has_one() -> None:
    thread = Subscribed(USAGE)
    made = consumer(Thread({}, {}))
    made._thread = thread  # type: ignore[assignment]
    assert made.fetch_position(USAGE) is None  # assigned, no position yet
    assert made.fetch_position(ALERTS) is None  # not assigned
    # past a transaction's commit marker at offset 10 (never handed to a stream) the position is 11
    thread._subscription.seek(TopicPartition(USAGE.topic, USAGE.partition), 11)
    assert made.fetch_position(USAGE) == 11


def test_global_tables_partition_their_changelog_writes_by_key_as_kafka_does(tmp_path) -> None:
    """A global table's write must not need the producer's metadata of its changelog topic (unknown
    to the producer for minutes after the topic is created: the write crashed the agent), and must
    land where Kafka's default partitioner would put the key, as the producer did before."""
    from aiokafka.partitioner import DefaultPartitioner

    from streams.config import Settings
    from streams.core.pricing import PriceCatalogue
    from streams.worker.agents import create_worker
    from streams.worker.consumer import key_partition

    settings = Settings.from_env({"SPENDSENTRY_DATA_DIR": str(tmp_path), "SPENDSENTRY_PARTITIONS": "8"})
    _, runtime = create_worker(settings, PriceCatalogue.load(settings.prices_file))
    partitions = list(range(8))
    for name, table in runtime.tables.items():
        for key in (b"al_0123", b"webhook:https://h/x|al_1", name.encode()):
            assert table.partition_for_key(key) == key_partition(key, 8) == DefaultPartitioner()(
                key, partitions, partitions), name
