"""Prompt bloat where output dominates the price: input tokens per request x4 raise what a request
costs about 1.1x, inside the cost-per-request noise; the prompt-size path sees the input tokens."""

from __future__ import annotations

import random

from detectors.seasonal import SeasonalSpendDetector

T0 = 1_795_392_000.0  # a Monday 00:00 UTC
WARM = 2 * 1440


def bucket(minute: int, rng: random.Random, in_mult: float) -> dict[str, float]:
    """About 20 requests a minute, 300 input tokens ($1.25/M) and 1,200 output tokens ($10/M) each,
    sizes log-normal per request."""
    requests = max(1, round(rng.gauss(20.0, 4.0)))
    tin = sum(300.0 * rng.lognormvariate(-0.4, 0.9) for _ in range(requests)) * in_mult
    tout = sum(1200.0 * rng.lognormvariate(-0.25, 0.7) for _ in range(requests))
    return {"t": T0 + 60.0 * minute, "cost": (tin * 1.25 + tout * 10.0) / 1e6, "requests": float(requests),
            "input_tokens": tin, "output_tokens": tout, "cached_input_tokens": 0.0}


def verdicts(in_mult: float, bloat_minutes: int = 180) -> list:
    rng = random.Random(21)
    det = SeasonalSpendDetector()
    out = []
    for minute in range(WARM + 180):
        x = bucket(minute, rng, in_mult if WARM <= minute < WARM + bloat_minutes else 1.0)
        v = det.score_one(x)
        det.learn_one(x)
        if minute >= WARM:
            out.append(v)
    return out


def test_a_prompt_four_times_its_size_alerts_on_input_tokens_per_request() -> None:
    vs = verdicts(4.0)
    first = next((k for k, v in enumerate(vs) if v.anomalous), None)
    assert first is not None and first <= 20, first
    assert "input tokens per request" in vs[first].reason, vs[first].reason


def test_the_same_stream_unchanged_does_not_alert() -> None:
    assert not any(v.anomalous for v in verdicts(1.0))


def test_after_the_bloat_the_requests_settle_before_the_prompt_size_does() -> None:
    """The bloat's incident waits for the prompt-size CUSUM; a loop's would not (one per cause)."""
    after = [v for v in verdicts(4.0, bloat_minutes=60)[60:] if not v.anomalous]
    assert after and not after[0].settled and after[0].settled_causes == ("volume",), after[0]
    assert after[-1].settled and after[-1].settled_causes == ("volume", "mix"), after[-1]
