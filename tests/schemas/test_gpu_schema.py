"""The GPU usage event record: validation and the derived GPU-hours and cost."""

from __future__ import annotations

import pytest

from schemas.errors import ValidationError
from schemas.gpu import validate_gpu

BASE = {"event_id": "g1", "timestamp": "2026-11-27T06:00:00Z", "interval_s": 600, "cluster": "c1",
        "node": "n1", "gpu_model": "NVIDIA H100 80GB HBM3", "utilization": 0.5}


def test_fractional_gpu_cost() -> None:
    """2 GPUs x 1/4 time-slice for 10 min at $8/h: 0.5 GPU x 1/6 h x $8."""
    event = validate_gpu({**BASE, "gpu_count": 2, "fraction": 0.25, "hourly_price_usd": 8.0, "team": "ml",
                          "purchase_option": "spot", "memory_used_bytes": 1, "memory_total_bytes": 2})
    assert event.gpus == 0.5 and event.gpu_hours == pytest.approx(0.5 / 6)
    assert event.cost_usd == pytest.approx(8.0 * 0.5 / 6)
    assert validate_gpu(event.to_dict()) == event


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"utilization": 1.5}, "utilization"),
        ({"utilization": None}, "utilization"),
        ({"fraction": 0}, "fraction"),
        ({"purchase_option": "savings_plan"}, "purchase_option"),
        ({"interval_s": 0}, "interval_s"),
        ({"hourly_price_usd": -1}, "hourly_price_usd"),
        ({"memory_used_bytes": 3, "memory_total_bytes": 2}, "memory_used_bytes"),
        ({"gpu_count": 0}, "gpu_count"),
        ({"cluster": ""}, "cluster"),
        ({"timestamp": 1.7e12}, "timestamp"),
    ],
)
def test_invalid_gpu_events(patch: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_gpu({**BASE, **patch})
    assert info.value.field == field
