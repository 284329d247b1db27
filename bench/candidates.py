"""The detector candidates compared by the evaluation suite (all behind detectors.base.Detector)."""

from __future__ import annotations

from functools import partial
from typing import Callable

from detectors.base import Detector
from detectors.ewma import EWSpendDetector
from detectors.holtwinters import HoltWintersSpendDetector
from detectors.seasonal import SeasonalSpendDetector

CANDIDATES: dict[str, Callable[[], Detector]] = {
    "ew_spend": EWSpendDetector,
    "hw_spend": HoltWintersSpendDetector,
    "seasonal_spend": SeasonalSpendDetector,
    "seasonal_no_cusum": partial(SeasonalSpendDetector, use_cusum=False),
    "seasonal_no_memory": partial(SeasonalSpendDetector, use_memory=False),
    # the slow path's sensitivity: a 1.5x shift, h=10 (the first setting measured)
    "seasonal_sensitive": partial(SeasonalSpendDetector, cusum_delta=1.5, cusum_h=10.0, cusum_ratio=1.25),
}
DEFAULT = "seasonal_spend"
