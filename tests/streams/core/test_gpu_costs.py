"""Purchase-option comparison of a fleet's observed hourly GPU usage."""

from __future__ import annotations

import pytest

from schemas.errors import ValidationError
from schemas.gpu import GpuUsageEvent
from streams.core.gpu_costs import GpuPrices, compare_purchase_options, hourly_usage

COUNTS = [2, 2, 2, 2, 4, 4]  # 6 hours, 16 GPU-hours, peak 4


def test_options_worked_by_hand() -> None:
    """on-demand $4, reserved $2.50, spot $3.90 + 10% interruption overhead ($4.29 > on-demand)."""
    prices = GpuPrices(on_demand=4.0, reserved=2.5, spot=3.9, spot_overhead=0.10)
    result = compare_purchase_options(COUNTS, prices, utilization=[0.5] * 6)
    opts = result.options
    assert opts["on_demand"].total_usd == pytest.approx(16 * 4.0)  # 64
    assert opts["reserved"].total_usd == pytest.approx(4 * 6 * 2.5)  # peak 4, 24/7: 60
    assert opts["spot"].total_usd == pytest.approx(16 * 3.9 * 1.1)  # 68.64
    # mix: r=0 64; r=1 15+10*4=55; r=2 30+4*4=46; r=3 45+2*4=53; r=4 60 -> 2 reserved + 4 on-demand GPU-hours
    mix = opts["mix"]
    assert (mix.total_usd, mix.reserved_gpus, mix.on_demand_gpu_hours, mix.spot_gpu_hours) == (pytest.approx(46.0), 2, 4.0, 0.0)
    assert result.cheapest.name == "mix"
    # utilization-weighted: 16 GPU-hours at 50% = 8 used GPU-hours
    assert result.used_gpu_hours == 8.0
    assert opts["on_demand"].cost_per_used_gpu_hour == pytest.approx(8.0)
    assert mix.cost_per_used_gpu_hour == pytest.approx(5.75)


def test_cheap_spot_takes_the_overflow() -> None:
    # spot $1.50 x 1.2 = $1.80: r=0 28.8; r=1 15+10*1.8=33: nothing reserved, all spot
    result = compare_purchase_options(COUNTS, GpuPrices(on_demand=4.0, reserved=2.5, spot=1.5, spot_overhead=0.2))
    mix = result.options["mix"]
    assert (mix.total_usd, mix.reserved_gpus, mix.spot_gpu_hours) == (pytest.approx(28.8), 0, 16.0)
    assert result.options["spot"].total_usd == pytest.approx(28.8)


def test_fractional_counts_and_validation() -> None:
    result = compare_purchase_options([0.5, 1.5], GpuPrices(on_demand=2.0, reserved=1.0, spot=1.0))
    assert result.options["reserved"].reserved_gpus == 2  # ceil of the 1.5 peak
    assert result.options["on_demand"].total_usd == pytest.approx(4.0)
    with pytest.raises(ValidationError):
        compare_purchase_options([1, -1], GpuPrices(1, 1, 1))
    with pytest.raises(ValidationError):
        compare_purchase_options([1], GpuPrices(1, 1, 1), utilization=[1, 1])
    assert compare_purchase_options([], GpuPrices(1, 1, 1)).options["mix"].cost_per_used_gpu_hour is None


def test_hourly_usage_from_events() -> None:
    t0 = 1_795_759_200.0  # an hour boundary
    def ev(ts: float, fraction: float, util: float) -> GpuUsageEvent:
        return GpuUsageEvent(f"e{ts}{fraction}", ts, 1800.0, "c", "n", "H100", util, fraction=fraction)
    events = [ev(t0 + 1800, 1.0, 0.8), ev(t0 + 3600, 1.0, 0.4), ev(t0 + 3600, 0.5, 0.0), ev(t0 + 3 * 3600, 1.0, 1.0)]
    counts, utils = hourly_usage(events)
    assert counts == [pytest.approx(1.25), 0.0, pytest.approx(0.5)]
    # hour 0: 0.5 GPU-h at 0.8 + 0.5 at 0.4 + 0.25 at 0 -> 0.6 / 1.25
    assert utils[0] == pytest.approx(0.48) and utils[1] == 0.0 and utils[2] == 1.0
