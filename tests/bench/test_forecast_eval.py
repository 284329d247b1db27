"""The forecast backtest runs and scores what it should (the full run is a benchmark: docs/benchmarks)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bench.forecast_eval import Series, evaluate, main, summarize, synthetic_series


def test_a_flat_month_is_forecast_exactly_and_inside_its_interval() -> None:
    first = synthetic_series(1).first
    flat = Series(first, [100.0] * (22 + 31), 22, 31)
    outcomes = evaluate(flat)
    assert [(o.cut, o.history) for o in outcomes] == [(c, h) for c in (7, 14, 21) for h in ("3d", "full")]
    assert all(o.ape < 1e-6 and o.covered for o in outcomes)


def test_a_synthetic_month_has_weekends_and_the_lead_days() -> None:
    series = synthetic_series(3)
    assert len(series.daily) == 22 + series.month_days and series.month_at == 22
    saturday = next(i for i in range(7) if (series.first + timedelta(days=i)).weekday() == 5)
    assert series.daily[saturday] < series.daily[saturday - 1]


def test_the_command_prints_one_row_per_cut_and_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", "synthetic", "--seeds", "5"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| synthetic")]
    assert len(rows) == 6 and all(" 5 | " in row for row in rows)
    assert summarize(evaluate(synthetic_series(2)))[(21, "full")][2] == 1
