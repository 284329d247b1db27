"""Backtest of the month-end forecast (:func:`streams.core.forecast.forecast`).

For each month: the daily spend of the month and of the days before it; at the end of day 7, 14
and 21 the forecast is made from the month's spend so far and the complete days before that
moment, and compared with the month's actual total: absolute percentage error (MAPE over
months) and whether the actual total fell inside the 80 % interval (coverage).

Two histories are scored: ``3d`` (the last three complete days: what a budget tracker's minute
ring holds, so what ``GET /v1/forecast`` sees today) and ``full`` (every complete day since the
series began, 22 days before the month at least: the weekday factors need 21).

Two sources of months:

* ``scenario``: the bench's traffic (:mod:`bench.scenario`, six models, daily and weekly shapes,
  noise, injected anomalies) from 22 days before 1 December 2026 to 31 December, priced with the
  bundled catalogue (tokens summed per day and model, then priced: prices are linear in tokens).
  About a minute of generation per seed.
* ``synthetic``: a documented synthetic month, cheap enough for many seeds: 100 $/day x a trend
  of -1 %..+2 % a day (drawn per month) x weekends at 0.6 x log-normal day noise (σ 8 %).

    python -m bench.forecast_eval                        # synthetic, 200 months; scenario, seeds 1-3
    python -m bench.forecast_eval --source synthetic --seeds 500
"""

from __future__ import annotations

import argparse
import calendar
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np

from bench.scenario import DAY, Scenario
from schemas.usage import validate_usage
from streams.core.forecast import forecast
from streams.core.pricing import PriceCatalogue

CUTS = (7, 14, 21)
HISTORIES = ("3d", "full")
#: the scenario's month and the days of history before it
MONTH = date(2026, 12, 1)
LEAD_DAYS = 22


@dataclass(frozen=True, slots=True)
class Series:
    """Daily spend from ``first`` (a date) on; the month to forecast starts at index ``month_at``."""

    first: date
    daily: list[float]
    month_at: int
    month_days: int


def scenario_series(seed: int) -> Series:
    """The bench scenario's daily spend, 22 days before December 2026 to its end."""
    first = MONTH - timedelta(days=LEAD_DAYS)
    month_days = calendar.monthrange(MONTH.year, MONTH.month)[1]
    start = datetime(first.year, first.month, first.day, tzinfo=timezone.utc).timestamp()
    days = LEAD_DAYS + month_days
    tokens: dict[tuple[int, str, str], list[int]] = {}
    for event in Scenario(seed=seed, days=days, start=start).events():
        slot = tokens.setdefault((int((event["timestamp"] - start) // DAY), event["provider"], event["model"]),
                                 [0, 0, 0, 0])
        slot[0] += event["input_tokens"]
        slot[1] += event["cached_input_tokens"]
        slot[2] += event["output_tokens"]
        slot[3] += event["request_count"]
    catalogue = PriceCatalogue.bundled()
    daily = [0.0] * days
    for (day, provider, model), (tin, cached, tout, requests) in tokens.items():
        event = validate_usage({"event_id": f"d{day}-{model}", "timestamp": start + day * DAY, "provider": provider,
                                "model": model, "input_tokens": tin, "cached_input_tokens": cached,
                                "output_tokens": tout, "request_count": requests})
        daily[day] += catalogue.cost(event) or 0.0
    return Series(first, daily, LEAD_DAYS, month_days)


def synthetic_series(seed: int) -> Series:
    """One synthetic month (see the module docstring) with 22 days of the same process before it."""
    rng = np.random.default_rng(seed)
    month = date(2026, 1 + seed % 12, 1)
    month_days = calendar.monthrange(month.year, month.month)[1]
    first = month - timedelta(days=LEAD_DAYS)
    trend = float(rng.uniform(-0.01, 0.02))
    daily = []
    for i in range(LEAD_DAYS + month_days):
        weekend = 0.6 if (first + timedelta(days=i)).weekday() >= 5 else 1.0
        level = 100.0 * max(0.05, 1.0 + trend * (i - LEAD_DAYS))
        daily.append(level * weekend * float(rng.lognormal(0.0, 0.08)))
    return Series(first, daily, LEAD_DAYS, month_days)


@dataclass(frozen=True, slots=True)
class Outcome:
    cut: int
    history: str
    ape: float
    covered: bool


def evaluate(series: Series, cuts: Sequence[int] = CUTS, histories: Sequence[str] = HISTORIES) -> list[Outcome]:
    """Forecast the month's total at the end of each day in ``cuts``, with each history."""
    m = series.month_at
    month = series.daily[m:m + series.month_days]
    actual = sum(month)
    weekdays = [(series.first + timedelta(days=i)).weekday() for i in range(len(series.daily))]
    out = []
    for cut in cuts:
        now = m + cut
        for history in histories:
            since = now - 3 if history == "3d" else 0
            result = forecast(sum(month[:cut]), series.daily[since:now], weekdays[since:now],
                              [(weekdays[i], 1.0) for i in range(now, m + series.month_days)])
            out.append(Outcome(cut, history, abs(result.projected_usd - actual) / actual * 100,
                               result.low_usd <= actual <= result.high_usd))
    return out


def summarize(outcomes: Sequence[Outcome]) -> dict[tuple[int, str], tuple[float, float, int]]:
    """``(cut, history) -> (MAPE %, 80 % interval coverage %, months)``."""
    groups: dict[tuple[int, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.cut, o.history), []).append(o)
    return {key: (sum(o.ape for o in g) / len(g), sum(o.covered for o in g) / len(g) * 100, len(g))
            for key, g in sorted(groups.items())}


def table(source: str, summary: dict[tuple[int, str], tuple[float, float, int]]) -> str:
    lines = ["| source | forecast made at | history | months | MAPE | 80 % interval coverage |",
             "|---|---|---|---:|---:|---:|"]
    for (cut, history), (mape, coverage, n) in summary.items():
        lines.append(f"| {source} | day {cut} | {history} | {n} | {mape:.1f} % | {coverage:.0f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.forecast_eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", choices=("synthetic", "scenario", "both"), default="both")
    parser.add_argument("--seeds", type=int, default=0,
                        help="months per source (default: 200 synthetic, 3 scenario)")
    args = parser.parse_args(argv)
    if args.seeds < 0:
        parser.error("--seeds: must be >= 0")
    for source, make, default in (("synthetic", synthetic_series, 200), ("scenario", scenario_series, 3)):
        if args.source in (source, "both"):
            outcomes = [o for seed in range(1, (args.seeds or default) + 1) for o in evaluate(make(seed))]
            print(table(source, summarize(outcomes)))
            print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
