"""The request-count path (``detectors/counts.py``) in the seasonal detector: a runaway loop on a
sparse stream pages on its request count; a micro-burst or a busy hour does not."""

from __future__ import annotations

import random

from detectors.counts import RequestRateCusum
from detectors.seasonal import SeasonalSpendDetector
from streams.core import state_codec
from tests.detectors.test_behaviour import feed
from tests.detectors.test_seasonal_counts import _poisson

T0 = 1_795_392_000.0  # a Monday 00:00 UTC
START = 2 * 1440 + 14 * 60  # Wednesday 14:00, after two calm days


def bucket(i: int, req: float, price: float = 0.001) -> dict:
    """One minute of a sparse key: a tenth of a cent per request unless ``price`` says otherwise."""
    return {"t": T0 + 60 * i, "cost": price * req, "requests": req, "input_tokens": 500.0 * req,
            "output_tokens": 100.0 * req, "cached_input_tokens": 0.0}


def run(rate_at, minutes: int, seed: int = 31) -> tuple[SeasonalSpendDetector, list]:
    """Two calm days at 0.3 requests a minute, then ``minutes`` at ``rate_at(minute)``."""
    rng = random.Random(seed)
    det = SeasonalSpendDetector()
    feed(det, [bucket(i, _poisson(rng, 0.3)) for i in range(START)])
    return det, feed(det, [bucket(START + m, _poisson(rng, rate_at(m))) for m in range(minutes)])


def test_a_loop_on_a_sparse_stream_pages_on_its_request_count() -> None:
    """x10 for 30 minutes: 3 requests a minute, $0.003 a minute above normal, which no per-minute
    dollar floor or spend spread sees; 90 requests where 9 were expected is no chance. It pages
    once the run has cost ``min_excess_usd`` ($0.05: about 19 minutes here)."""
    _, verdicts = run(lambda m: 3.0, 30)
    paged = [m for m, v in enumerate(verdicts) if v.anomalous]
    assert paged and paged[0] <= 20, paged
    assert verdicts[paged[0]].reason.startswith("request rate")
    assert "requests" in verdicts[paged[0]].driver


def test_a_micro_burst_or_a_busy_hour_on_a_sparse_stream_does_not_page() -> None:
    """2.5x for 5 minutes (a benign micro-burst) and 2x for an hour: certain, but no loop."""
    _, burst = run(lambda m: 0.75 if m < 5 else 0.3, 60)
    _, busy = run(lambda m: 0.6, 60, seed=32)
    assert not any(v.anomalous for v in burst + busy)


def test_a_short_session_on_a_sparse_stream_does_not_page() -> None:
    """21 requests in three minutes (7 a minute, 20x) on a key of 0.3, a cent each: more than chance,
    $0.20 extra, but three buckets; the capped step makes a rise last five before it can fire."""
    rng = random.Random(34)
    det = SeasonalSpendDetector()
    feed(det, [bucket(i, _poisson(rng, 0.3), price=0.01) for i in range(START)])
    verdicts = feed(det, [bucket(START + m, 7.0 if m < 3 else _poisson(rng, 0.3), price=0.01) for m in range(30)])
    assert not any(v.anomalous for v in verdicts), [v.reason for v in verdicts if v.anomalous]


def test_the_count_path_round_trips_and_state_written_before_it_restores() -> None:
    det, _ = run(lambda m: 3.0, 10)
    assert det._rate.s > 0.0
    clone = state_codec.loads(state_codec.dumps(det))
    assert vars(clone._rate) == vars(det._rate)
    del clone.__dict__["_rate"]  # as written before the count path existed
    verdict = clone.score_one(bucket(START + 10, 3.0))
    clone.learn_one(bucket(START + 10, 3.0))
    assert isinstance(clone._rate, RequestRateCusum) and verdict.expected > 0


def test_rate_cusum_needs_a_run_of_buckets_and_the_ratio() -> None:
    cusum = RequestRateCusum()
    s, n, lam, excess, start = cusum.assess(100.0, 50.0, 1.0, 1.0, 0.5)
    assert s == cusum.h / cusum.min_buckets and start == 100.0  # one bucket is capped
    assert not cusum.fired(2 * cusum.h, 20.0, 10.0, 1.0, 0.05)  # 2x: certain, but no loop
    assert cusum.fired(cusum.h, 40.0, 10.0, 1.0, 0.05)


def test_a_sparse_keys_nightly_job_pages_on_no_night_after_its_first() -> None:
    """A job at 20x for 40 minutes every night at 02:00 on a key of 0.3 requests a minute shows only
    as a run of the request count (its minutes are not spikes one by one); the run is remembered
    like a spike, so the job does not page on the nights after the one it was first seen on."""
    rng = random.Random(33)
    det = SeasonalSpendDetector()
    paged = []
    for i in range(4 * 1440):
        m = i % 1440
        verdict = feed(det, [bucket(i, _poisson(rng, 6.0 if 120 <= m < 160 else 0.3))])[0]
        if verdict.anomalous:
            paged.append((i // 1440, m))
    assert not [p for p in paged if p[0] >= 1], paged
