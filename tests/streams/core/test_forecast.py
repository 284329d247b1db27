"""Month-end forecast: trend, weekday seasonality, an 80 % interval that covers about 80 %."""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from detectors.burn_rate import BudgetTracker
from schemas.budget import validate_budget
from streams.core.forecast import forecast, tracker_forecast, weekday_factors


def _days(n: int, first_weekday: int = 0) -> list[int]:
    return [(first_weekday + i) % 7 for i in range(n)]


def test_flat_spend_projects_the_daily_rate_over_the_days_left() -> None:
    daily = [100.0] * 10
    result = forecast(1000.0, daily, _days(10), [(d, 1.0) for d in _days(20, 3)])
    assert result.projected_usd == 3000.0
    assert result.trend_usd_per_day == 0.0
    assert result.low_usd == result.high_usd == 3000.0  # no noise, no spread


def test_a_rising_trend_projects_more_than_the_last_day() -> None:
    daily = [100.0 + 10 * i for i in range(10)]  # 100 ... 190, +10 a day
    result = forecast(sum(daily), daily, _days(10), [(d, 1.0) for d in _days(5, 3)])
    assert result.trend_usd_per_day == pytest.approx(10.0)
    assert result.projected_usd == pytest.approx(sum(daily) + sum(190 + 10 * i for i in range(1, 6)))


def test_a_few_days_with_a_weekend_dip_are_not_read_as_a_falling_trend() -> None:
    """Three days ending on a weekend fall steeply; a line through them would project the month near
    zero. Under a week of days the forecast stays flat at their mean."""
    daily = [100.0, 60.0, 40.0]  # Friday, Saturday, Sunday
    result = forecast(200.0, daily, _days(3, 4), [(d, 1.0) for d in _days(20, 0)])
    assert result.trend_usd_per_day == 0.0
    assert result.projected_usd == pytest.approx(200.0 + 20 * sum(daily) / 3, abs=0.01)
    assert result.low_usd < result.projected_usd < result.high_usd


def test_weekday_factors_need_three_weeks_and_then_shape_the_days_left() -> None:
    weekdays = _days(21)
    daily = [20.0 if d >= 5 else 120.0 for d in weekdays]  # quiet weekends
    assert weekday_factors(daily[:20], weekdays[:20]) == [1.0] * 7
    factors = weekday_factors(daily, weekdays)
    assert factors[5] < 0.3 < 1.0 < factors[0]
    weekend = forecast(0.0, daily, weekdays, [(5, 1.0), (6, 1.0)])
    week = forecast(0.0, daily, weekdays, [(0, 1.0), (1, 1.0)])
    assert weekend.projected_usd == pytest.approx(40.0, rel=0.01)
    assert week.projected_usd == pytest.approx(240.0, rel=0.01)


def test_the_80_percent_interval_covers_about_80_percent_of_outcomes() -> None:
    rng = random.Random(3)
    covered = 0
    trials = 400
    for _ in range(trials):
        daily = [rng.gauss(100.0, 15.0) for _ in range(14)]
        future = sum(rng.gauss(100.0, 15.0) for _ in range(16))
        result = forecast(0.0, daily, _days(14), [(d, 1.0) for d in _days(16)])
        covered += result.low_usd <= future <= result.high_usd
    assert 0.72 <= covered / trials <= 0.92


def test_few_days_give_a_wide_interval() -> None:
    result = forecast(50.0, [100.0], [0], [(d, 1.0) for d in _days(10)])
    assert result.high_usd - result.low_usd > 0.5 * (result.projected_usd - 50.0)


def test_mismatched_days_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        forecast(0.0, [1.0, 2.0], [0], [])


def test_tracker_forecast_uses_whole_days_the_tracker_counted() -> None:
    """$60 an hour for three days: $1440 a day, projected to the end of the month."""
    budget = validate_budget({"name": "search", "match": {"team": "search"}, "period": "month", "timezone": "UTC",
                              "amount_usd": 100_000})
    tracker = BudgetTracker(budget)
    start = datetime(2026, 3, 10, tzinfo=timezone.utc).timestamp()
    assert tracker_forecast(tracker) is None
    for hour in range(72):
        tracker.add(start + hour * 3600, 60.0)
        tracker.close_minute(start + hour * 3600 + 3540)
    result = tracker_forecast(tracker)
    assert result is not None
    assert result.days_fitted == 3
    days_left = (datetime(2026, 4, 1, tzinfo=timezone.utc).timestamp() - (start + 3 * 1440 * 60)) / 86_400
    assert result.days_left == pytest.approx(days_left, abs=0.01)
    assert result.projected_usd == pytest.approx(3 * 1440 + 1440 * days_left, rel=0.01)


def test_tracker_forecast_with_less_than_a_day_uses_the_recent_pace() -> None:
    budget = validate_budget({"name": "cx", "match": {"team": "cx"}, "period": "month", "timezone": "UTC",
                              "amount_usd": 100_000})
    tracker = BudgetTracker(budget)
    start = datetime(2026, 3, 10, tzinfo=timezone.utc).timestamp()
    for minute in range(120):
        tracker.add(start + minute * 60, 2.0)
        tracker.close_minute(start + minute * 60)
    result = tracker_forecast(tracker)
    assert result is not None and result.days_fitted == 1
    assert result.daily_usd == pytest.approx(2.0 * 1440, rel=0.02)
