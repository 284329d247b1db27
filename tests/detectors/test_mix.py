"""The per-request band of :mod:`detectors.mix`: what one request costs, judged bucket by bucket."""

from __future__ import annotations

import random

from detectors.mix import CostPerRequestCusum


def _bucket(rng: random.Random, requests: int) -> float:
    """The spend of ``requests`` requests whose sizes are log-normal (sigma 0.9, as real prompts)."""
    return sum(0.001 * rng.lognormvariate(0.0, 0.9) for _ in range(requests))


def _feed(cusum: CostPerRequestCusum, rng: random.Random, requests: int, buckets: int,
          factor: float = 1.0) -> tuple[float, float]:
    """Assess and learn ``buckets`` buckets of ``requests`` requests at ``factor`` x their normal
    size; (the highest CUSUM seen, the last ratio)."""
    peak, ratio = 0.0, 1.0
    for _ in range(buckets):
        cost = factor * _bucket(rng, requests)
        s, ratio, excess = cusum.assess(requests, cost)
        cusum.learn(requests, cost, s, excess)
        peak = max(peak, s)
    return peak, ratio


def test_a_busy_morning_after_a_sparse_night_is_not_a_rise_in_cost_per_request() -> None:
    """The log of a mean of few heavy-tailed sizes sits below the log of their expectation: a normal
    learned on 1-2 requests a minute must not read the same sizes at 40 a minute as 1.3x."""
    rng = random.Random(5)
    cusum = CostPerRequestCusum()
    for _ in range(600):  # ten hours of night
        _feed(cusum, rng, rng.choice((1, 1, 2)), 1)
    peak, _ = _feed(cusum, rng, 40, 180)
    assert peak < cusum.h, peak


def test_requests_twice_the_normal_size_raise_the_cusum_within_minutes() -> None:
    rng = random.Random(6)
    cusum = CostPerRequestCusum()
    _feed(cusum, rng, 20, 600)
    for minute in range(1, 31):
        s, ratio = _feed(cusum, rng, 20, 1, 2.0)
        if s >= cusum.h:
            break
    assert s >= cusum.h and minute <= 20 and ratio > 1.5, (minute, s, ratio)


def test_a_sparse_keys_evidence_drains_within_hours_after_a_bloat_ends() -> None:
    """At one request a minute the likelihood step of a normal bucket is tiny: without a floor on the
    drain, evidence capped at 2 h lingered half a day and held the incident open over the next one."""
    rng = random.Random(7)
    cusum = CostPerRequestCusum()
    _feed(cusum, rng, 1, 600)
    _feed(cusum, rng, 1, 120, 5.0)  # two hours of 5x prompts
    assert cusum.s >= cusum.h
    _feed(cusum, rng, 1, 240)
    assert cusum.s <= 0.1 * cusum.h, cusum.s


def _sparse(cusum: CostPerRequestCusum, rng: random.Random, buckets: int, factor: float = 1.0,
            every: int = 2) -> float:
    """Assess and learn ``buckets`` buckets of which one in ``every`` has a request (``factor`` x
    its normal size, a fifth of a cent); the largest extra spend of a run seen."""
    most = 0.0
    for k in range(buckets):
        requests = 1 if k % every == 0 else 0
        cost = factor * 2.0 * _bucket(rng, requests)
        s, _, excess = cusum.assess(requests, cost)
        cusum.learn(requests, cost, s, excess)
        most = max(most, excess)
    return most


def test_a_sparse_streams_rise_adds_up_across_its_empty_minutes() -> None:
    """A request every other minute at 3x its cost: the run's extra spend passes $0.05 within an
    hour (each empty minute ending the run, it never passed what one request adds, under a cent)."""
    rng = random.Random(5)
    cusum = CostPerRequestCusum()
    _sparse(cusum, rng, 400)
    assert _sparse(cusum, rng, 60, factor=3.0) >= 0.05


def test_a_long_silence_ends_the_run() -> None:
    """``max_gap`` empty minutes in a row: what the run cost before is not carried into the next."""
    rng = random.Random(5)
    cusum = CostPerRequestCusum()
    _sparse(cusum, rng, 400)
    _sparse(cusum, rng, 21, factor=3.0)  # ending on a request
    assert cusum.excess > 0.0 and cusum.gap == 0
    carried = cusum.excess
    for _ in range(cusum.max_gap):
        s, _, excess = cusum.assess(0, 0.0)
        assert excess == carried  # a shorter silence carries it
        cusum.learn(0, 0.0, s, excess)
    s, _, excess = cusum.assess(0, 0.0)
    assert excess == 0.0 and s == cusum.s  # the CUSUM stays
