"""A first-week weekday that runs like a weekend (a holiday) is judged by itself so far, and the
weekday's level is still the bar: the traffic coming back to it does not page."""

from __future__ import annotations

import random

from detectors.seasonal import SeasonalSpendDetector

THURSDAY = 1_795_651_200.0  # 00:00 UTC
DAY_MIN = 1440


def run(holiday_ratio: float | None = None) -> tuple[float, float, list]:
    """Thursday at about 20 requests a minute, Friday at a fifth of it until 14:00, then back:
    (Thursday's expected spend at 12:00, Friday's, Friday's verdicts)."""
    rng = random.Random(7)
    det = SeasonalSpendDetector()
    if holiday_ratio is not None:
        det.holiday_ratio = holiday_ratio
    expected = {}
    friday = []
    for minute in range(DAY_MIN + 16 * 60):
        level = 0.2 if DAY_MIN <= minute < DAY_MIN + 14 * 60 else 1.0
        requests = max(0, round(rng.gauss(20.0 * level, (20.0 * level) ** 0.5)))
        x = {"t": THURSDAY + 60.0 * minute, "cost": requests * 1e-3 * rng.uniform(0.8, 1.2),
             "requests": float(requests), "input_tokens": 500.0 * requests, "output_tokens": 100.0 * requests}
        v = det.score_one(x)
        det.learn_one(x)
        if minute % DAY_MIN == 12 * 60:
            expected[minute // DAY_MIN] = v.expected
        if minute >= DAY_MIN:
            friday.append(v)
    return expected[0], expected[1], friday


def test_a_holiday_is_expected_at_its_own_level_and_the_weekday_coming_back_does_not_page() -> None:
    thursday, friday, verdicts = run()
    assert friday < 0.4 * thursday, (thursday, friday)
    assert not any(v.anomalous for v in verdicts), [v.reason for v in verdicts if v.anomalous][:3]


def test_without_the_holiday_the_day_keeps_the_weekday_expectation() -> None:
    thursday, friday, _ = run(holiday_ratio=0.0)
    assert friday > 0.5 * thursday, (thursday, friday)
