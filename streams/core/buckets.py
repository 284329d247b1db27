"""Per-key, per-minute cost buckets and the key state that owns them (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass, field

from alerts.lifecycle import Lifecycle
from detectors.base import Detector, Verdict


@dataclass(slots=True)
class Bucket:
    """Aggregates of one key over one event-time bucket ``[start, start + size)``."""

    start: float
    cost: float = 0.0
    requests: int = 0
    events: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    unpriced: int = 0
    #: 64-bit digests of the event ids in this bucket: the dedup horizon.
    ids: set[int] = field(default_factory=set)

    def features(self) -> dict[str, float]:
        """The plain-data view detectors see."""
        return {
            "t": self.start,
            "cost": self.cost,
            "requests": float(self.requests),
            "input_tokens": float(self.input_tokens),
            "output_tokens": float(self.output_tokens),
            "cached_input_tokens": float(self.cached_input_tokens),
        }


@dataclass(slots=True)
class Closed:
    """The last closed bucket of a key, as shown on the API."""

    start: float
    cost: float
    expected: float
    score: float


class KeyState:
    """Everything spendsentry knows about one key (e.g. ``model=gpt-4o``).

    Split in two parts with different write rates: the *window* part (open buckets and
    running totals) changes with every event and is snapshotted once per batch; the *model*
    part (detector, incident, last closed bucket) changes only when a bucket closes.
    """

    __slots__ = (
        "name", "key", "open", "total_cost", "total_events", "unpriced", "late",
        "detector", "lifecycle", "last_closed", "last", "closed", "fast_floor", "fast_rate",
    )

    def __init__(self, name: str, key: dict[str, str], detector: Detector, lifecycle: Lifecycle) -> None:
        self.name = name
        self.key = key
        self.open: dict[float, Bucket] = {}
        self.total_cost = 0.0
        self.total_events = 0
        self.unpriced = 0
        self.late = 0
        self.detector = detector
        self.lifecycle = lifecycle
        self.last_closed: float | None = None
        self.last: Closed | None = None
        self.closed = 0
        #: in-bucket fast path thresholds (see Engine._fast_check); off until the key is warm
        self.fast_floor = float("inf")
        self.fast_rate = float("inf")

    def window_state(self) -> tuple:
        return (self.open, self.total_cost, self.total_events, self.unpriced, self.late)

    def set_window_state(self, state: tuple) -> None:
        self.open, self.total_cost, self.total_events, self.unpriced, self.late = state

    def model_state(self) -> tuple:
        return (self.detector, self.lifecycle, self.last_closed, self.last, self.closed, self.fast_floor, self.fast_rate)

    def set_model_state(self, state: tuple) -> None:
        (self.detector, self.lifecycle, self.last_closed, self.last, self.closed,
         self.fast_floor, self.fast_rate) = state

    def judge(self, bucket: Bucket) -> Verdict:
        """Score then learn one closed bucket."""
        x = bucket.features()
        verdict = self.detector.score_one(x)
        self.detector.learn_one(x)
        self.last_closed = bucket.start
        self.closed += 1
        self.last = Closed(bucket.start, bucket.cost, verdict.expected, verdict.score)
        return verdict
