"""The spend engine: decode, validate, dedupe, price, bucket, close, detect — no Kafka in it.

The Faust worker runs one :class:`Engine` per source partition; ``spendsentry backtest`` runs
one over a file. Both feed it the same way, so both produce the same alerts.

Event-time rules (documented in docs/concepts/buckets-and-watermarks.md, tested in tests/streams/test_engine.py):

* a bucket ``[s, s + size)`` of a key closes once the engine has seen an event with
  timestamp ``>= s + size + allowed_lateness`` (the watermark passed it), or on
  :meth:`Engine.idle` / :meth:`Engine.flush`;
* an event whose bucket is already closed is *late*: its cost still counts in the key's
  running total and ``late`` counter, but no closed bucket is re-judged;
* an event whose ``event_id`` was already seen in its (open) bucket is a duplicate and is
  dropped (the dedup horizon is the open-bucket horizon; later copies are late anyway).
"""

from __future__ import annotations

import hashlib
import logging
import pickle
from operator import attrgetter
from time import perf_counter
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import orjson

from alerts.lifecycle import Lifecycle, SeverityPolicy
from detectors.base import Detector, Verdict
from detectors.seasonal import SeasonalSpendDetector
from schemas.alert import Alert
from schemas.errors import DecodeError, SchemaError, ValidationError
from schemas.usage import UsageEvent, decode_usage, validate_usage
from streams.core.buckets import Bucket, KeyState
from streams.core.budgets import BudgetPartials, Partial
from streams.core.attribution import AttributionConfig, SegmentStore
from detectors.bill_grain import BILL_TAG, BillGrainDetector

ALERT_TYPE = "cost_spike"
#: the one key of a family that every new key folds into once the family holds ``max_keys`` keys
OTHER = "__other__"
log = logging.getLogger("spendsentry.engine")
#: field that marks a control message (feedback) on the usage topic
CONTROL = "__control__"
CONTROL_MARK = b'"__control__"'


class Pricer(Protocol):
    def cost(self, event: UsageEvent) -> float | None: ...


@dataclass(frozen=True, slots=True)
class EngineConfig:
    bucket_seconds: float = 60.0
    allowed_lateness_s: float = 10.0
    #: key families; the first is the partition key producers must key messages by, and every
    #: other family must include its dimensions so each key lives in exactly one partition.
    group_bys: tuple[tuple[str, ...], ...] = (("model",),)
    resolve_after: int = 3
    max_gap_buckets: int = 240
    severity: SeverityPolicy = field(default_factory=SeverityPolicy)
    #: in-bucket fast path: fire before the bucket closes when the open bucket's spend rate is
    #: ``fast_factor`` x the expected rate, it already holds at least one normal bucket's spend
    #: plus ``fast_min_excess_usd`` and ``fast_min_events`` events, after ``fast_warmup`` closed buckets
    fast_factor: float = 20.0
    fast_min_excess_usd: float = 1.0
    fast_min_events: int = 10
    fast_min_elapsed_s: float = 5.0
    fast_warmup: int = 30
    detector_factory: Callable[[], Detector] = SeasonalSpendDetector
    #: per-bucket attribution segments and the tag policy (streams/core/attribution.py); None = off
    attribution: AttributionConfig | None = None
    #: keys per family (and models in ``unpriced_models``) before new ones fold into ``__other__``
    max_keys: int = 10_000
    #: an event stamped more than this ahead of ``clock()`` (or, with no clock, of the engine's
    #: running watermark) is dead-lettered and never moves the watermark; None = no bound
    max_future_s: float | None = None
    clock: Callable[[], float] | None = None


@dataclass(slots=True)
class DeadLetter:
    """A message (or one element of an array message) that could not be processed."""

    reason: str
    original: bytes
    error: dict[str, Any] | None = None
    index: int | None = None


@dataclass(slots=True)
class Counters:
    events: int = 0
    invalid: int = 0
    duplicates: int = 0
    late: int = 0
    unpriced: int = 0
    buckets_closed: int = 0
    alerts: int = 0
    detector_seconds: float = 0.0
    #: events dead-lettered for a timestamp too far ahead (also counted in ``invalid``)
    future: int = 0
    #: events whose new key was folded into its family's ``__other__`` key (the cap was reached)
    folded: int = 0
    #: messages or events whose processing raised an unexpected error (also counted in ``invalid``)
    errors: int = 0

    def add(self, other: Counters) -> None:
        for name in self.__slots__:  # type: ignore[attr-defined]
            setattr(self, name, getattr(self, name) + getattr(other, name))


def key_name(key: dict[str, str]) -> str:
    """Stable text form of a key, used as table key and API id: ``model=gpt-4o``."""
    return ",".join(f"{dim}={value}" for dim, value in key.items())


_blake2b = hashlib.blake2b
_from_bytes = int.from_bytes


def _digest(event_id: str) -> int:
    return _from_bytes(_blake2b(event_id.encode(), digest_size=8).digest(), "little")


def _key_getter(dims: tuple[str, ...]) -> Callable[[UsageEvent], tuple]:
    """The key tuple of an event in one family (a plain attribute read for one-field families)."""
    if len(dims) == 1 and not dims[0].startswith("tags."):
        get = attrgetter(dims[0])
        return lambda event: (get(event) or "",)
    return lambda event: tuple(event.dimension(d) or "" for d in dims)


class Engine:
    """State and logic for one stream of usage events (one Kafka partition, or one file)."""

    def __init__(self, config: EngineConfig, pricer: Pricer) -> None:
        self.config = config
        self.pricer = pricer
        self.keys: dict[tuple, KeyState] = {}
        self.counters = Counters()
        self.unpriced_models: Counter[tuple[str, str]] = Counter()
        self.max_ts = 0.0
        #: every bucket starting before this has been closed for every key
        self.closed_until = 0.0
        self._open_index: dict[float, set[KeyState]] = {}
        self._alerts: list[Alert] = []
        self._dirty_windows: set[KeyState] = set()
        self._dirty_models: set[KeyState] = set()
        self._size = config.bucket_seconds
        self._families = [tuple(dims) for dims in config.group_bys]
        #: (family index, dims, key getter) per family, for the per-event loop in :meth:`add`
        self._family_keys = [(i, dims, _key_getter(dims)) for i, dims in enumerate(self._families)]
        self.budget_partials = BudgetPartials()
        self._partials: list[Partial] = []
        self.segments = SegmentStore(config.attribution, config.bucket_seconds) if config.attribution else None
        #: imported bill rows (FOCUS), judged at their own grain; made on the first one
        self.bills: BillGrainDetector | None = None
        #: keys per family (for the ``max_keys`` cap) and the families that already logged their fold
        self.family_sizes = [0] * len(self._families)
        self._folded_logged: set[int] = set()

    def future_limit(self) -> float:
        """The latest event time accepted now (``inf`` with no bound or before the first event)."""
        config = self.config
        if config.max_future_s is None:
            return float("inf")
        if config.clock is not None:
            return config.clock() + config.max_future_s
        return self.max_ts + config.max_future_s if self.max_ts else float("inf")

    # -- input -------------------------------------------------------------------------
    def ingest(self, raw: bytes) -> list[DeadLetter]:
        """Decode one message (an event or a JSON array of events) and add what is valid.

        Never raises: whatever goes wrong with the message (or one element of it), including an
        unexpected error in pricing, attribution or detection, becomes a dead letter with its
        reason, so one bad message never stops the stream (docs/operations/guarantees.md).
        """
        try:
            return self._ingest(raw)
        except Exception as exc:  # isolation: the message is the unit of failure, not the stream
            self.counters.invalid += 1
            self.counters.errors += 1
            return [DeadLetter(_unexpected(exc), raw)]

    def _ingest(self, raw: bytes) -> list[DeadLetter]:
        if CONTROL_MARK not in raw:
            try:
                events = decode_usage(raw)
            except RecursionError:
                events = None  # nested deeper than the typed decoder recurses: orjson says why below
            if events is not None:  # every event well-formed: the hot path
                add = self.add
                dead: list[DeadLetter] = []
                for index, event in enumerate(events):
                    try:
                        add(event)
                    except Exception as exc:
                        whole = len(events) == 1 and raw.lstrip()[:1] != b"["
                        dead.append(self._reject(exc, raw if whole else orjson.dumps(event.to_dict()),
                                                 None if whole else index))
                return dead
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.counters.invalid += 1
            return [DeadLetter(f"invalid JSON: {exc}", raw)]
        if isinstance(data, dict):
            if CONTROL in data:
                return self.control(data, raw)
            try:
                self.add(validate_usage(data))
            except Exception as exc:
                return [self._reject(exc, raw)]
            return []
        if not isinstance(data, list):
            self.counters.invalid += 1
            err = DecodeError(f"message must be a JSON object or array of objects, got {type(data).__name__}")
            return [DeadLetter(err.reason, raw)]
        dead = []
        for index, item in enumerate(data):
            try:
                self.add(validate_usage(item))
            except Exception as exc:
                dead.append(self._reject(exc, orjson.dumps(item), index))
        return dead

    def _reject(self, exc: Exception, original: bytes, index: int | None = None) -> DeadLetter:
        """The dead letter of one message or array element that raised ``exc``."""
        self.counters.invalid += 1
        if isinstance(exc, SchemaError):
            return _dead(exc, original, index)
        self.counters.errors += 1
        return DeadLetter(_unexpected(exc), original, None, index)

    def add(self, event: UsageEvent) -> None:
        """Add one validated event; closes buckets the event's time carries the watermark past.

        Raises :class:`FutureEventError` (and changes nothing) when the event is stamped further
        ahead than ``max_future_s``."""
        ts = event.timestamp
        if self.config.max_future_s is not None and ts > self.future_limit():
            self.counters.future += 1
            raise FutureEventError(ts, self.future_limit(), self.config.max_future_s,
                                   "wall clock" if self.config.clock is not None else "watermark")
        if event.tags and BILL_TAG in event.tags:
            return self._add_bill(event)
        size = self._size
        start = ts - ts % size
        cost = event.cost_usd
        unpriced = False
        if cost is None:
            cost = self.pricer.cost(event)
            if cost is None:
                cost = 0.0
                unpriced = True
        digest = _digest(event.event_id)
        late = start < self.closed_until
        keys = self.keys
        dirty = self._dirty_windows
        for family_index, dims, key_of in self._family_keys:
            key = key_of(event)
            state = keys.get((family_index, key))
            if state is None:
                if self.family_sizes[family_index] >= self.config.max_keys:
                    key = self._fold(family_index, dims)
                    state = keys.get((family_index, key))
                if state is None:
                    state = self._new_state(family_index, dims, key)
            bucket = None if late else state.open.get(start)
            if family_index == 0 and bucket is not None and digest in bucket.ids:
                self.counters.duplicates += 1
                return
            dirty.add(state)
            state.total_cost += cost
            state.total_events += 1
            if unpriced:
                state.unpriced += 1
            if late:
                state.late += 1
                continue
            if bucket is None:
                bucket = state.open[start] = Bucket(start)
                self._open_index.setdefault(start, set()).add(state)
            if family_index == 0:
                bucket.ids.add(digest)
            bucket.cost += cost
            bucket.requests += event.request_count
            bucket.events += 1
            bucket.input_tokens += event.input_tokens
            bucket.output_tokens += event.output_tokens
            bucket.cached_input_tokens += event.cached_input_tokens
            if unpriced:
                bucket.unpriced += 1
            if bucket.cost >= state.fast_floor and state.lifecycle.incident is None:
                self._fast_check(state, bucket, ts)
        if self.budget_partials.budgets:
            self.budget_partials.add(event, cost)
        if self.segments is not None:
            self.segments.add(event, cost, start)
        counters = self.counters
        counters.events += 1
        if late:
            counters.late += 1
        if unpriced:
            counters.unpriced += 1
            model = (event.provider, event.model)
            if model not in self.unpriced_models and len(self.unpriced_models) >= self.config.max_keys:
                model = (OTHER, OTHER)
            self.unpriced_models[model] += 1
        if ts > self.max_ts:
            self.max_ts = ts
            if ts - self.config.allowed_lateness_s - size >= self.closed_until:
                self._close_until(ts - self.config.allowed_lateness_s)

    def _add_bill(self, event: UsageEvent) -> None:
        """An imported bill row (FOCUS): judged per service/account at the bill's grain, not per minute."""
        if self.bills is None:
            self.bills = BillGrainDetector()
        duplicates = self.bills.duplicates
        self.bills.add(event, event.cost_usd or 0.0)
        if self.bills.duplicates != duplicates:
            self.counters.duplicates += 1
            return
        self.counters.events += 1
        self._extend_alerts(self.bills.drain_alerts())

    def _extend_alerts(self, alerts: list[Alert]) -> None:
        if alerts:
            self.counters.alerts += len(alerts)
            self._alerts += alerts

    def control(self, data: dict[str, Any], raw: bytes) -> list[DeadLetter]:
        """A control message travelling with the usage stream (so it is ordered with the key's
        events and reaches the partition that owns the key).

        ``{"__control__": "feedback", "action": "expected", "alert_id": ..., "key": {...}}``: the
        operator says the alert's level is normal: the key's detector takes the level of its
        last closed bucket as the new baseline and the open incident resolves.
        """
        if data.get(CONTROL) != "feedback" or data.get("action") != "expected" or not isinstance(data.get("key"), dict):
            return [DeadLetter(f"unknown control message {str(data.get(CONTROL))[:40]!r}", raw)]
        key = {str(k): str(v) for k, v in data["key"].items()}
        dims = tuple(key)
        if dims not in self._families:
            return []  # a budget or grouped alert: nothing to rebase here
        state = self.keys.get((self._families.index(dims), tuple(key.values())))
        if state is None or state.last is None:
            return []
        level = state.lifecycle.incident.peak_observed if state.lifecycle.incident else state.last.cost
        rebase = getattr(state.detector, "rebase", None)
        if rebase is not None:
            rebase({"t": state.last.start, "cost": level})
        else:
            state.detector = self.config.detector_factory()
            state.closed = 0
        state.fast_floor = state.fast_rate = float("inf")
        alert = state.lifecycle.resolve_now(alert_type=ALERT_TYPE, key=state.key, at=self.max_ts, observed=level,
                                            expected=level, reason="expected")
        self._dirty_models.add(state)
        if alert is not None:
            self.counters.alerts += 1
            self._alerts.append(alert)
        return []

    # -- time --------------------------------------------------------------------------
    def idle(self, seconds: float) -> None:
        """Advance event time by ``seconds`` of observed silence (wall clock), closing buckets.

        The worker calls this when a partition received nothing for a while, so a quiet
        partition still closes its last buckets and resolves its incidents.
        """
        self.max_ts += seconds
        self._close_until(self.max_ts - self.config.allowed_lateness_s)

    def flush(self) -> None:
        """Close every open bucket (end of a backtest file)."""
        if self._open_index:
            self._close_until(max(self._open_index) + self._size)

    def _close_until(self, horizon: float) -> None:
        """Close every bucket that ends at or before ``horizon``, oldest first."""
        size = self._size
        limit = horizon - horizon % size
        if limit <= self.closed_until:
            return
        for start in sorted(s for s in self._open_index if s + size <= limit):
            for state in sorted(self._open_index.pop(start), key=_by_name):
                self._close(state, state.open.pop(start))
        self.closed_until = limit
        if self.segments is not None:
            self.segments.close(limit)
            self._extend_alerts(self.segments.drain_alerts())
        if self.budget_partials.sums:
            self._partials += self.budget_partials.close(limit)

    def _close(self, state: KeyState, bucket: Bucket) -> None:
        size = self._size
        if state.last_closed is not None:
            gap_from = max(state.last_closed + size, bucket.start - self.config.max_gap_buckets * size)
            start = gap_from
            while start < bucket.start:
                self._judge(state, Bucket(start))
                start += size
        self._judge(state, bucket)

    def _judge(self, state: KeyState, bucket: Bucket) -> None:
        started = perf_counter()
        verdict: Verdict = state.judge(bucket)
        self.counters.detector_seconds += perf_counter() - started
        config = self.config
        if state.closed >= config.fast_warmup:
            state.fast_floor = verdict.expected + config.fast_min_excess_usd
            state.fast_rate = config.fast_factor * verdict.expected / self._size
        self.counters.buckets_closed += 1
        self._dirty_models.add(state)
        self._dirty_windows.add(state)
        if not verdict.anomalous and state.lifecycle.incident is None:
            return  # the common case: nothing to tell the lifecycle (and no details to build)
        alert = state.lifecycle.on_verdict(
            alert_type=ALERT_TYPE, key=state.key, start=bucket.start, end=bucket.start + self._size,
            observed=bucket.cost, verdict=verdict, policy=self.config.severity,
            details={
                "detector": state.detector.name, "requests": bucket.requests, "events": bucket.events,
                "input_tokens": bucket.input_tokens, "output_tokens": bucket.output_tokens,
                "unpriced_events": bucket.unpriced,
            },
        )
        if alert is not None:
            self.counters.alerts += 1
            self._alerts.append(alert)

    def _fast_check(self, state: KeyState, bucket: Bucket, ts: float) -> None:
        """Cheap in-bucket burst test: a 30x retry storm alerts within seconds, not at minute end."""
        config = self.config
        elapsed = max(ts - bucket.start, config.fast_min_elapsed_s)
        if bucket.events < config.fast_min_events or bucket.cost < state.fast_rate * elapsed:
            return
        expected = state.last.expected if state.last else 0.0
        projected = bucket.cost * self._size / elapsed
        ratio = projected / expected if expected > 0 else float("inf")
        verdict = Verdict(score=1.0, expected=expected, anomalous=True,
                          reason=f"in-bucket burst: ${bucket.cost:.2f} in {elapsed:.0f}s, on pace for {ratio:.0f}x expected")
        alert = state.lifecycle.on_verdict(
            alert_type=ALERT_TYPE, key=state.key, start=bucket.start, end=ts, observed=bucket.cost,
            verdict=verdict, policy=config.severity,
            details={"detector": "fast_path", "requests": bucket.requests, "events": bucket.events,
                     "projected_usd": round(projected, 6), "early": True},
        )
        if alert is not None:
            self.counters.alerts += 1
            self._alerts.append(alert)
            self._dirty_models.add(state)

    def _new_state(self, family_index: int, dims: tuple[str, ...], key: tuple) -> KeyState:
        named = dict(zip(dims, key))
        state = KeyState(key_name(named), named, self.config.detector_factory(), Lifecycle(self.config.resolve_after))
        self.keys[(family_index, key)] = state
        self.family_sizes[family_index] += 1
        return state

    def _fold(self, family_index: int, dims: tuple[str, ...]) -> tuple:
        """The ``__other__`` key a new key of a full family is counted under (logged once)."""
        self.counters.folded += 1
        if family_index not in self._folded_logged:
            self._folded_logged.add(family_index)
            log.warning("key family %s holds %d keys (SPENDSENTRY_MAX_KEYS): new keys are counted under %s",
                        ",".join(dims), self.config.max_keys, OTHER)
        return (OTHER,) * len(dims)

    # -- output ------------------------------------------------------------------------
    @property
    def has_output(self) -> bool:
        """Whether alerts or budget partials wait to be drained."""
        return bool(self._alerts or self._partials)

    def drain_alerts(self) -> list[Alert]:
        alerts, self._alerts = self._alerts, []
        return alerts

    def drain_partials(self) -> list[Partial]:
        """Budget spend of closed minutes, for :class:`streams.core.budgets.BudgetBook`."""
        partials, self._partials = self._partials, []
        return partials

    # -- persistence (the worker stores these blobs in Faust tables) ------------------
    def drain_dirty(self) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
        """Snapshots of what changed since the last call: (window blobs, model blobs) by key id."""
        windows = [(s.name, pickle.dumps((s.key, s.window_state()), protocol=5)) for s in self._dirty_windows]
        models = [(s.name, pickle.dumps((s.key, s.model_state()), protocol=5)) for s in self._dirty_models]
        self._dirty_windows.clear()
        self._dirty_models.clear()
        return windows, models

    def meta(self) -> dict[str, Any]:
        return {"max_ts": self.max_ts, "closed_until": self.closed_until,
                "budget_sums": [[b, m, c] for (b, m), c in self.budget_partials.sums.items()]}

    def restore(self, meta: dict[str, Any] | None, windows: Iterable[bytes], models: Iterable[bytes]) -> None:
        """Rebuild state from snapshots written by :meth:`drain_dirty` and :meth:`meta`."""
        if meta:
            self.max_ts, self.closed_until = meta["max_ts"], meta["closed_until"]
            self.budget_partials.sums = {(b, m): c for b, m, c in meta.get("budget_sums", [])}
        for blob in models:
            key, model_state = pickle.loads(blob)
            self._state_for(key).set_model_state(model_state)
        for blob in windows:
            key, window_state = pickle.loads(blob)
            state = self._state_for(key)
            state.set_window_state(window_state)
            for start in state.open:
                self._open_index.setdefault(start, set()).add(state)

    def _state_for(self, key: dict[str, str]) -> KeyState:
        dims = tuple(key)
        family_index = self._families.index(dims)
        values = tuple(key.values())
        return self.keys.get((family_index, values)) or self._new_state(family_index, dims, values)

    # -- views ---------------------------------------------------------------------------
    def spend(self, states: Iterable[KeyState] | None = None) -> list[dict[str, Any]]:
        """Current windows per key (of ``states``, default all), for ``GET /v1/spend``."""
        out = []
        for state in self.keys.values() if states is None else states:
            out.append({
                "key": state.key,
                "total_cost_usd": round(state.total_cost, 6),
                "events": state.total_events,
                "unpriced_events": state.unpriced,
                "late_events": state.late,
                "open_buckets": [
                    {"start": b.start, "cost_usd": round(b.cost, 6), "requests": b.requests, "events": b.events,
                     "unpriced_events": b.unpriced}
                    for b in sorted(state.open.values(), key=lambda b: b.start)
                ],
                "last_closed": None if state.last is None else {
                    "start": state.last.start, "cost_usd": round(state.last.cost, 6),
                    "expected_usd": round(state.last.expected, 6), "score": round(state.last.score, 4),
                },
                "incident": None if state.lifecycle.incident is None else state.lifecycle.incident.alert_id,
            })
        return out


def _by_name(state: KeyState) -> str:
    return state.name


class FutureEventError(ValidationError):
    """An event stamped further ahead than ``max_future_s``: it would move the watermark past every
    real event and blind detection, so it is dead-lettered instead."""

    def __init__(self, timestamp: float, limit: float, max_future_s: float, against: str) -> None:
        super().__init__("timestamp", timestamp,
                         f"more than {max_future_s:g} s ahead of the {against} (latest accepted {limit:.3f})")


def _unexpected(exc: BaseException) -> str:
    """Dead-letter reason of an unexpected error: its type and message, bounded."""
    text = f"processing failed: {type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


def _dead(exc: SchemaError, original: bytes, index: int | None = None) -> DeadLetter:
    error = exc.as_dict() if isinstance(exc, ValidationError) else None
    return DeadLetter(exc.reason, original, error, index)
