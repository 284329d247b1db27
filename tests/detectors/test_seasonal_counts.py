"""The seasonal detector on bursty sparse keys: count evidence against the key's own overdispersion."""

from __future__ import annotations

import math
import random

from detectors.seasonal import SeasonalSpendDetector
from streams.core import state_codec
from tests.detectors.test_behaviour import feed

T0 = 1_795_392_000.0  # a Monday 00:00 UTC


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method: fine for the small means used here."""
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def bucket(i: int, req: float) -> dict:
    """One minute of a flat-priced key: cost is proportional to the requests (one cent each)."""
    return {"t": T0 + 60 * i, "cost": 0.01 * req, "requests": req, "input_tokens": 500.0 * req,
            "output_tokens": 100.0 * req, "cached_input_tokens": 0.0}


def bursty(i: int, rng: random.Random, mean: float = 3.0, k: float = 1.0) -> dict:
    """Negative-binomial requests (a gamma-mixed Poisson): variance ``mean + mean^2 / k``."""
    return bucket(i, _poisson(rng, rng.gammavariate(k, mean / k)))


def test_bursty_sparse_key_is_judged_against_its_own_overdispersion() -> None:
    """Minutes at 7-12x the mean are ordinary on a key this bursty (variance 4x Poisson): they
    must not page on a Poisson count test, while a real burst of 20x still pages at once."""
    rng = random.Random(11)
    det = SeasonalSpendDetector()
    verdicts = feed(det, [bursty(i, rng) for i in range(3 * 1440)])
    fast = [v.reason for v in verdicts[1440:] if v.anomalous and v.reason.startswith("z=")]
    assert fast == []
    burst = feed(det, [bucket(i, 60.0) for i in range(3 * 1440, 3 * 1440 + 3)])
    assert burst[0].anomalous and burst[0].reason.startswith("z=")


def test_dispersion_survives_a_state_round_trip_and_old_state_is_poisson() -> None:
    """The overdispersion is state (MessagePack round trip); a detector written before it restores as Poisson."""
    rng = random.Random(12)
    det = SeasonalSpendDetector()
    feed(det, [bursty(i, rng) for i in range(1440)])
    clone = state_codec.loads(state_codec.dumps(det))
    assert clone._disp == det._disp > 1.5
    del clone.__dict__["_disp"], clone.__dict__["_disp_n"]  # state written before the dispersion existed
    assert clone._disp == 1.0


def test_one_early_burst_does_not_blind_the_count_test() -> None:
    """The overdispersion was trimmed only after warm-up: one 100x minute among the first buckets
    set it near 40 on a Poisson key for hours, and a 10x burst five hours later did not page."""
    rng = random.Random(3)
    det = SeasonalSpendDetector()
    feed(det, [bucket(i, 2000.0 if i == 12 else _poisson(rng, 20.0)) for i in range(300)])
    assert det._disp < 5.0
    assert feed(det, [bucket(300, 200.0)])[0].anomalous
