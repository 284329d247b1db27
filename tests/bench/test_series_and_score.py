"""Fast checks of the --series path and of the evaluation scorer (the full runs are benchmarks)."""

from __future__ import annotations

import csv
import math

from bench.score import score
from streams.cli.main import main as cli_main
from streams.cli.score_series import score_series_file


def test_series_mode_scores_every_row_and_flags_the_spike(tmp_path) -> None:
    src = tmp_path / "s.csv"
    rows = [(f"2014-04-01 {h:02d}:{m:02d}:00", 10 + math.sin(m / 5) + (40 if (h, m) == (9, 30) else 0))
            for h in range(12) for m in range(0, 60, 5)]
    src.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    out = tmp_path / "out.csv"
    assert cli_main(["backtest", "--series", str(src), "--output", str(out)]) == 0
    got = list(csv.DictReader(out.open()))
    assert [r["timestamp"] for r in got] == [t for t, _ in rows]
    scores = [float(r["anomaly_score"]) for r in got]
    assert all(0.0 <= s <= 1.0 for s in scores)
    spike = [t for t, _ in rows].index("2014-04-01 09:30:00")
    assert scores[spike] == max(scores)
    assert score_series_file(src, tmp_path / "again.csv") == len(rows)
    assert (tmp_path / "again.csv").read_text() == out.read_text()


def test_scorer_counts_recall_precision_and_delay() -> None:
    anomalies = [{"kind": "burst10", "model": "a", "start": 1000.0, "end": 2000.0, "source": ""},
                 {"kind": "ramp", "model": "b", "start": 5000.0, "end": 9000.0, "source": ""}]
    alerts = [
        {"status": "firing", "key": {"model": "a"}, "window_start": 960.0, "triggered_at": 1020.0},
        {"status": "resolved", "key": {"model": "a"}, "window_start": 960.0, "triggered_at": 2200.0},
        {"status": "firing", "key": {"model": "a"}, "window_start": 1500.0, "triggered_at": 1560.0},  # re-fire
        {"status": "firing", "key": {"model": "c"}, "window_start": 3000.0, "triggered_at": 3060.0},  # false
        {"status": "firing", "key": {"model": "a"}, "window_start": 0.0, "triggered_at": 60.0},  # warm-up
    ]
    rep = score(alerts, anomalies, eval_start=500.0, end=500.0 + 86400.0, n_keys=2)
    assert rep.kinds["burst10"]["recall"] == 1.0 and rep.kinds["burst10"]["delays"] == [20.0]
    assert rep.kinds["ramp"]["recall"] == 0.0
    assert (rep.alerts, rep.true_alerts, rep.false_alerts, rep.extra_alerts) == (3, 2, 1, 1)
    assert abs(rep.false_per_model_day - 0.5) < 1e-9
