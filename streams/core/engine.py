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
import math
from operator import attrgetter
from time import perf_counter
from collections import Counter
from dataclasses import dataclass, field, replace
from itertools import islice
from typing import Any, Callable, Iterable, Protocol

import orjson

from alerts.lifecycle import Lifecycle, SeverityPolicy
from detectors.base import Detector, Verdict
from detectors.mix import ModelShareCusum
from detectors.seasonal import SeasonalSpendDetector
from schemas.alert import Alert
from schemas.errors import DecodeError, SchemaError, ValidationError
from schemas.usage import UsageEvent, decode_usage, validate_usage
from streams.core.buckets import Bucket, Closed, KeyState
from streams.core import state_codec
from streams.core.budgets import BudgetPartials, Partial
from streams.core.attribution import AttributionConfig, SegmentStore
from streams.core.expected_band import ExpectedHistory
from detectors.bill_grain import BILL_TAG, BillGrainDetector

log = logging.getLogger("spendsentry.engine")

ALERT_TYPE = "cost_spike"
#: the one key of a family that every new key folds into once the family holds ``max_keys`` keys
OTHER = "__other__"
log = logging.getLogger("spendsentry.engine")
#: field that marks a control message (feedback) on the usage topic
CONTROL = "__control__"
CONTROL_MARK = b'"__control__"'
#: a model swap is news only towards a model whose requests cost this much more than its siblings'
SWAP_PRICIER = 1.2
#: a new stream borrows from the warmest of its service's first streams on other models (in the order
#: they appeared, so the oldest): a bounded look, so a service on thousands of models (or a client
#: inventing model names) costs each new key the same, not a scan of all of them
BORROW_SCAN = 16
#: buckets back a sibling's "share far below its band" still names it as where a swap's calls came from
MOVED_LOOKBACK = 5


class Pricer(Protocol):
    def cost(self, event: UsageEvent) -> float | None: ...


@dataclass(frozen=True, slots=True)
class EngineConfig:
    bucket_seconds: float = 60.0
    allowed_lateness_s: float = 10.0
    #: key families; the first is the partition key producers must key messages by, and every
    #: other family must include its dimensions so each key lives in exactly one partition.
    group_bys: tuple[tuple[str, ...], ...] = (("model",), ("model", "service"))
    resolve_after: int = 3
    #: a parent's or child's open incident silences a key's new one (``Engine._merge``) only if it
    #: opened at most this long before: an older one tells another story
    merge_window_s: float = 3600.0
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
        self.expected = ExpectedHistory(config.attribution.horizon_s if config.attribution else 86_400.0, self._size)
        #: new incidents of the time step being closed, merged across families by :meth:`_merge`
        self._pending: list[tuple[KeyState, Alert]] = []
        #: (family index, key values) -> the keys of finer families inside it (a model's streams)
        self._children: dict[tuple, list[KeyState]] = {}
        #: (family index, values of the dimensions other than ``model``) -> keys of that family
        self._by_rest: dict[tuple, list[KeyState]] = {}
        #: keys with an open incident: judged every minute, empty minutes too (see _close_until)
        self._incidents: set[KeyState] = set()
        #: model -> provider (at most ``max_keys``): a service's share of requests per model is
        #: judged within one provider
        self._providers: dict[str, str] = {}

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
            if CONTROL in data:  # feedback travels on <prefix>.control, produced by the worker only
                self.counters.invalid += 1
                return [DeadLetter("control records are not accepted on the usage topic", raw)]
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
        if event.model not in self._providers and len(self._providers) < self.config.max_keys:
            self._providers[event.model] = event.provider  # bounded like the keys: past it, folded anyway
        late = start < self.closed_until
        keys = self.keys
        dirty = self._dirty_windows
        for family_index, dims, key_of in self._family_keys:
            key = key_of(event)
            if family_index and "" in key:
                continue  # a finer family needs every dimension (an event without a service is its model's)
            state = keys.get((family_index, key))
            if state is None:
                if self.family_sizes[family_index] >= self.config.max_keys:
                    key = self._fold(family_index, dims)
                    state = keys.get((family_index, key))
                if state is None:
                    state = self._new_state(family_index, dims, key, event.provider)
                    # its model part (a borrowed detector, the price mix's provider) is written with
                    # its first window, not at its first close: a restore in between must not lose it
                    self._dirty_models.add(state)
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
        """A control message from ``<prefix>.control`` (written only by the worker's API and Slack
        handler, keyed like the usage topic so it reaches the partition that owns the key).

        ``{"__control__": "feedback", "action": "expected", "alert_id": ..., "key": {...}}``: the
        operator says the alert's level is normal: the key's detector takes the level of its
        last closed bucket as the new baseline and the open incident resolves; so do the silent
        incidents of its model and streams (the same cause, told by this alert).
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
        self._rebase(state, state.last)
        for related in self._related(state):
            if related.last is not None and related.lifecycle.incident is not None and related.lifecycle.incident.silent:
                self._rebase(related, related.last)
        return []

    def _rebase(self, state: KeyState, last: Closed) -> None:
        """``state``'s level is normal (operator feedback): its detector takes it as the baseline and
        its open incident resolves."""
        level = state.lifecycle.incident.peak_observed if state.lifecycle.incident else last.cost
        rebase = getattr(state.detector, "rebase", None)
        if rebase is not None:
            rebase({"t": last.start, "cost": level})
        else:
            state.detector = self.config.detector_factory()
            state.closed = 0
        state.fast_floor = state.fast_rate = float("inf")
        alert = state.lifecycle.resolve_now(alert_type=ALERT_TYPE, key=state.key, at=self.max_ts, observed=level,
                                            expected=level, reason="expected")
        self._track(state)
        self._dirty_models.add(state)
        if alert is not None:
            self.counters.alerts += 1
            self._alerts.append(alert)

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
            opened = self._open_index.pop(start)
            totals = self._group_totals(opened, start)
            for state in sorted(opened, key=_by_name):
                self._close(state, state.open.pop(start), totals)
            # a key with an open incident that went silent (traffic moved back, a job stopped) is
            # judged on its empty minutes too, so its incident settles and resolves
            for state in sorted((s for s in self._incidents if s not in opened and s.last_closed is not None
                                 and s.last_closed < start), key=_by_name):
                self._close(state, Bucket(start), totals)
            self._merge()
        self.closed_until = limit
        if self.segments is not None:
            self.segments.close(limit)
            self._extend_alerts(self.segments.drain_alerts())
        if self.budget_partials.sums:
            self._partials += self.budget_partials.close(limit)

    def _group(self, state: KeyState) -> tuple | None:
        """The price-mix group of a key that tracks its share: (dimensions, values other than the
        model, provider), e.g. one service's models of one provider; None for other keys."""
        if getattr(state.detector, "price_mix", None) is None:
            return None
        return (tuple(state.key), tuple(v for d, v in state.key.items() if d != "model"),
                self._providers.get(state.key["model"], ""))

    def _group_totals(self, states: Iterable[KeyState], start: float) -> dict[tuple, tuple[float, float]]:
        """(requests, cost) per price-mix group over the buckets of ``start`` that close now."""
        totals: dict[tuple, tuple[float, float]] = {}
        for state in states:
            group = self._group(state)
            if group is not None:
                bucket = state.open[start]
                n, c = totals.get(group, (0.0, 0.0))
                totals[group] = (n + bucket.requests, c + bucket.cost)
        return totals

    def _close(self, state: KeyState, bucket: Bucket, totals: dict[tuple, tuple[float, float]] | None = None) -> None:
        size = self._size
        if state.last_closed is not None:
            gap_from = max(state.last_closed + size, bucket.start - self.config.max_gap_buckets * size)
            start = gap_from
            while start < bucket.start:
                self._judge(state, Bucket(start))
                start += size
        self._judge(state, bucket, totals)

    def _judge(self, state: KeyState, bucket: Bucket, totals: dict[tuple, tuple[float, float]] | None = None) -> None:
        started = perf_counter()
        moved: list[str] = []
        try:
            verdict: Verdict = state.judge(bucket)
            if totals is not None:  # a closing step (not a gap's empty minute): the group's totals are known
                group = self._group(state)
                if group is not None:
                    verdict, moved = self._price_mix(state, bucket, totals.get(group, (0.0, 0.0)), verdict)
        except Exception as exc:  # noqa: BLE001 - one key's detector must never stop the close of the others
            self.counters.errors += 1
            log.warning("detector of %s failed on the bucket at %s: %r", state.name, bucket.start, exc)
            verdict = Verdict(score=0.0, expected=0.0, anomalous=False)
        self.counters.detector_seconds += perf_counter() - started
        self.expected.record(state.name, bucket.start, bucket.cost, verdict.expected)
        config = self.config
        if state.closed >= config.fast_warmup:
            state.fast_floor = verdict.expected + config.fast_min_excess_usd
            state.fast_rate = config.fast_factor * verdict.expected / self._size
        self.counters.buckets_closed += 1
        self._dirty_models.add(state)
        self._dirty_windows.add(state)
        if not verdict.anomalous and state.lifecycle.incident is None:
            return  # the common case: nothing to tell the lifecycle (and no details to build)
        alerts = state.lifecycle.on_causes(
            alert_type=ALERT_TYPE, key=state.key, start=bucket.start, end=bucket.start + self._size,
            observed=bucket.cost, verdict=verdict, policy=self.config.severity,
            details={
                "detector": state.detector.name, "requests": bucket.requests, "events": bucket.events,
                "input_tokens": bucket.input_tokens, "output_tokens": bucket.output_tokens,
                "unpriced_events": bucket.unpriced, **({"moved_from": moved} if moved else {}),
            },
        )
        self._track(state)
        for alert in alerts:
            self._emit(state, alert)

    def _track(self, state: KeyState) -> None:
        if state.lifecycle.incident is None:
            self._incidents.discard(state)
        else:
            self._incidents.add(state)

    def _price_mix(self, state: KeyState, bucket: Bucket, group: tuple[float, float],
                   verdict: Verdict) -> tuple[Verdict, list[str]]:
        """Judge the key's share of its group's requests (``ModelShareCusum``): a share that rose
        well above its band, on a model pricier than its siblings, is a model swap, one alert on
        the model that gained, naming the ones that lost (``moved_from``)."""
        mix: ModelShareCusum = state.detector.price_mix  # type: ignore[attr-defined]
        normal = mix.m
        s, share = mix.assess(bucket.requests, group[0])
        ratio = mix.price_ratio(bucket.requests, bucket.cost)
        mix.learn(bucket.requests, bucket.cost, group[0], group[1], s)
        if s >= mix.h and ratio >= SWAP_PRICIER:
            moved = self._swapped_from(state)
            model = state.key["model"]
            source = ", ".join(moved) or "its other models"
            return replace(
                verdict, anomalous=True, score=max(verdict.score, 1.0 - math.exp(-s / mix.h)), cause="", side=None,
                reason=verdict.reason if verdict.anomalous else
                f"model swap: {share:.0%} of requests on {model} (normally {normal:.0%}), {ratio:.1f}x the cost"
                f" per request of {source}: cusum={s:.1f}",
                driver=verdict.driver if verdict.anomalous else
                f"price mix: {normal:.0%} -> {share:.0%} of requests on {model} (from {source})"), moved
        if s > 0.1 * mix.h and verdict.settled and group[0] > 0 and mix.m < 0.5:
            verdict = replace(verdict, settled=False, settled_causes=())  # a swap towards this model still builds
        elif (not bucket.requests and not verdict.anomalous and not verdict.settled and s <= 0.1 * mix.h
              and mix.m < 0.5):
            # a minor model of its service whose calls went back to the siblings: an empty minute
            # settles it (below its spend band only because the stream stopped)
            verdict = replace(verdict, settled=True)
        return verdict, []

    def _swapped_from(self, state: KeyState) -> list[str]:
        """The key's siblings in its price-mix group that normally carry a fifth of its requests or more."""
        group = self._group(state)
        family = self._families.index(tuple(state.key))
        return sorted(s.key["model"] for s in self._by_rest.get(_rest(family, state.key), [])
                      if s is not state and self._group(s) == group and s.detector.price_mix.m >= 0.2)  # type: ignore[attr-defined]

    def _fast_check(self, state: KeyState, bucket: Bucket, ts: float) -> None:
        """Cheap in-bucket burst test: a 30x retry storm alerts within seconds, not at minute end."""
        config = self.config
        elapsed = max(ts - bucket.start, config.fast_min_elapsed_s)
        if bucket.events < config.fast_min_events or bucket.cost < state.fast_rate * elapsed:
            return
        stream = self._burst_stream(state, bucket, elapsed)
        if stream is not None:
            # the stream that carries the burst speaks; its model waits for its close (which
            # resets its threshold), silent then beside the stream's open incident
            state.fast_floor = float("inf")
            state, bucket = stream
            if state.lifecycle.incident is not None:
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
        self._track(state)
        if alert is not None:
            self._emit(state, alert)
            self._merge()
            self._dirty_models.add(state)

    def _burst_stream(self, state: KeyState, bucket: Bucket, elapsed: float) -> tuple[KeyState, Bucket] | None:
        """The finer key (``model x service``) whose open bucket holds at least half of what a
        model's open bucket is above its expectation, with that bucket; None for a key with no
        finer keys, or a burst no one stream explains. A model checks before its streams (and has
        more events), so a storm on its main stream crossed the model's threshold first, and the
        alert named the model, not the stream (tuning seed 70). Runs once per burst and model."""
        if self._parent_id(state.key) is not None:
            return None
        scale = elapsed / self._size
        excess = bucket.cost - (state.last.expected if state.last else 0.0) * scale
        best: tuple[float, KeyState, Bucket] | None = None
        for child in self._related(state):
            own = child.open.get(bucket.start)
            if own is None or child.last is None:
                continue
            extra = own.cost - child.last.expected * scale
            if best is None or extra > best[0]:
                best = (extra, child, own)
        if best is None or best[0] < 0.5 * excess:
            return None
        return best[1], best[2]

    def _new_state(self, family_index: int, dims: tuple[str, ...], key: tuple, provider: str = "") -> KeyState:
        named = dict(zip(dims, key))
        detector = self._borrowed(family_index, named, provider) or self.config.detector_factory()
        if family_index < len(self._families) - 1 and hasattr(detector, "use_mix"):
            detector.use_mix = False  # a mixture of finer keys: its cost per request moves with their mix
        state = KeyState(key_name(named), named, detector, Lifecycle(self.config.resolve_after))
        self._adopt_price_mix(state, family_index, provider)
        self.keys[(family_index, key)] = state
        self.family_sizes[family_index] += 1
        parent = self._parent_id(named)
        if family_index and parent is not None:
            self._children.setdefault(parent, []).append(state)
        if "model" in named:
            self._by_rest.setdefault(_rest(family_index, named), []).append(state)
        return state

    def _adopt_price_mix(self, state: KeyState, family_index: int, provider: str = "") -> None:
        """Give a ``model x ...`` key a price-mix tracker if it has none (a new key, or one restored
        from state written before the price mix existed), and learn its model's provider from it."""
        detector, named = state.detector, state.key
        if not (family_index and "model" in named and OTHER not in named.values() and hasattr(detector, "price_mix")):
            return
        if detector.price_mix is None:
            detector.price_mix = ModelShareCusum()
        mix = detector.price_mix
        if provider and not mix.provider:
            mix.provider = provider
        model = named["model"]
        if mix.provider and model not in self._providers and len(self._providers) < self.config.max_keys:
            self._providers[model] = mix.provider

    def _borrowed(self, family_index: int, named: dict[str, str], provider: str = "") -> Detector | None:
        """A new ``model x service`` stream starts from a copy of the detector of the same
        service's busiest stream on another model (warm: ``fast_warmup`` closed buckets; among
        the service's first ``BORROW_SCAN`` streams).

        A service that moves its calls to a pricier sibling model opens a stream with no history;
        judged against its service's existing stream (same requests, same tokens), the price
        difference is a cost-per-request rise from the first minutes, and ``_moved_from`` names
        the model it left. A new stream of a service with no other model starts fresh."""
        if not family_index or "model" not in named or OTHER in named.values():
            return None
        warm = [s for s in islice(self._by_rest.get(_rest(family_index, named), ()), BORROW_SCAN)
                if s.closed >= self.config.fast_warmup]
        if not warm:
            return None
        source = max(warm, key=lambda s: (s.closed, s.name))
        copy = state_codec.loads(state_codec.dumps(source.detector))
        mix = getattr(source.detector, "price_mix", None)
        if mix is not None:  # its share starts at 0 against the service's history on a sibling, else afresh
            same = provider and self._providers.get(source.key["model"]) == provider
            copy.price_mix = ModelShareCusum.sibling_of(mix) if same else None
        return copy

    def _fold(self, family_index: int, dims: tuple[str, ...]) -> tuple:
        """The ``__other__`` key a new key of a full family is counted under (logged once)."""
        self.counters.folded += 1
        if family_index not in self._folded_logged:
            self._folded_logged.add(family_index)
            log.warning("key family %s holds %d keys (SPENDSENTRY_MAX_KEYS): new keys are counted under %s",
                        ",".join(dims), self.config.max_keys, OTHER)
        return (OTHER,) * len(dims)

    # -- one incident per cause ------------------------------------------------------------
    def _emit(self, state: KeyState, alert: Alert) -> None:
        """A new (or reopened) incident waits for :meth:`_merge`; escalations and resolutions go out."""
        if alert.status == "firing" and "escalated_from" not in alert.details:
            self._pending.append((state, alert))
            return
        self.counters.alerts += 1
        self._alerts.append(alert)

    def _parent_id(self, named: dict[str, str]) -> tuple | None:
        """The partition-family key that contains ``named`` (``model=X`` for ``model=X,service=Y``)."""
        top = self._families[0]
        if tuple(named) == top or not all(d in named for d in top):
            return None
        return (0, tuple(named[d] for d in top))

    def _related(self, state: KeyState) -> list[KeyState]:
        parent = self._parent_id(state.key)
        if parent is not None:
            return [self.keys[parent]] if parent in self.keys else []
        return self._children.get((0, tuple(state.key.values())), [])

    def _merge(self) -> None:
        """One alert per cause: of the keys of one model that open incidents in the same step, the
        most specific (``model x service``) speaks and the others are silent, unless two or more of
        the model's streams open together: then the cause is the model's (a price change, a
        provider-wide leak), and the model's alert speaks, naming the streams. A key whose parent
        or child already has an open, announced incident is silent too (that alert tells the
        story), unless it is a model swap found by the service's price mix: a cause the open
        incident does not name, or that incident opened more than ``merge_window_s`` before (a
        model's incident open for five hours on a sparse key swallowed a runaway loop on one of
        its services: tuning seed 45)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        pending.sort(key=lambda p: -len(p[0].key))
        fresh = {state for state, _ in pending}
        together = self._rising_together(dict(pending))
        emitted: set[KeyState] = set()
        for state, alert in pending:
            life = state.lifecycle
            incident = next((i for i in (life.incident, life.side) if i is not None and i.alert_id == alert.alert_id), None)
            if incident is None:
                continue
            swap = bool(alert.details.get("moved_from") or alert.details.get("concurrent_with"))  # a cause of its own
            parent = self._parent_id(state.key)
            if not swap and parent is not None and self.keys.get(parent) in together:
                incident.silent = True
                continue
            window = alert.window_start - self.config.merge_window_s
            if not swap and any(r.lifecycle.incident is not None and not r.lifecycle.incident.silent
                   and r.lifecycle.incident.window_start >= window
                   and (r not in fresh or r in emitted) for r in self._related(state)):
                incident.silent = True
                continue
            if state in together:
                alert.details["streams"] = together[state]
                alert.summary += f"; {len(together[state])} services rose together: {', '.join(together[state])}"
            moved = alert.details.get("moved_from") or self._moved_from(state)
            if moved:
                alert.details["moved_from"] = moved
                alert.summary += f"; traffic moved from {', '.join(moved)} to {state.key['model']}"
            emitted.add(state)
            self.counters.alerts += 1
            self._alerts.append(alert)

    def _rising_together(self, fresh: dict[KeyState, Alert]) -> dict[KeyState, list[str]]:
        """Model keys opening an incident in this step together with two or more of their streams
        (not counting streams whose own alert is a model swap), each with those streams' services.
        A model with another stream already announcing an incident is not one: it stays silent, so
        its new streams speak for themselves."""
        out: dict[KeyState, list[str]] = {}
        for state in fresh:
            if self._parent_id(state.key) is not None or state.lifecycle.incident is None:
                continue
            children = self._related(state)
            if any(c not in fresh and c.lifecycle.incident is not None and not c.lifecycle.incident.silent
                   for c in children):
                continue
            streams = sorted(c.key.get("service", c.name) for c in children
                             if c in fresh and c.lifecycle.incident is not None
                             and not fresh[c].details.get("moved_from"))
            if len(streams) >= 2:
                out[state] = streams
        return out

    def _moved_from(self, state: KeyState) -> list[str]:
        """Models whose traffic fell while ``state``'s rose, for the same service (a model swap).

        For a ``model x service`` key: the same service's keys on other models whose last bucket
        fell below half its expectation, or whose share of the service's requests was far below its
        band in one of the last ``MOVED_LOOKBACK`` buckets (``ModelShareCusum.away``: a stream of
        two requests a minute that lost four in five is mostly empty minutes, which do not close,
        and keeps one now and then, half of what it expected). For a model key: the same, for each
        of its rising streams.
        """
        if "model" not in state.key:
            return []
        rising = [state] if self._parent_id(state.key) is not None else [
            c for c in self._children.get((0, tuple(state.key.values())), [])
            if c.last is not None and c.last.cost > 1.5 * c.last.expected]
        out: list[str] = []
        for r in rising:
            family = self._families.index(tuple(r.key))
            for sib in self._by_rest.get(_rest(family, r.key), []):
                last = sib.last
                if sib is r or last is None or sib.key["model"] in out:
                    continue
                now = r.last.start if r.last else last.start
                mix = getattr(sib.detector, "price_mix", None)
                if ((last.start == now and last.expected > 0 and last.cost < 0.5 * last.expected)
                        or (mix is not None and mix.away and now - last.start <= MOVED_LOOKBACK * self._size)):
                    out.append(sib.key["model"])
        return out

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
        dumps, dumps_window = state_codec.dumps, state_codec.dumps_window
        windows = [(s.name, dumps_window(s.key, *s.window_state())) for s in self._dirty_windows]
        models = [(s.name, dumps((s.key, s.model_state()))) for s in self._dirty_models]
        self._dirty_windows.clear()
        self._dirty_models.clear()
        return windows, models

    def meta(self) -> dict[str, Any]:
        return {"max_ts": self.max_ts, "closed_until": self.closed_until,
                "budget_sums": [[b, m, c] for (b, m), c in self.budget_partials.sums.items()]}

    def restore(self, meta: dict[str, Any] | None, windows: Iterable[bytes], models: Iterable[bytes]) -> None:
        """Rebuild state from snapshots written by :meth:`drain_dirty` and :meth:`meta`.

        A snapshot that does not decode (pickle from an older version, garbage, a class not on the
        allow list of :mod:`streams.core.state_codec`) is skipped, logged and counted: that key
        starts fresh."""
        if meta:
            self.max_ts, self.closed_until = meta["max_ts"], meta["closed_until"]
            self.budget_partials.sums = {(b, m): c for b, m, c in meta.get("budget_sums", [])}
        for blob in models:
            found = self._snapshot(blob, "model")
            if found is not None:
                state = self._state_for(found[0])
                state.set_model_state(found[1])
                self._adopt_price_mix(state, self._families.index(tuple(state.key)))
                self._track(state)
        for blob in windows:
            found = self._snapshot(blob, "window")
            if found is None:
                continue
            key, window_state = found
            state = self._state_for(key)
            state.set_window_state(window_state)
            for start in state.open:
                self._open_index.setdefault(start, set()).add(state)

    def _snapshot(self, blob: bytes, what: str) -> tuple[dict[str, str], tuple] | None:
        """``(key, state)`` of one snapshot, or None when it does not decode or does not fit."""
        found = state_codec.load_or_skip(blob, what)
        if found is None:
            return None
        if (type(found) is not tuple or len(found) != 2 or type(found[0]) is not dict or type(found[1]) is not tuple
                or len(found[1]) != (5 if what == "window" else 7) or tuple(found[0]) not in self._families):
            state_codec.SKIPPED[what] += 1
            log.warning("skipped a %s snapshot of an unexpected shape; that key starts fresh", what)
            return None
        return found

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


def _rest(family_index: int, named: dict[str, str]) -> tuple:
    return (family_index, tuple(v for d, v in named.items() if d != "model"))


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
