"""A prompt bloat or slow leak on a cheap stream: a request costs 2-3x normal for hours, yet no single
minute is $0.05 above normal. The per-request paths weigh what the rise has cost so far."""

from __future__ import annotations

import random

from detectors.seasonal import SeasonalSpendDetector
from streams.core.state_codec import dumps, loads

T0 = 1_795_392_000.0  # a Monday 00:00 UTC
WARM = 2 * 1440  # two normal days first


def bucket(minute: int, rng: random.Random, in_mult: float, out_mult: float = 1.0) -> dict[str, float]:
    """About 20 requests a minute of a cheap model (input $0.06/M, output $0.24/M): ~$0.004 a minute."""
    requests = 20 + rng.randint(-5, 5)
    tin = 4500.0 * requests * rng.uniform(0.8, 1.2) * in_mult
    tout = 300.0 * requests * rng.uniform(0.8, 1.2) * out_mult
    return {"t": T0 + 60.0 * minute, "cost": (tin * 0.06 + tout * 0.24) / 1e6, "requests": float(requests),
            "input_tokens": tin, "output_tokens": tout, "cached_input_tokens": 0.0}


def first_alert(mults) -> int | None:
    """Minutes from the anomaly's start to the first alert (None: none)."""
    rng = random.Random(11)
    det = SeasonalSpendDetector()
    for minute in range(WARM + 360):
        x = bucket(minute, rng, *mults(minute - WARM))
        v = det.score_one(x)
        det.learn_one(x)
        if minute >= WARM and v.anomalous:
            return minute - WARM
    return None


def test_a_cheap_streams_prompt_bloat_x3_alerts_within_20_minutes() -> None:
    fired = first_alert(lambda m: (3.0, 1.0) if 0 <= m < 60 else (1.0, 1.0))
    assert fired is not None and fired <= 20, fired


def test_a_cheap_streams_slow_leak_alerts_before_the_ramp_ends() -> None:
    def ramp(m: int) -> tuple[float, float]:
        f = 1.0 + 1.5 * m / 360 if m >= 0 else 1.0
        return f, f
    fired = first_alert(ramp)
    assert fired is not None and fired < 360, fired


def test_a_cheap_steady_stream_does_not_alert() -> None:
    assert first_alert(lambda m: (1.0, 1.0)) is None


def test_state_written_before_the_run_excess_restores_and_round_trips() -> None:
    rng = random.Random(3)
    det = SeasonalSpendDetector()
    for minute in range(120):
        x = bucket(minute, rng, 1.0)
        det.score_one(x)
        det.learn_one(x)
    del det._mix.__dict__["excess"]  # as a detector written before it existed
    old = loads(dumps(det))
    assert old._mix.excess == 0.0
    x = bucket(120, rng, 3.0)
    old.score_one(x)
    old.learn_one(x)
    assert vars(loads(dumps(old))._mix) == vars(old._mix) and "excess" in vars(old._mix)  # the run's excess is kept
