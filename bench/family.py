"""A randomized family of labelled LLM-spend scenarios: every seed is a different fleet.

Per seed (all drawn from ``numpy.random.default_rng(seed)``):

* **Fleet**: 8 models from 4 providers (drawn from :data:`CATALOGUE`, each with a cheaper
  sibling for model swaps), 5 teams, 14 service-by-model streams (2 in ``staging``); a busy model
  carries several services, so small streams of busy models exist.
* **Rates** log-uniform over four orders of magnitude: one stream at ~1 request per 5 min, one
  at ~100 requests/s, the rest in between.
* **Profiles** per stream: ``consumer`` (evening peak, busier weekends), ``business`` (09-18 on
  weekdays, quiet nights and weekends), ``flat``, ``batch`` (low base and a nightly job), each in
  a random time zone; a slow log-space wander of about +-30 %; about two benign micro-bursts per
  stream and day (1.5-2.5x the request rate for 1-5 min); a nightly job on a few more streams
  from the first night; heavy-tailed (log-normal) request sizes; per-stream cached share.
* **Holiday**: on half the seeds the Friday or the Monday is a holiday, when business streams run
  as on a weekend (:meth:`Family.holiday`).
* **Anomalies**: 3 of each of :data:`KINDS` after the first (warm-up) day, at random magnitude,
  duration and stream; about a quarter of them recur the next day at the same hour on the same
  stream; see :meth:`Family.schedule`.

The holiday and the recurrences are drawn from their own random streams, so a seed's fleet,
original anomalies and day-to-day traffic are those it had before they were modelled.

The producer batches one event per stream per 10 s (``request_count`` > 1), which leaves every
per-minute bucket unchanged. Tuning and test seeds are disjoint ranges (:data:`TUNING_SEEDS`,
:data:`TEST_SEEDS`): defaults are chosen on the first, the docs report the second.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterator

import numpy as np

DAY = 86400.0
HOUR = 3600.0
SLICE = 10.0
#: a Thursday 00:00 UTC (2026-11-26): the warm-up day, then Friday to Monday
T0 = 1_795_651_200.0
TUNING_SEEDS = range(1, 101)
TEST_SEEDS = range(1001, 1101)

#: per provider, (model, cheaper sibling) pairs; a fleet takes one pair from each provider
CATALOGUE: dict[str, tuple[tuple[str, str], ...]] = {
    "openai": (("gpt-4o", "gpt-4o-mini"), ("gpt-4.1", "gpt-4.1-mini"), ("gpt-5", "gpt-5-mini")),
    "anthropic": (("claude-sonnet-4-5", "claude-haiku-4-5"),),
    "google": (("gemini-2.5-pro", "gemini-2.5-flash"),),
    "bedrock": (("amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"),),
}
PROFILES = ("consumer", "business", "flat", "batch")
KINDS = ("runaway_loop", "retry_storm", "prompt_bloat", "model_swap", "cache_regression", "slow_leak")
BURSTS = ("runaway_loop", "retry_storm")


@dataclass(frozen=True, slots=True)
class Stream:
    provider: str
    model: str
    service: str
    team: str
    environment: str
    rate: float  # mean requests per second
    profile: str
    tz_h: float
    input_tokens: float
    output_tokens: float
    cached_share: float
    job_hour: float  # nightly job start (UTC hour), -1 = none
    job_minutes: float
    job_factor: float


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str
    model: str  # the model whose spend rises
    service: str  # the stream's service; "" when every stream of the model is affected
    start: float
    end: float
    magnitude: float
    source: str = ""  # model_swap: the cheaper model the traffic left
    recurrence: bool = False  # the same anomaly as one a day earlier, at the same hour

    def as_dict(self) -> dict:
        return asdict(self)


def _profile(stream: Stream, t: np.ndarray, holiday: int = -1) -> np.ndarray:
    """The stream's daily and weekly shape; ``holiday`` (a day of the run, -1 none) is a weekend
    day for a business stream, in its own time zone."""
    local = t + stream.tz_h * HOUR
    hour = (local % DAY) / HOUR
    day = np.floor((local - T0) / DAY)
    weekend = (day + 3.0) % 7.0 >= 5.0  # T0 is a Thursday: Monday = 0
    if stream.profile == "consumer":
        shape = 1.0 + 0.6 * np.cos(2 * np.pi * (hour - 20.0) / 24.0)
        return shape * np.where(weekend, 1.15, 1.0)
    if stream.profile == "business":
        office = 1.0 / (1.0 + np.exp(-(hour - 8.5) * 2.0)) / (1.0 + np.exp((hour - 18.0) * 2.0))
        return (0.12 + 1.6 * office) * np.where(weekend | (day == holiday), 0.2, 1.0)
    if stream.profile == "batch":
        return np.full(len(t), 0.5)
    return np.ones(len(t))


def _material(kind: str, stream: Stream, mag: float, dur: float) -> bool:
    """>= 30 extra (bursts) or affected (the rest) requests on ``stream`` even at a 0.3x trough."""
    return stream.rate * (mag - 1.0 if kind in BURSTS else 1.0) * dur * 0.3 >= 30


def _free(busy: dict[str, list[tuple[float, float]]], services: list[str], start: float, end: float) -> bool:
    """No anomaly on any of ``services`` within 3 h of ``[start, end)``."""
    return all(e + 3 * HOUR < start or end + 3 * HOUR < s for svc in services for s, e in busy.get(svc, []))


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, knot_s: float, sigma: float) -> np.ndarray:
    """A smooth random curve (linear between knots every ``knot_s``), log-space, sd ``sigma``."""
    span = t[-1] - t[0]
    knots = rng.normal(0.0, sigma, int(span // knot_s) + 2)
    pos = (t - t[0]) / knot_s
    return np.interp(pos, np.arange(len(knots)), knots)


@dataclass(slots=True)
class Family:
    seed: int
    days: int = 5
    warmup_days: int = 1
    per_kind: int = 3
    recur_p: float = 0.25
    holiday_p: float = 0.5

    # -- the fleet -------------------------------------------------------------------------
    def fleet(self) -> list[Stream]:
        rng = np.random.default_rng(self.seed * 104729 + 7)
        models: list[tuple[str, str, str]] = []  # provider, model, cheaper sibling
        for provider, pairs in CATALOGUE.items():
            pricey, cheap = pairs[int(rng.integers(len(pairs)))]
            models += [(provider, pricey, cheap), (provider, cheap, "")]
        teams = [f"team-{c}" for c in "abcde"]
        streams: list[Stream] = []
        # log-uniform rates over 4 orders; the extremes are always present
        rates = np.exp(rng.uniform(np.log(0.0033), np.log(100.0), 14))
        rates[0], rates[1] = 0.0033, 100.0
        order = rng.permutation(14)
        for i in range(14):
            # every model appears at least once; the busiest models get extra (small) services
            provider, model, _ = models[i] if i < 8 else models[int(rng.integers(8))]
            rate = float(rates[order[i]])
            profile = str(rng.choice(PROFILES))
            has_job = profile == "batch" or rng.random() < 0.2
            streams.append(Stream(
                provider=provider, model=model, service=f"svc-{i:02d}", team=teams[i % 5],
                environment="staging" if i in (3, 11) else "prod", rate=rate, profile=profile,
                tz_h=float(rng.choice([-8.0, -5.0, 0.0, 1.0, 5.5, 9.0])),
                input_tokens=float(np.exp(rng.uniform(np.log(200), np.log(8000)))),
                output_tokens=float(np.exp(rng.uniform(np.log(50), np.log(1500)))),
                cached_share=float(rng.uniform(0.3, 0.85)) if rng.random() < 0.5 else 0.0,
                job_hour=float(rng.uniform(0, 6)) if has_job else -1.0,
                job_minutes=float(rng.uniform(10, 40)), job_factor=float(rng.uniform(3, 8)),
            ))
        return streams

    # -- the anomalies -----------------------------------------------------------------------
    def schedule(self, streams: list[Stream]) -> list[Anomaly]:
        """``per_kind`` anomalies of every kind after the warm-up, at most one at a time per stream
        (3 h apart). An anomaly goes only where it adds (bursts) or touches (the rest) >= 30 requests
        even at a 0.3x trough: on the sparsest streams a runaway loop is a handful of requests,
        nothing to page on. Then some recur the next day (:meth:`_recurrences`)."""
        rng = np.random.default_rng(self.seed * 7919 + 3)
        busy: dict[str, list[tuple[float, float]]] = {}
        out: list[Anomaly] = []
        t_lo, t_hi = T0 + self.warmup_days * DAY, T0 + self.days * DAY - 7 * HOUR
        by_model = {s.model: [x for x in streams if x.model == s.model] for s in streams}
        cheap_of = {m: c for group in CATALOGUE.values() for m, c in group}
        kinds = [k for k in KINDS for _ in range(self.per_kind)]
        for kind in kinds:
            for _ in range(500):
                start = float(rng.uniform(t_lo, t_hi))
                start -= start % SLICE
                stream = streams[int(rng.integers(len(streams)))]
                touched = [stream.service]
                source = service = ""
                if kind == "runaway_loop":
                    mag, dur = float(rng.uniform(5, 20)), float(rng.uniform(10, 60)) * 60
                elif kind == "retry_storm":
                    mag, dur = float(rng.uniform(20, 50)), float(rng.uniform(2, 5)) * 60
                elif kind == "prompt_bloat":
                    mag, dur = float(rng.uniform(3, 6)), float(rng.uniform(1, 3)) * HOUR
                elif kind == "model_swap":
                    mag, dur = float(rng.uniform(0.6, 1.0)), float(rng.uniform(1, 4)) * HOUR
                    pricey = next((m for m, c in cheap_of.items() if c == stream.model and m in by_model), "")
                    if not pricey:
                        continue
                    source = stream.model
                elif kind == "cache_regression":
                    mag, dur = 0.0, float(rng.uniform(2, 6)) * HOUR
                    if stream.cached_share < 0.3:
                        continue
                else:  # slow_leak: every stream of the model
                    mag, dur = 2.5, 6 * HOUR
                    touched = [s.service for s in by_model[stream.model]]
                if not _material(kind, stream, mag, dur):
                    continue
                dur -= dur % SLICE
                if _free(busy, touched, start, start + dur):
                    break
            else:
                continue
            for svc in touched:
                busy.setdefault(svc, []).append((start, start + dur))
            model = pricey if kind == "model_swap" else stream.model
            service = "" if kind == "slow_leak" else stream.service
            out.append(Anomaly(kind, model, service, start, start + dur, round(mag, 3), source))
        out.sort(key=lambda a: a.start)
        out += self._recurrences(streams, out, busy, t_hi)
        out.sort(key=lambda a: a.start)
        return out

    def _recurrences(self, streams: list[Stream], originals: list[Anomaly],
                     busy: dict[str, list[tuple[float, float]]], t_hi: float) -> list[Anomaly]:
        """Each anomaly recurs with probability ``recur_p`` the next day at the same hour, on the same
        stream(s), at a similar magnitude (x0.8-1.25; a swap moves at most every call), where that
        day's slot starts by ``t_hi``, is still material and its streams are free (a runaway loop
        or a retry storm often comes back with the job or the traffic that set it off)."""
        rng = np.random.default_rng(self.seed * 6007 + 5)
        by_service = {s.service: s for s in streams}
        out: list[Anomaly] = []
        for a in originals:
            recur, scale = rng.random() < self.recur_p, float(rng.uniform(0.8, 1.25))
            start, end = a.start + DAY, a.end + DAY
            if not recur or start > t_hi:
                continue
            if a.kind in ("runaway_loop", "retry_storm", "prompt_bloat"):
                mag = a.magnitude * scale
            elif a.kind == "model_swap":
                mag = min(a.magnitude * scale, 1.0)
            else:  # cache regression (to 0) and slow leak (to 2.5x): the same
                mag = a.magnitude
            touched = [a.service] if a.service else [s.service for s in streams if s.model == a.model]
            if a.service and not _material(a.kind, by_service[a.service], mag, end - start):
                continue  # a slow leak (model-wide) keeps the magnitude that was material
            if not _free(busy, touched, start, end):
                continue
            for svc in touched:
                busy.setdefault(svc, []).append((start, end))
            out.append(Anomaly(a.kind, a.model, a.service, start, end, round(mag, 3), a.source, recurrence=True))
        return out

    def holiday(self) -> int:
        """The day of the run (1 = Friday, 4 = Monday) that is a holiday for business streams, or -1:
        one seed in two has one, drawn from its own random stream."""
        rng = np.random.default_rng(self.seed * 15485863 + 11)
        return int(rng.choice([1, 4])) if rng.random() < self.holiday_p else -1

    @property
    def eval_start(self) -> float:
        return T0 + self.warmup_days * DAY

    @property
    def end(self) -> float:
        return T0 + self.days * DAY

    def n_models(self, streams: list[Stream]) -> int:
        return len({s.model for s in streams})

    # -- the events --------------------------------------------------------------------------
    def events(self, streams: list[Stream], anomalies: list[Anomaly]) -> Iterator[dict]:
        """Every (batched) event in time order, one day at a time."""
        rng = np.random.default_rng(self.seed)
        per_day = int(DAY / SLICE)
        t_all = T0 + np.arange(per_day * self.days) * SLICE
        holiday = self.holiday()
        shapes = {s.service: self._rate_curve(rng, s, t_all, holiday) for s in streams}
        n = 0
        for day in range(self.days):
            sl = slice(day * per_day, (day + 1) * per_day)
            t = t_all[sl]
            rows: list[tuple] = []
            for s in streams:
                rate = shapes[s.service][sl].copy()
                in_mult = np.ones(per_day)
                tok_mult = np.ones(per_day)
                cached = np.full(per_day, s.cached_share)
                swaps: list[tuple[str, np.ndarray]] = []
                for a in anomalies:
                    mask = (t >= a.start) & (t < a.end)
                    if not mask.any():
                        continue
                    mine = a.service == s.service or (not a.service and a.model == s.model)
                    if a.kind in BURSTS and mine:
                        rate = np.where(mask, rate * a.magnitude, rate)
                    elif a.kind == "prompt_bloat" and mine:
                        in_mult = np.where(mask, a.magnitude, in_mult)
                    elif a.kind == "cache_regression" and mine:
                        cached = np.where(mask, 0.0, cached)
                    elif a.kind == "slow_leak" and mine:
                        ramp = 1.0 + (a.magnitude - 1.0) * (t - a.start) / (a.end - a.start)
                        tok_mult = np.where(mask, ramp, tok_mult)
                    elif a.kind == "model_swap" and a.service == s.service:
                        moved = np.where(mask, rate * a.magnitude, 0.0)
                        rate = rate - moved
                        swaps.append((a.model, moved))
                rows += self._slices(rng, s, s.model, t, rate, in_mult * tok_mult, tok_mult, cached)
                for model, moved in swaps:
                    rows += self._slices(rng, s, model, t, moved, in_mult, tok_mult, cached)
            rows.sort(key=lambda r: (r[0], r[2], r[3]))
            for ts, provider, model, service, team, env, count, tin, tout, tcached in rows:
                n += 1
                yield {
                    "event_id": f"f{self.seed}-{n}", "timestamp": ts + 5.0, "provider": provider, "model": model,
                    "input_tokens": tin, "cached_input_tokens": tcached, "output_tokens": tout,
                    "request_count": count, "service": service, "team": team, "environment": env,
                }

    def _rate_curve(self, rng: np.random.Generator, s: Stream, t: np.ndarray, holiday: int = -1) -> np.ndarray:
        """Requests per second over the whole run: profile x wander x micro-bursts x nightly job."""
        rate = s.rate * _profile(s, t, holiday) * np.exp(_smooth_noise(rng, t, 4 * HOUR, 0.15)
                                                 + _smooth_noise(rng, t, 600.0, 0.05))
        n_bursts = rng.poisson(2 * self.days)
        for start in rng.uniform(t[0], t[-1], n_bursts):
            mask = (t >= start) & (t < start + rng.uniform(1, 5) * 60)
            rate = np.where(mask, rate * rng.uniform(1.5, 2.5), rate)
        if s.job_hour >= 0:
            tod = (t % DAY) / HOUR
            mask = (tod >= s.job_hour) & (tod < s.job_hour + s.job_minutes / 60)
            rate = np.where(mask, rate + s.rate * s.job_factor, rate)
        return rate

    @staticmethod
    def _slices(rng: np.random.Generator, s: Stream, model: str, t: np.ndarray, rate: np.ndarray,
                in_mult: np.ndarray, out_mult: np.ndarray, cached: np.ndarray) -> list[tuple]:
        """One row per non-empty 10 s slice; request sizes log-normal (exact sums for small slices,
        the central-limit approximation above 30 requests)."""
        counts = rng.poisson(np.maximum(rate, 0.0) * SLICE)
        idx = np.nonzero(counts)[0]
        c = counts[idx].astype(float)
        sig_in, sig_out = 0.9, 0.7
        mean_in, mean_out = np.exp(sig_in ** 2 / 2), np.exp(sig_out ** 2 / 2)
        sd_in, sd_out = mean_in * np.sqrt(np.exp(sig_in ** 2) - 1), mean_out * np.sqrt(np.exp(sig_out ** 2) - 1)
        small = c <= 30
        tin = c * mean_in + np.sqrt(c) * sd_in * rng.normal(size=len(c))
        tout = c * mean_out + np.sqrt(c) * sd_out * rng.normal(size=len(c))
        k = counts[idx][small]
        owner = np.repeat(np.arange(len(k)), k)
        tin[small] = np.bincount(owner, rng.lognormal(0.0, sig_in, len(owner)), minlength=len(k))
        tout[small] = np.bincount(owner, rng.lognormal(0.0, sig_out, len(owner)), minlength=len(k))
        tin = np.maximum(tin, 0.1 * c) * s.input_tokens * in_mult[idx]
        tout = np.maximum(tout, 0.1 * c) * s.output_tokens * out_mult[idx]
        tc = np.floor(tin * cached[idx])
        return [(float(t[i]), s.provider, model, s.service, s.team, s.environment, int(n),
                 int(a) + int(n), int(b) + int(n), int(ct))
                for i, n, a, b, ct in zip(idx, counts[idx], tin, tout, tc)]
