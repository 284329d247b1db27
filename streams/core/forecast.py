"""Period-end spend forecast: weekday seasonality and the current trend, with an 80 % interval
(pure Python).

Given what was spent so far in the period and the spend of the complete days before now
(oldest first), the forecast is::

    spent + sum over the days left of  max(0, level + slope * i) * weekday factor * share of day left

* **weekday factors** (each weekday's mean ÷ the overall mean) once there are three full weeks of
  days; 1 before that;
* **level and slope**: a least-squares line through the last ``TREND_DAYS`` deseasonalised days,
  read at the last day, once there are ``TREND_MIN_DAYS`` of them; before that the mean, flat (a
  line through three days turns a weekend dip into a month-long fall: 114-187 % error at day 7 in
  ``python -m bench.forecast_eval``);
* **80 % interval**: ``± 1.2816 σ sqrt(L + L² / n + S² / Sxx)`` where ``σ`` is the spread of those
  days around the line, ``L`` the days left (weighted by their weekday factors), ``n`` the days
  fitted and ``S² / Sxx`` the uncertainty of the slope carried to the days left: the daily noise
  plus the line's own error (no slope term while the forecast is flat); with fewer than three days
  ``σ`` is half the level: wide, on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from detectors.burn_rate import BudgetTracker

Z80 = 1.2816
TREND_DAYS = 14
TREND_MIN_DAYS = 7
SEASONAL_MIN_DAYS = 21


@dataclass(frozen=True, slots=True)
class Forecast:
    spent_usd: float
    projected_usd: float
    low_usd: float
    high_usd: float
    daily_usd: float
    trend_usd_per_day: float
    days_left: float
    days_fitted: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def weekday_factors(daily: Sequence[float], weekdays: Sequence[int]) -> list[float]:
    """Mean spend of each weekday (0 = Monday) ÷ the mean of all days; 1s before three full weeks."""
    mean = sum(daily) / len(daily) if daily else 0.0
    if len(daily) < SEASONAL_MIN_DAYS or mean <= 0:
        return [1.0] * 7
    sums, counts = [0.0] * 7, [0] * 7
    for value, day in zip(daily, weekdays):
        sums[day] += value
        counts[day] += 1
    return [(sums[d] / counts[d]) / mean if counts[d] and sums[d] > 0 else 1.0 for d in range(7)]


def forecast(spent: float, daily: Sequence[float], weekdays: Sequence[int],
             days_left: Sequence[tuple[int, float]]) -> Forecast:
    """``daily``/``weekdays``: the complete days before now; ``days_left``: ``(weekday, share of the
    day still to come)`` for each remaining day of the period, today first."""
    if len(daily) != len(weekdays):
        raise ValueError("daily and weekdays must have the same length")
    factors = weekday_factors(daily, weekdays)
    recent = [v / factors[d] for v, d in list(zip(daily, weekdays))[-TREND_DAYS:]]
    n = len(recent)
    level, slope, sigma = _line(recent)
    # day i after the last fitted one sits at x = n - 1 + i; weights: weekday factor x share of the day
    weights = [(i, factors[day] * share) for i, (day, share) in enumerate(days_left, start=1)]
    projected = spent + sum(max(0.0, level + slope * i) * w for i, w in weights)
    total = sum(w for _, w in weights)
    x_mean = (n - 1) / 2
    sxx = sum((x - x_mean) ** 2 for x in range(n))
    lever = sum(w * (n - 1 + i - x_mean) for i, w in weights)
    variance = total + total ** 2 / max(n, 1) + (lever ** 2 / sxx if n >= TREND_MIN_DAYS else 0.0)
    half = Z80 * sigma * math.sqrt(variance)
    return Forecast(spent_usd=round(spent, 2), projected_usd=round(projected, 2),
                    low_usd=round(max(spent, projected - half), 2), high_usd=round(projected + half, 2),
                    daily_usd=round(level, 2), trend_usd_per_day=round(slope, 4),
                    days_left=round(sum(share for _, share in days_left), 3), days_fitted=n)


def _line(values: Sequence[float]) -> tuple[float, float, float]:
    """(value of the fitted line at the last point, slope, residual spread)."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0, 0.0
    mean = sum(values) / n
    if n < 3:
        return mean, 0.0, mean / 2
    if n < TREND_MIN_DAYS:  # too few days to tell a trend from the week's shape: flat
        return mean, 0.0, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    xs = range(n)
    x_mean = (n - 1) / 2
    sxx = sum((x - x_mean) ** 2 for x in xs)
    slope = sum((x - x_mean) * (v - mean) for x, v in zip(xs, values)) / sxx
    intercept = mean - slope * x_mean
    residuals = [v - (intercept + slope * x) for x, v in zip(xs, values)]
    sigma = math.sqrt(sum(r * r for r in residuals) / (n - 2))
    return intercept + slope * (n - 1), slope, sigma


DAY = 86_400.0


def tracker_forecast(tracker: BudgetTracker) -> Forecast | None:
    """The period-end forecast of one budget from its tracker: the spend so far in the period and
    the complete 24-hour days its minute ring still holds (three days for a month's default rules,
    only days it counted whole; with none, the tracker's recent pace). None before the tracker saw its first minute."""
    state = tracker.state()
    if state["as_of"] is None or tracker.period_end is None:
        return None
    now = datetime.fromisoformat(state["as_of"].replace("Z", "+00:00")).timestamp()
    zone = ZoneInfo(tracker.budget.timezone)
    held = max(max(r.long_s for r in tracker.budget.burn_rules), tracker.projection_window_s)
    daily: list[float] = []
    weekdays: list[int] = []
    first = tracker.history_start or now
    for k in range(int(held // DAY)):
        end = int(now - k * DAY)
        if end - DAY < first:
            break  # the tracker did not count this whole day
        daily.insert(0, tracker.window_spend(int(DAY), end))
        weekdays.insert(0, datetime.fromtimestamp(end - DAY / 2, zone).weekday())
    remaining = max(0.0, tracker.period_end - now)
    if not daily:  # less than a day of history: the tracker's own recent pace, as one day
        pace = (state["projected_period_spend_usd"] - tracker.spent) / remaining if remaining else 0.0
        daily, weekdays = [pace * DAY], [datetime.fromtimestamp(now, zone).weekday()]
    left = [(datetime.fromtimestamp(now + i * DAY, zone).weekday(), min(1.0, (remaining - i * DAY) / DAY))
            for i in range(math.ceil(remaining / DAY))]
    return forecast(tracker.spent, daily, weekdays, left)
