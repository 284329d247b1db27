"""The Faust app class the worker runs: faust.App with one fix to its Kafka consumer.

Faust drops the records a fetch returns for a stream partition it holds paused during table
recovery (aiokafka can hand them out while Faust's active-partition set is momentarily empty) and
relies on its seek to the committed offsets after recovery to read them again. aiokafka's
``seek_to_committed`` seeks only offsets > 0, so a partition with no committed offset yet (a
worker killed before its first commit on it) was left after the dropped records: the restarted
worker never saw them. :class:`RewindingConsumer` seeks such a stream partition to its beginning,
which is where ``auto_offset_reset=earliest`` would have started it. It also tells the worker a
partition's fetch position (:meth:`RewindingConsumer.fetch_position`), its measure of lag.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka.partitioner import murmur2
import faust
from faust.transport import by_url
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP
from faust.types.transports import TransportT

log = logging.getLogger("spendsentry.streams")


class RewindingConsumer(aiokafka_driver.Consumer):
    """Seeks stream partitions that have no committed offset to their beginning, not nowhere."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed = await super().seek_to_committed()
        if self.app.conf.consumer_auto_offset_reset != "earliest":
            return committed
        changelogs = self.app.tables.changelog_topics  # recovery reads these from where it wants
        fresh = [tp for tp, offset in committed.items()
                 if tp.topic not in changelogs and not (offset is not None and offset > 0)]
        if fresh:
            for tp, offset in (await self.earliest_offsets(*fresh)).items():
                log.debug("%s has no committed offset: reading it from its beginning (%d)", tp, offset)
                await self.seek(tp, offset)
        return committed

    def fetch_position(self, tp: TP) -> int | None:
        """The offset fetched next for ``tp`` (aiokafka's ``position`` without its wait for one that
        is not known yet); None while it is not known (just assigned, or resetting). It moves past
        transaction markers, which are never handed to a stream."""
        assignment = self._thread._ensure_consumer()._subscription.subscription
        assignment = assignment and assignment.assignment
        if assignment is None or tp not in assignment.tps:
            return None
        state = assignment.state_value(tp)
        return state.position if state.has_valid_position else None


class Transport(aiokafka_driver.Transport):
    Consumer = RewindingConsumer


def key_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a message key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class KeyHashedGlobalTable(faust.GlobalTable):
    """A global table that picks a key's changelog partition itself, as Kafka's default partitioner
    does, instead of asking the producer: the producer's metadata does not list a changelog topic
    created at this start until its next refresh (minutes later), and a write before that raised
    inside Faust (``'NoneType' object is not iterable``), crashing the writing agent or timer
    (alert delivery, a minute into a fresh demo)."""

    def partition_for_key(self, key: Any) -> int | None:
        partitions = self.partitions or self.app.conf.topic_partitions
        return key_partition(key, partitions) if isinstance(key, bytes) else super().partition_for_key(key)


class App(faust.App):
    """faust.App whose Kafka consumer is :class:`RewindingConsumer`, and which tells
    ``on_agent_crash`` (when set) of every agent that raised, before Faust restarts it."""

    on_agent_crash: Callable[[Any, BaseException], Awaitable[None]] | None = None

    async def _on_agent_error(self, agent: Any, exc: BaseException) -> None:
        if self.on_agent_crash is not None:
            await self.on_agent_crash(agent, exc)
        await super()._on_agent_error(agent, exc)

    def _new_transport(self) -> TransportT:
        transport = by_url(self.conf.broker_consumer[0])
        if transport is aiokafka_driver.Transport:
            transport = Transport
        return transport(self.conf.broker_consumer, self)
