"""The per-request band of :mod:`detectors.mix`: what one request costs, judged bucket by bucket."""

from __future__ import annotations

import random

from detectors.mix import CostPerRequestCusum


def _bucket(rng: random.Random, requests: int) -> float:
    """The spend of ``requests`` requests whose sizes are log-normal (sigma 0.9, as real prompts)."""
    return sum(0.001 * rng.lognormvariate(0.0, 0.9) for _ in range(requests))


def test_a_busy_morning_after_a_sparse_night_is_not_a_rise_in_cost_per_request() -> None:
    """The log of a mean of few heavy-tailed sizes sits below the log of their expectation: a normal
    learned on 1-2 requests a minute must not read the same sizes at 40 a minute as 1.3x."""
    rng = random.Random(5)
    cusum = CostPerRequestCusum()
    for _ in range(600):  # ten hours of night
        n = rng.choice((1, 1, 2))
        cost = _bucket(rng, n)
        s, _, excess = cusum.assess(n, cost)
        cusum.learn(n, cost, s, excess)
    peak = 0.0
    for _ in range(180):
        cost = _bucket(rng, 40)
        s, _, excess = cusum.assess(40, cost)
        cusum.learn(40, cost, s, excess)
        peak = max(peak, s)
    assert peak < cusum.h, peak


def test_requests_twice_the_normal_size_raise_the_cusum_within_minutes() -> None:
    rng = random.Random(6)
    cusum = CostPerRequestCusum()
    for _ in range(600):
        cost = _bucket(rng, 20)
        s, _, excess = cusum.assess(20, cost)
        cusum.learn(20, cost, s, excess)
    for minute in range(1, 31):
        cost = 2.0 * _bucket(rng, 20)
        s, ratio, excess = cusum.assess(20, cost)
        cusum.learn(20, cost, s, excess)
        if s >= cusum.h:
            break
    assert s >= cusum.h and minute <= 20 and ratio > 1.5, (minute, s, ratio)


def test_a_sparse_keys_evidence_drains_within_hours_after_a_bloat_ends() -> None:
    """At one request a minute the likelihood step of a normal bucket is tiny: without a floor on the
    drain, evidence capped at 2 h lingered half a day and held the incident open over the next one."""
    rng = random.Random(7)
    cusum = CostPerRequestCusum()
    for _ in range(600):
        cost = _bucket(rng, 1)
        s, _, excess = cusum.assess(1, cost)
        cusum.learn(1, cost, s, excess)
    for _ in range(120):  # two hours of 5x prompts
        cost = 5.0 * _bucket(rng, 1)
        s, _, excess = cusum.assess(1, cost)
        cusum.learn(1, cost, s, excess)
    assert cusum.s >= cusum.h
    for _ in range(240):
        cost = _bucket(rng, 1)
        s, _, excess = cusum.assess(1, cost)
        cusum.learn(1, cost, s, excess)
    assert cusum.s <= 0.1 * cusum.h, cusum.s
