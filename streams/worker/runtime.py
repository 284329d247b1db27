"""What the worker's agents and the API share: settings, engines, topics, tables, counters.

Agents
------
``process_usage``  usage topic -> engine per partition -> dead letters, alerts; one table
                   snapshot per batch and dirty key.
``deliver_alerts`` alerts topic -> :class:`streams.delivery.DeliveryService` (route, group,
                   gate, send); each alert state delivered once, recorded in a table so a
                   restarted worker does not deliver twice.
``close_idle``     timer: quiet partitions still close buckets (and resolve incidents).
``retry_deliveries`` timer: due long-period delivery retries; give-ups go to the undeliverable topic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from typing import Any

import faust
import orjson
from faust.exceptions import ConsumerNotStarted

from alerts.slack_blocks import ACTION_STATES
from alerts.slack_interactivity import SNOOZE_S
from schemas.alert import Alert
from schemas.budget import Budget
from schemas.subscription import Destination
from schemas.usage import UsageEvent
from streams.config import Settings
from detectors.burn_rate import BudgetTracker
from streams.core import state_codec
from streams.core.budgets import BudgetBook, Partial, load_budgets_file
from streams.core.engine import ALERT_TYPE, CONTROL, Counters, DeadLetter, Pricer
from streams.core.forecast import Forecast, tracker_forecast
from streams.core.paging import alert_order, page
from streams.producer import key_message_key, message_key
from streams.sources.normalize import Normalizer
from streams.worker.alert_delivery import DeliveryService, JsonTable
from streams.worker.consumer import key_partition
from streams.worker.digests import DigestService
from streams.worker.health import Health
from streams.worker.partition_engines import PartitionEngines, persist

log = logging.getLogger("spendsentry.streams")

#: accepted feedback actions (API names and Slack action ids) -> Slack action id
FEEDBACK_ACTIONS = {"ack": "ack", "acknowledge": "ack", "snooze": "snooze_1h", "snooze_1h": "snooze_1h",
                    "expected": "expected"}
BATCH_MAX = 10_000
BATCH_WITHIN_S = 0.2
#: engine state is snapshotted (and the events it counts acked) at most this often per partition:
#: alerts still go out after every batch, but a hot key is written once per second, not per batch
PERSIST_EVERY_S = 1.0
#: a dead-letter record keeps at most this much of the original message (plus its headers), so
#: a message at the broker's size limit still fits in one dead-letter record
DEADLETTER_MAX_BYTES = 900_000


class Runtime:
    """What the agents and pages share: settings, engines, topics, tables, counters."""

    def __init__(self, app: faust.App, settings: Settings, pricer: Pricer) -> None:
        self.app = app
        self.settings = settings
        raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw"}
        self.usage_topic = app.topic(settings.usage_topic, partitions=settings.partitions, **raw)
        self.alerts_topic = app.topic(settings.alerts_topic, partitions=settings.partitions, **raw)
        self.deadletter_topic = app.topic(settings.deadletter_topic, partitions=settings.partitions, **raw)
        self.undeliverable_topic = app.topic(settings.undeliverable_topic, partitions=settings.partitions, **raw)
        self.budget_spend_topic = app.topic(settings.budget_spend_topic, partitions=settings.partitions, **raw)
        self.control_topic = app.topic(settings.control_topic, partitions=settings.partitions, **raw)
        # per-partition engine state (deltas, image pages, the meta record that commits them;
        # streams/worker/partition_engines.py): written to the source partition's changelog partition
        self.meta = _bytes_table(app, "meta", settings.partitions)
        self.trackers = _bytes_table(app, "budget-trackers", settings.partitions)
        self.segments = _bytes_table(app, "segments", settings.partitions)  # attribution (streams/core/attribution.py)
        # small state every worker needs (API, routing, deliveries): global, writable from anywhere
        self.tables = {name: _global_table(app, name, settings.partitions) for name in (
            "subscriptions", "budgets", "budget_state", "recent", "delivered", "routes", "sent", "pending",
            "slack_refs", "snoozed", "waiting", "digest_spend", "digests")}
        self.delivery = DeliveryService(settings, self.tables, owns=self.owns_alert)
        self.budgets_store = JsonTable(self.tables["budgets"])
        self.budget_state = JsonTable(self.tables["budget_state"])
        self.file_budgets = load_budgets_file(settings.budgets_file) if settings.budgets_file else []
        self.budget_book = BudgetBook()
        self._budgets_seen: tuple | None = None
        self.budgets: list[Budget] = []
        self.budget_version = 0
        #: budget id -> offset of the last budget-spend record its tracker applied (snapshotted with
        #: it; -1 for none): a budget is here once its tracker was read back from its snapshot
        self._tracker_offsets: dict[str, int] = {}
        self.engines = PartitionEngines(settings.engine_config(), pricer, self.meta,
                                        segments=self.segments)
        self.deadletters = 0
        #: counters of engines whose partitions were revoked, so process totals never go down
        self.retired = Counters()
        self.alerts_published: Counter[tuple[str, str, str]] = Counter()
        self.logged_unpriced: set[tuple[str, str]] = set()
        #: accepted ``?format=`` values of POST /v1/events and the provider normalizer behind them
        self.formats: set[str] = {"canonical"}
        self.normalize: Normalizer | None = None
        #: the agent and the idle timer both drive engines; batches must not interleave
        self.lock = asyncio.Lock()
        #: (topic, partition) revoked and not assigned again: a batch of one of them that was
        #: already taken is dropped (its new owner reads it), so no state is written for it here
        self.revoked: set[tuple[str, int]] = set()
        #: the GPU agent's ledgers, once :func:`streams.worker.gpu_agent.register_gpu` ran
        self.gpu: Any = None
        self.digests = DigestService(settings, self.tables, lambda: self.engines.engines, self.delivery,
                                     owns=self.owns_alert)
        #: agent crashes and per-partition progress, for /healthz and /metrics
        self.health = Health(settings.stall_s)

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
        value = dead.original
        if len(value) > DEADLETTER_MAX_BYTES:
            headers["spendsentry-truncated-from"] = str(len(value)).encode()
            value = value[:DEADLETTER_MAX_BYTES]
        log.warning("dead letter %s/%d/%d: %s", message.topic, message.partition, message.offset, dead.reason[:300])
        await self.deadletter_topic.send(key=message.key, value=value, headers=headers)

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

    def ready(self) -> bool:
        """Tables recovered and no rebalance under way."""
        return self.app.tables.recovery.completed.is_set() and not self.app.rebalancing

    async def flush_writes(self) -> None:
        """Wait until every record sent so far (table changelog writes included) reached Kafka."""
        await self.app.producer.flush()

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
        self.health.forget(partitions)

    def problems(self) -> list[str]:
        """Why the worker is unwell now (an agent crashed recently, a partition with lag stalled,
        recovery stuck); empty when healthy."""
        return self.health.problems(self.lag(), self.app.tables.recovery.completed.is_set())

    def progress_ages(self) -> dict[int, float]:
        """Seconds since each assigned usage partition last advanced."""
        return self.health.seconds_since_progress(set(self.lag()))

    def lag(self) -> dict[int, int]:
        """:meth:`consumer_lag`, or no partitions while the consumer is not started yet."""
        try:
            return self.consumer_lag()
        except ConsumerNotStarted:
            return {}

    def owns(self, topic: str, partition: int) -> bool:
        return (topic, partition) not in self.revoked

    def reload_trackers(self) -> None:
        """Budget-spend partitions moved: read each tracker back from its snapshot before its next
        record (another worker may have applied records to it meanwhile)."""
        self._tracker_offsets.clear()

    def consumer_lag(self) -> dict[int, int]:
        """Messages not processed yet per assigned usage partition whose position is known.

        Those still in Kafka (high-water mark minus the consumer's position) plus those fetched and
        not processed yet (the last offset handed to the agent past the last one it processed). The
        position moves past transaction markers and compacted holes, so they never read as lag (the
        last processed offset plus one would never reach the high-water mark past a commit marker).
        """
        consumer = self.app.consumer
        processed = self.engines.offsets
        lag = {}
        for tp in consumer.assignment():
            if tp.topic == self.settings.usage_topic:
                highwater, position = consumer.highwater(tp), consumer.fetch_position(tp)
                if highwater is not None and position is not None:
                    handed = consumer._read_offset.get(tp)
                    waiting = 0 if handed is None else max(0, handed - processed.get(tp.partition, -1))
                    lag[tp.partition] = max(0, highwater - position) + waiting
        return lag

    def ensure_engines(self) -> None:
        """Restore the engine of every assigned usage partition once tables are recovered,
        so a restarted worker shows its state and closes idle buckets before new events come."""
        if not self.app.tables.recovery.completed.is_set() or self.app.rebalancing:
            return
        for tp in self.app.consumer.assignment():
            if tp.topic == self.settings.usage_topic and self.owns(tp.topic, tp.partition):
                self.engines.get(tp.partition)

    # -- budgets ---------------------------------------------------------------------------
    def refresh_budgets(self) -> None:
        """Give engines and the budget book the current budgets (file + API) when they changed."""
        if self.file_budgets and self.app.tables.recovery.completed.is_set():
            # SPENDSENTRY_BUDGETS_FILE wins at start (after recovery); the API shows and edits them after
            for budget in self.file_budgets:
                if self.budgets_store.get(budget.id) != budget.to_dict():
                    self.budgets_store[budget.id] = budget.to_dict()
            self.file_budgets = []
        seen = tuple(sorted(self.tables["budgets"].data.items()))
        if seen != self._budgets_seen:
            self._budgets_seen = seen
            self.budget_version += 1
            self.budgets = [Budget.from_dict(v) for v in self.budgets_store.values()]
            self.budget_book.set_budgets(self.budgets)
            for budget_id in set(self._tracker_offsets) - set(self.budget_book.trackers):
                del self._tracker_offsets[budget_id]  # deleted: read back again if it comes back
        for engine in self.engines.engines.values():
            if engine.budget_partials.version != self.budget_version:
                engine.budget_partials.set_budgets(self.budgets, self.budget_version)

    async def send_partials(self, partials: list[Partial]) -> None:
        for partial in partials:
            await self.budget_spend_topic.send(key=partial.budget_id.encode(), value=orjson.dumps(partial.to_dict()))

    async def track_budgets(self, partition: int, partials: list[tuple[int, Partial]]) -> None:
        """Apply one budget-spend partition's ``(offset, partial)`` records to the budget trackers;
        persist and publish what changed.

        Each tracker is snapshotted with the offset of the last record it applied, so records
        replayed after a crash (applied and snapshotted, not yet committed) are not counted twice.
        """
        book = self.budget_book
        applied_to = self._tracker_offsets
        for budget_id in {p.budget_id for _, p in partials} & set(book.trackers) - set(applied_to):
            blob = self.trackers.data.get(f"{partition}|{budget_id}".encode())
            applied_to[budget_id] = -1
            found = state_codec.load_or_skip(blob, "budget tracker") if blob else None
            if type(found) is tuple and len(found) == 2 and type(found[0]) is int and isinstance(found[1], BudgetTracker):
                applied, restored = found
                if restored.budget == book.trackers[budget_id].budget:
                    book.trackers[budget_id], applied_to[budget_id] = restored, applied
        fresh: list[Partial] = []
        for offset, partial in partials:
            if partial.budget_id in applied_to and offset > applied_to[partial.budget_id]:
                applied_to[partial.budget_id] = offset
                fresh.append(partial)
        await self.publish(book.apply(fresh))
        for budget_id in {p.budget_id for p in fresh}:
            tracker = book.trackers[budget_id]
            persist(self.trackers, partition, f"{partition}|{budget_id}".encode(),
                    state_codec.dumps((applied_to[budget_id], tracker)))
            self.budget_state[budget_id] = tracker.state()

    def budget_forecast(self, budget_id: str) -> Forecast | None:
        tracker = self.budget_book.trackers.get(budget_id)
        return None if tracker is None else tracker_forecast(tracker)

    def budget_view(self, budget: Budget) -> dict[str, Any]:
        return {**budget.to_dict(), "state": self.budget_state.get(budget.id)}

    # -- feedback ----------------------------------------------------------------------------
    async def feedback(self, alert_id: str, action: Any, *, user: Any = None) -> tuple[int, dict[str, Any]]:
        """Acknowledge, snooze (1 h) or mark an alert expected, from Slack buttons or the API.

        "expected" travels on the control topic (never the usage topic: producers of usage events
        must not steer detectors) to the partition that owns the key, where the key's detector takes
        the current level as normal and the incident resolves (:meth:`apply_control`).
        """
        action = FEEDBACK_ACTIONS.get(action) if isinstance(action, str) else None
        if action is None:
            return 400, {"error": f"action: must be one of {', '.join(FEEDBACK_ACTIONS)}", "field": "action"}
        record = self.delivery.recent.get(alert_id)
        if record is None:
            return 404, {"error": f"alert {alert_id} not found"}
        alert = Alert.from_dict(record["alert"])
        user = user if isinstance(user, str) else None
        if action == "snooze_1h":
            self.delivery.snoozed[alert_id] = time.time() + SNOOZE_S
        if action == "expected" and alert.type == ALERT_TYPE:
            control = {CONTROL: "feedback", "action": "expected", "alert_id": alert_id, "key": alert.key}
            await self.control_topic.send(key=key_message_key(alert.key, self.settings.group_bys[0]),
                                          value=orjson.dumps(control))
        state = ACTION_STATES[action]
        for channel in {d["sink"].split(":", 1)[1] for d in record["deliveries"] if d["sink"].startswith("slack:")}:
            sink = self.delivery.factory.sink_for(Destination(type="slack", channel=channel))
            await sink.set_state(alert_id, state, user=user)
        record.setdefault("feedback", []).append({"action": action, "user": user, "at": time.time()})
        self.delivery.recent[alert_id] = record
        return 202, {"alert_id": alert_id, "action": action, "state": state}

    async def apply_control(self, partition: int, raw: bytes) -> None:
        """One control record: applied to the engine of the same usage partition (the topics are
        co-partitioned), its alerts published and the engine snapshotted; a bad one is logged."""
        async with self.lock:
            if not any(tp.topic == self.settings.usage_topic and tp.partition == partition
                       for tp in self.app.consumer.assignment()):
                log.warning("control record for partition %d skipped: usage partition not assigned here", partition)
                return
            engine = self.engines.get(partition)
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                log.warning("control record on partition %d skipped: invalid JSON: %s", partition, exc)
                return
            if not isinstance(data, dict):
                log.warning("control record on partition %d skipped: not a JSON object", partition)
                return
            for dead in engine.control(data, raw):
                log.warning("control record on partition %d skipped: %s", partition, dead.reason)
            await self.publish(engine.drain_alerts())
            self.engines.persist(partition)

    def owns_alert(self, alert_id: str) -> bool:
        """Whether this worker holds the alerts-topic partition of ``alert_id`` (it runs its retries)."""
        partition = key_partition(alert_id.encode(), self.settings.partitions)
        return any(tp.topic == self.settings.alerts_topic and tp.partition == partition
                   for tp in self.app.consumer.assignment())

    async def send_undeliverable(self) -> None:
        records, self.delivery.undeliverable = self.delivery.undeliverable, []
        for record in records:
            log.error("alert %s undeliverable to %s: %s", record.alert["alert_id"], record.destination_key, record.reason)
            await self.undeliverable_topic.send(key=record.alert["alert_id"].encode(), value=orjson.dumps(record.to_dict()))

    def recent_alerts(self, limit: int, after: tuple | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """Newest first (resolved before firing at the same time): one page after the cursor key
        ``after``, and the next page's cursor (see :func:`streams.core.paging.page`)."""
        return page(self.delivery.recent.values(), alert_order, limit, after)


def _bytes_table(app: faust.App, name: str, partitions: int) -> faust.Table:
    """A table of raw bytes keys and values: we serialise snapshots ourselves
    (:mod:`streams.core.state_codec`, orjson), never pickle."""
    table = app.Table(name, key_type=bytes, value_type=bytes, partitions=partitions)
    table.key_serializer = table.value_serializer = "raw"  # read when the changelog topic is made
    return table


def _global_table(app: faust.App, name: str, partitions: int) -> faust.GlobalTable:
    """A global table of raw bytes: every worker reads all of it; writes pick their partition by key."""
    table = app.GlobalTable(name, key_type=bytes, value_type=bytes, partitions=partitions, use_partitioner=True)
    table.key_serializer = table.value_serializer = "raw"
    return table

