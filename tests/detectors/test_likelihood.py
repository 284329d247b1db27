"""The anomaly-likelihood layer of ``--series`` (detectors/series.py)."""

from __future__ import annotations

import math
import random

from detectors.series import AnomalyLikelihood, LikelihoodSeriesDetector


def feed(lik: AnomalyLikelihood, raws: list[float]) -> list[float]:
    out = []
    for r in raws:
        out.append(lik.score(r))
        lik.learn(r)
    return out


def test_nothing_is_reported_while_learning_then_a_sustained_rise_is_improbable() -> None:
    rng = random.Random(3)
    lik = AnomalyLikelihood(short=10, long=500, learning=100)
    quiet = [0.2 + 0.05 * rng.random() for _ in range(400)]
    scores = feed(lik, quiet)
    assert scores[:100] == [0.0] * 100
    assert max(scores[100:]) < 0.3  # ordinary raw scores are likely
    rise = feed(lik, [0.8] * 10)
    assert max(rise) >= 0.5  # a run of high raw scores is not


def test_the_same_raw_score_is_news_on_a_quiet_series_and_not_on_a_noisy_one() -> None:
    rng = random.Random(5)
    quiet, noisy = AnomalyLikelihood(learning=100), AnomalyLikelihood(learning=100)
    feed(quiet, [0.1 + 0.02 * rng.random() for _ in range(600)])
    feed(noisy, [rng.random() for _ in range(600)])
    assert max(feed(quiet, [0.6] * 5)) > max(feed(noisy, [0.6] * 5)) + 0.2


def test_a_run_in_the_red_zone_keeps_only_its_first_point_at_full_strength() -> None:
    lik = AnomalyLikelihood(short=1, long=500, learning=100)
    feed(lik, [0.1, 0.12] * 100)
    first, second = feed(lik, [1.0, 1.0])
    assert first > 0.9  # near the top of the log scale
    assert math.isclose(second, math.log(1e-3 + 1e-10) / math.log(1e-10))  # reported at the yellow tail


def test_a_value_beyond_the_range_seen_scores_one_and_state_pickles() -> None:
    import pickle

    det = LikelihoodSeriesDetector()
    rng = random.Random(7)
    t0 = 1_400_000_000.0
    for i in range(300):
        x = {"t": t0 + 300 * i, "value": 10.0 + rng.random()}
        det.score_one(x)
        det.learn_one(x)
    spike = {"t": t0 + 300 * 300, "value": 30.0}
    normal = {"t": t0 + 300 * 300, "value": 10.5}
    assert det.score_one(spike).score == 1.0
    assert det.score_one(normal).score < 0.5
    clone = pickle.loads(pickle.dumps(det))
    assert clone.score_one(spike) == det.score_one(spike)
