"""Labelled synthetic multi-model LLM traffic with injected spend anomalies (deterministic per seed).

Traffic: six models (busy to sparse), a daily shape (trough 03:00 UTC, peak 15:00), a weekly shape
(weekends ~0.6x, smoothed over 4 h), day-to-day and hour-to-hour level noise, Poisson arrivals,
heavy-tailed (log-normal) prompt and completion sizes, and two benign nightly batch jobs that run
every day at the same time. Anomalies, one kind at a time per model, injected after a warm-up:

* ``burst5`` / ``burst10`` / ``burst30``: request rate x5 / x10 / x30 for 10-30 min (agent loop,
  retry storm);
* ``prompt_bloat``: input tokens per request x3 with a flat request rate, 1-4 h;
* ``cache_collapse``: prompt-cache hits fall to zero with a flat request rate, 1-4 h;
* ``model_switch``: a service's traffic moves from a cheap model to a pricier one, 1-4 h (the
  pricier model's key is the one that must alert);
* ``ramp``: request rate rising linearly x1 -> x5 over 2 h, then back.

To keep the suite fast, the producer batches: one event per model per 10 s carrying that slice's
summed tokens and ``request_count`` (a documented producer pattern). Per-minute buckets, and so
everything the detectors see, are the same as with one event per call.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

DAY = 86400.0
#: a Monday 00:00 UTC (2026-11-23)
T0 = 1_795_392_000.0
SLICE = 10.0


@dataclass(frozen=True, slots=True)
class Model:
    provider: str
    model: str
    rate_per_s: float
    input_tokens: float
    output_tokens: float
    cached_share: float
    service: str


MODELS: tuple[Model, ...] = (
    Model("openai", "gpt-4o", 3.0, 1200, 300, 0.3, "support-bot"),
    Model("openai", "gpt-4o-mini", 5.0, 800, 200, 0.2, "search"),
    Model("anthropic", "claude-sonnet-4-5", 1.5, 6000, 500, 0.8, "code-review"),
    Model("google", "gemini-2.5-flash", 2.0, 1500, 250, 0.0, "summarizer"),
    Model("anthropic", "claude-haiku-4-5", 0.3, 1000, 200, 0.0, "classifier"),
    Model("openai", "o3-mini", 0.02, 3000, 800, 0.0, "research"),  # sparse: most minutes empty
)


@dataclass(frozen=True, slots=True)
class BatchJob:
    """A benign job every night: ``model`` gets ``factor`` x its rate from ``hour:minute`` for ``minutes``."""

    model: str
    hour: int
    minute: int
    minutes: int
    factor: float


BATCH_JOBS: tuple[BatchJob, ...] = (
    BatchJob("gemini-2.5-flash", 2, 0, 20, 8.0),
    BatchJob("gpt-4o-mini", 23, 30, 15, 5.0),
)


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    model: str  # the key that must alert
    start: float
    end: float
    source: str = ""  # model_switch: the model the traffic left

    def as_dict(self) -> dict:
        return asdict(self)


KINDS = ("burst5", "burst10", "burst30", "prompt_bloat", "cache_collapse", "model_switch", "ramp")
BIG = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5", "gemini-2.5-flash")
ELIGIBLE = {
    "burst5": BIG, "burst10": BIG, "burst30": BIG + ("claude-haiku-4-5",),
    "prompt_bloat": ("gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"),
    "cache_collapse": ("claude-sonnet-4-5",),
    "model_switch": ("gpt-4o", "claude-sonnet-4-5"),
    "ramp": BIG,
}
SWITCH_FROM = {"gpt-4o": "gpt-4o-mini", "claude-sonnet-4-5": "gemini-2.5-flash"}


def daily(t: np.ndarray) -> np.ndarray:
    return 1.0 + 0.5 * np.sin(2 * np.pi * ((t / DAY) % 1.0 - 0.375))


def weekly(t: np.ndarray) -> np.ndarray:
    """1.0 on weekdays, 0.6 on Saturday/Sunday (UTC), with 4 h smooth transitions."""
    days = (t - T0) / DAY  # T0 is a Monday
    dow = days % 7.0
    ramp = 4.0 / 24.0
    down = np.clip((dow - 5.0) / ramp, 0.0, 1.0)  # Saturday 00:00 -> 04:00
    up = np.clip((dow - (7.0 - ramp)) / ramp, 0.0, 1.0)  # Sunday 20:00 -> Monday 00:00
    weekend = np.where(dow >= 5.0, down * (1.0 - up), 0.0)
    return 1.0 - 0.4 * weekend


@dataclass(slots=True)
class Scenario:
    seed: int = 1
    days: int = 22
    warmup_days: int = 8
    anomalies_per_day: int = 3
    start: float = T0

    def schedule(self) -> list[Anomaly]:
        """Anomalies at random times after the warm-up; per model at most one at a time, >= 3 h apart."""
        rng = np.random.default_rng(self.seed * 7919 + 1)
        kinds = list(KINDS) * math.ceil((self.days - self.warmup_days) * self.anomalies_per_day / len(KINDS))
        rng.shuffle(kinds)
        out: list[Anomaly] = []
        busy: dict[str, list[tuple[float, float]]] = {}
        t_lo = self.start + self.warmup_days * DAY
        t_hi = self.start + self.days * DAY - 6 * 3600
        for kind in kinds[: (self.days - self.warmup_days) * self.anomalies_per_day]:
            for _ in range(200):
                model = str(rng.choice(ELIGIBLE[kind]))
                start = float(rng.uniform(t_lo, t_hi))
                start -= start % SLICE
                if kind.startswith("burst"):
                    dur = float(rng.uniform(10, 30)) * 60
                elif kind == "ramp":
                    dur = 2 * 3600.0
                else:
                    dur = float(rng.uniform(1, 4)) * 3600
                dur -= dur % SLICE
                touched = [model] + ([SWITCH_FROM[model]] if kind == "model_switch" else [])
                if all(e + 3 * 3600 < start or start + dur + 3 * 3600 < s
                       for m in touched for s, e in busy.get(m, [])):
                    break
            else:
                continue
            for m in touched:
                busy.setdefault(m, []).append((start, start + dur))
            out.append(Anomaly(kind, model, start, start + dur, SWITCH_FROM.get(model, "") if kind == "model_switch" else ""))
        out.sort(key=lambda a: a.start)
        return out

    @property
    def eval_start(self) -> float:
        return self.start + self.warmup_days * DAY

    @property
    def end(self) -> float:
        return self.start + self.days * DAY

    def events(self, anomalies: list[Anomaly] | None = None) -> Iterator[dict]:
        """Every (batched) event in time order, one day at a time."""
        anomalies = self.schedule() if anomalies is None else anomalies
        rng = np.random.default_rng(self.seed)
        n = 0
        per_day = int(DAY / SLICE)
        for day in range(self.days):
            t = self.start + day * DAY + np.arange(per_day) * SLICE
            day_level = float(np.exp(rng.normal(0.0, 0.05)))
            hourly = np.exp(np.repeat(rng.normal(0.0, 0.04, 24), per_day // 24))
            base_shape = daily(t) * weekly(t) * day_level * hourly
            columns = []
            for m in MODELS:
                rate = m.rate_per_s * base_shape
                in_mult = np.ones(per_day)
                cached = np.full(per_day, m.cached_share)
                out_tokens_med = np.full(per_day, m.output_tokens)
                in_med = np.full(per_day, m.input_tokens)
                tod = (t % DAY)
                for job in BATCH_JOBS:
                    if job.model == m.model:
                        s = job.hour * 3600 + job.minute * 60
                        rate = np.where((tod >= s) & (tod < s + job.minutes * 60), rate * job.factor, rate)
                extra_rate = np.zeros(per_day)
                for a in anomalies:
                    mask = (t >= a.start) & (t < a.end)
                    if not mask.any():
                        continue
                    if a.model == m.model:
                        if a.kind.startswith("burst"):
                            rate = np.where(mask, rate * float(a.kind[5:]), rate)
                        elif a.kind == "ramp":
                            rate = np.where(mask, rate * (1.0 + 4.0 * (t - a.start) / (a.end - a.start)), rate)
                        elif a.kind == "prompt_bloat":
                            in_mult = np.where(mask, 3.0, in_mult)
                        elif a.kind == "cache_collapse":
                            cached = np.where(mask, 0.0, cached)
                        elif a.kind == "model_switch":
                            src = next(x for x in MODELS if x.model == a.source)
                            extra_rate = np.where(mask, src.rate_per_s * base_shape, extra_rate)
                    if a.kind == "model_switch" and a.source == m.model:
                        rate = np.where(mask, 0.0, rate)
                columns.append(self._slices(rng, m, t, rate, in_med * in_mult, out_tokens_med, cached))
                if extra_rate.any():
                    src = next(x for x in MODELS if x.model == SWITCH_FROM[m.model])
                    columns.append(self._slices(rng, m, t, extra_rate, np.full(per_day, src.input_tokens),
                                                np.full(per_day, src.output_tokens), np.full(per_day, src.cached_share),
                                                service=src.service))
            rows = []
            for m, service, counts, tin, tout, tcached in columns:
                idx = np.nonzero(counts)[0]
                for i in idx:
                    rows.append((float(t[i]), m, service, int(counts[i]), int(tin[i]), int(tout[i]), int(tcached[i])))
            rows.sort(key=lambda r: (r[0], r[1].model, r[2]))
            for ts, m, service, count, tin, tout, tcached in rows:
                n += 1
                yield {
                    "event_id": f"b{self.seed}-{n}", "timestamp": ts + 5.0, "provider": m.provider, "model": m.model,
                    "input_tokens": tin, "cached_input_tokens": tcached, "output_tokens": tout,
                    "request_count": count, "service": service, "environment": "prod",
                }

    @staticmethod
    def _slices(rng, m: Model, t, rate, in_med, out_med, cached, service: str | None = None):
        counts = rng.poisson(rate * SLICE)
        total = int(counts.sum())
        owner = np.repeat(np.arange(len(t)), counts)
        ins = rng.lognormal(0.0, 0.7, total) * in_med[owner]
        outs = rng.lognormal(0.0, 0.6, total) * out_med[owner]
        cached_tokens = np.floor(ins * cached[owner])
        tin = np.bincount(owner, weights=np.floor(ins) + 1, minlength=len(t))
        tout = np.bincount(owner, weights=np.floor(outs) + 1, minlength=len(t))
        tc = np.bincount(owner, weights=cached_tokens, minlength=len(t))
        return m, service or m.service, counts, tin, tout, tc
