"""The detector's expected values per key and the band drawn around them."""

from __future__ import annotations

import orjson

from streams.core.engine import Engine, EngineConfig
from streams.core.expected_band import BAND_WIDTH, ExpectedHistory, spread
from tests.streams.core.test_engine import T0, FlatPricer, traffic


def test_band_is_expected_plus_minus_the_robust_spread_of_residuals() -> None:
    history = ExpectedHistory(horizon_s=3600, bucket_seconds=60)
    for i, residual in enumerate([-1.0, 1.0, -1.0, 1.0, 50.0]):  # one outlier barely moves a robust spread
        history.record("model=a", T0 + 60 * i, 10.0 + residual, 10.0)
    width = BAND_WIDTH * spread([-1.0, 1.0, -1.0, 1.0, 50.0])
    assert 0 < width < 10
    last = history.points("model=a", T0 + 240)
    assert last == [{"t": T0 + 240, "expected": 10.0, "low": round(10.0 - width, 6), "high": round(10.0 + width, 6)}]


def test_band_never_goes_below_zero_and_history_is_bounded_by_the_horizon() -> None:
    history = ExpectedHistory(horizon_s=360, bucket_seconds=60)
    for i in range(20):
        history.record("k", T0 + 60 * i, 0.0 if i % 2 else 20.0, 1.0)
    points = history.points("k", 0.0)
    assert [p["t"] for p in points] == [T0 + 60 * i for i in range(14, 20)]
    assert all(p["low"] == 0.0 for p in points)
    assert history.points("unknown", 0.0) == []


def test_the_engine_records_what_its_detector_expected_for_every_closed_bucket() -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    for event in sorted(traffic(30), key=lambda e: e["timestamp"]):
        engine.ingest(orjson.dumps(event))
    engine.flush()
    points = engine.expected.points("model=gpt-4o", 0.0)
    assert [p["t"] for p in points] == [T0 + 60 * m for m in range(30)]
    assert points[-1]["expected"] > 0
