"""GPU ledger: spend per key (fractions by fraction), used GPU-hours, purchase options, weights."""

from __future__ import annotations

import json

import pytest

from schemas.errors import ConfigError
from schemas.gpu import validate_gpu
from streams.core.attribution import parse_allocation_rules
from streams.core.gpu_ledger import GpuLedger, gpu_view, gpu_weights, load_gpu_prices

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600


def gpu(i: int, ts: float, util: float, *, fraction: float = 1.0, team: str = "ml", option: str = "on_demand",
        price: float | None = 8.0, uuid: str = "G0"):
    data = {"event_id": f"g{i}", "timestamp": ts, "interval_s": 60.0, "cluster": "c1", "node": "n1",
            "gpu_model": "H100", "utilization": util, "fraction": fraction, "gpu_uuid": uuid, "team": team,
            "purchase_option": option}
    if price is not None:
        data["hourly_price_usd"] = price
    return validate_gpu(data)


def test_spend_per_key_counts_fractions_and_used_hours() -> None:
    """One whole GPU at 50% and a 1/4 share at 100% for 60 minutes at $8/GPU-hour:
    1.25 GPU-hours billed = $10; 0.75 used GPU-hours -> $13.333 per used GPU-hour."""
    ledger = GpuLedger()
    for minute in range(60):
        ts = T0 + (minute + 1) * 60
        ledger.observe(gpu(2 * minute, ts, 0.5))
        ledger.observe(gpu(2 * minute + 1, ts, 1.0, fraction=0.25, uuid="G1"))
    view = gpu_view([ledger], window_s=3600)
    [row] = view["keys"]
    assert row["key"] == {"cluster": "c1", "team": "ml", "gpu_model": "H100", "service": None, "model": None}
    assert row["gpu_hours"] == pytest.approx(1.25) and row["used_gpu_hours"] == pytest.approx(0.75)
    assert row["cost_usd"] == pytest.approx(10.0) and row["cost_per_gpu_hour"] == pytest.approx(8.0)
    assert row["cost_per_used_gpu_hour"] == pytest.approx(10 / 0.75, rel=1e-5)
    [fleet] = view["purchase_options"]
    assert fleet["comparison"] is None and "reserved/spot" in fleet["reason"]


def test_purchase_options_from_the_prices_file(tmp_path) -> None:
    path = tmp_path / "gpu.json"
    path.write_text(json.dumps({"H1*": {"on_demand": 8.0, "reserved": 5.0, "spot": 3.0, "spot_overhead": 0.0}}))
    prices = load_gpu_prices(path)
    ledger = GpuLedger()
    for minute in range(120):  # two hours of one whole GPU
        ledger.observe(gpu(minute, T0 + (minute + 1) * 60, 1.0))
    [fleet] = gpu_view([ledger], window_s=86400, prices=prices)["purchase_options"]
    options = fleet["comparison"]["options"]
    assert fleet["prices_from"] == "SPENDSENTRY_GPU_PRICES_FILE"
    assert options["on_demand"]["total_usd"] == pytest.approx(16.0)
    assert options["reserved"]["total_usd"] == pytest.approx(10.0)
    assert options["spot"]["total_usd"] == pytest.approx(6.0)
    assert fleet["comparison"]["cheapest"] == "spot"
    path.write_text(json.dumps({"H100": {"on_demand": 8.0}}))
    with pytest.raises(ConfigError, match="needs on_demand, reserved and spot"):
        load_gpu_prices(path)


def test_idle_alert_and_gpu_second_weights() -> None:
    ledger = GpuLedger()
    ledger.detector.min_idle_s = 600.0
    alerts = []
    for minute in range(12):
        ts = T0 + (minute + 1) * 60
        alerts += ledger.observe(gpu(minute, ts, 0.0, team="a"))
        alerts += ledger.observe(gpu(100 + minute, ts, 0.9, team="b", uuid="G1", fraction=0.5))
    assert [(a.type, a.status, a.key["team"]) for a in alerts] == [("gpu_idle", "firing", "a")]
    rules = parse_allocation_rules([{"name": "c", "match": {"service": "x"}, "basis": {"cluster": "c1"},
                                     "split_by": "gpu_seconds", "across": "team"}])
    assert gpu_weights([ledger], rules, since=T0) == {"c": {"a": 720.0, "b": 360.0}}
