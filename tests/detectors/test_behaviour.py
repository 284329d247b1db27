"""What each spend detector must catch, and what it must not page on (per-minute buckets, pure)."""

from __future__ import annotations

import math
import random

import pytest

from detectors.ewma import EWSpendDetector
from detectors.holtwinters import HoltWintersSpendDetector
from detectors.seasonal import SeasonalSpendDetector

T0 = 1_795_392_000.0  # a Monday 00:00 UTC
SPEND = [EWSpendDetector, HoltWintersSpendDetector, SeasonalSpendDetector]


def minute(i: int, rng: random.Random, *, rate: float = 60.0, tokens: float = 1000.0, cached: float = 0.3,
           price: float = 5e-6) -> dict:
    """One bucket: Poisson-ish requests with a daily shape; cost from tokens and cache share."""
    t = T0 + 60 * i
    shape = 1.0 + 0.5 * math.sin(2 * math.pi * ((t / 86400) % 1 - 0.375))
    req = max(0.0, round(rng.gauss(rate * shape, math.sqrt(rate * shape))))
    tin = req * tokens * rng.uniform(0.9, 1.1)
    cost = tin * (1 - cached) * price + tin * cached * price * 0.1 + req * 200 * price * 4
    return {"t": t, "cost": cost, "requests": req, "input_tokens": tin, "output_tokens": req * 200,
            "cached_input_tokens": tin * cached}


def feed(det, xs) -> list:
    out = []
    for x in xs:
        out.append(det.score_one(x))
        det.learn_one(x)
    return out


@pytest.mark.parametrize("cls", SPEND, ids=lambda c: c.__name__)
def test_catches_a_10x_burst(cls) -> None:
    rng = random.Random(1)
    det = cls()
    quiet = feed(det, [minute(i, rng) for i in range(600)])
    burst = feed(det, [minute(i, rng, rate=600.0) for i in range(600, 605)])
    assert not any(v.anomalous for v in quiet[60:])
    assert burst[0].anomalous and burst[0].reason and burst[0].expected > 0


def test_quiet_on_a_nightly_batch_job_after_the_first_night() -> None:
    rng = random.Random(2)
    det = SeasonalSpendDetector()
    verdicts = []
    for i in range(4 * 1440):
        batch = 120 <= i % 1440 < 135  # 02:00-02:15 every night, 6x the rate
        verdicts.append((i, det.score_one(x := minute(i, rng, rate=360.0 if batch else 60.0))))
        det.learn_one(x)
    nights = {i // 1440 for i, v in verdicts if v.anomalous}
    assert nights <= {0}, nights  # the first night may page (it is new); later nights must not


def _drift(kind: str) -> list:
    rng = random.Random(3)
    det = SeasonalSpendDetector()
    feed(det, [minute(i, rng) for i in range(2 * 1440)])
    start = 2 * 1440 + 14 * 60
    feed(det, [minute(i, rng) for i in range(2 * 1440, start)])
    xs = []
    for k in range(180):
        i = start + k
        if kind == "prompt_bloat":
            xs.append(minute(i, rng, tokens=3000.0))
        elif kind == "cache_collapse":
            xs.append(minute(i, rng, cached=0.0, price=5e-6 * 1.0) | {})
        else:  # ramp x1 -> x5 over 2 h
            xs.append(minute(i, rng, rate=60.0 * (1 + 4 * min(k, 120) / 120)))
    return feed(det, xs)


def test_catches_a_cost_per_request_jump_with_flat_requests() -> None:
    verdicts = _drift("prompt_bloat")
    first = next(k for k, v in enumerate(verdicts) if v.anomalous)
    assert first <= 30
    assert "tokens per request" in verdicts[first].driver


def test_catches_a_slow_ramp() -> None:
    verdicts = _drift("ramp")
    first = next(k for k, v in enumerate(verdicts) if v.anomalous)
    assert first <= 60
    assert "requests" in verdicts[first].driver


def test_burst_driver_names_requests() -> None:
    rng = random.Random(4)
    det = SeasonalSpendDetector()
    feed(det, [minute(i, rng) for i in range(300)])
    v = det.score_one(minute(300, rng, rate=600.0))
    assert v.anomalous and v.driver.startswith("requests")


@pytest.mark.parametrize("cls", [EWSpendDetector, SeasonalSpendDetector], ids=lambda c: c.__name__)
def test_rebase_makes_the_new_level_normal(cls) -> None:
    """Operator feedback "expected": a level that alerted stops alerting once rebased."""
    rng = random.Random(3)
    det = cls()
    feed(det, [minute(i, rng) for i in range(600)])
    shifted = [minute(i, rng, rate=300.0) for i in range(600, 640)]
    assert feed(det, shifted[:1])[0].anomalous
    det.rebase(shifted[1])
    assert not any(v.anomalous for v in feed(det, shifted[2:]))


@pytest.mark.parametrize("cls", SPEND, ids=lambda c: c.__name__)
def test_a_partial_first_bucket_does_not_blind_the_key_for_hours(cls) -> None:
    """A key's first bucket holds only the seconds after it appeared (a worker started mid-minute,
    a new model): a sliver of a normal minute. Its residual against the first level is 30x; the
    seasonal detector learned it as noise, its spread stayed ~3.6 for hours, and the demo's 10x
    burst three hours later scored 0.35 and never alerted."""
    rng = random.Random(3)
    first = minute(0, rng)
    sliver = {k: (v if k == "t" else v * 0.02) for k, v in first.items()}
    det = cls()
    verdicts = feed(det, [sliver] + [minute(i, rng) for i in range(1, 181)])
    assert not any(v.anomalous for v in verdicts[40:])
    burst = {k: (v if k == "t" else v * 10) for k, v in minute(181, rng).items()}
    assert det.score_one(burst).anomalous
