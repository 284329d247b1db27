"""Per-key spend detector on River's Holt-Winters forecaster over hourly aggregates."""

from __future__ import annotations

import math

from river import stats, time_series

from detectors.base import Features, Verdict


class HoltWintersSpendDetector:
    """River ``time_series.HoltWinters`` (additive, ``seasonality`` hours) forecasts this hour's spend.

    The minute's expected spend is the hour's forecast / 60 (a running ``stats.EWMean`` until the
    forecaster has ``seasonality + 1`` hours). The spread is an ``stats.EWVar`` of the minute
    residuals (clipped at 4 sigma). Anomalous like :class:`detectors.ewma.EWSpendDetector`:
    ``z >= z_threshold``, ``>= ratio_threshold x expected`` and ``min_excess_usd`` more; anomalous
    minutes are learned clipped. An evaluation candidate: it has no weekly or minute-level pattern.
    """

    name = "hw_spend"

    def __init__(self, seasonality: int = 24, alpha: float = 0.3, beta: float = 0.01, gamma: float = 0.3,
                 warmup: int = 30, z_threshold: float = 6.0, ratio_threshold: float = 2.0,
                 min_excess_usd: float = 0.05) -> None:
        self.seasonality = seasonality
        self.warmup = warmup
        self.z_threshold = z_threshold
        self.ratio_threshold = ratio_threshold
        self.min_excess_usd = min_excess_usd
        self._hw = time_series.HoltWinters(alpha, beta, gamma, seasonality=seasonality)
        self._mean = stats.EWMean(0.05)
        self._var = stats.EWVar(0.02)
        self._hour: int | None = None
        self._hour_sum = 0.0
        self._hours = 0
        self._fc: float | None = None
        self._n = 0

    def _expected(self) -> float:
        if self._fc is not None:
            return max(self._fc, 0.0)
        return self._mean.get() if self._n else 0.0

    def _assess(self, x: Features) -> tuple[float, float, float, bool]:
        y = float(x["cost"])
        expected = self._expected()
        spread = max(math.sqrt(max(self._var.get(), 0.0)), 0.1 * expected, 1e-6)
        z = (y - expected) / spread
        anomalous = (self._n >= self.warmup and z >= self.z_threshold
                     and y >= self.ratio_threshold * expected and y - expected >= self.min_excess_usd)
        return y, expected, z, anomalous, spread

    def score_one(self, x: Features) -> Verdict:
        y, expected, z, anomalous, _ = self._assess(x)
        score = 1.0 - math.exp(-max(z, 0.0) / self.z_threshold)
        reason = f"z={z:.1f}, {y / expected:.1f}x expected" if expected > 0 else f"z={z:.1f}"
        return Verdict(score=score, expected=expected, anomalous=anomalous, reason=reason)

    def learn_one(self, x: Features) -> None:
        y, expected, z, anomalous, spread = self._assess(x)
        hour = int(float(x["t"]) // 3600)
        if self._hour is not None and hour != self._hour:
            self._hw.learn_one(self._hour_sum)
            self._hours += 1
            self._hour_sum = 0.0
            if self._hours > self.seasonality:
                self._fc = self._hw.forecast(1)[0] / 60.0
        self._hour = hour
        if self._n >= self.warmup:
            y = min(y, expected + (1.0 if anomalous else 4.0) * spread)
        self._hour_sum += y
        resid = max(-4 * spread, min(4 * spread, y - expected)) if self._n >= self.warmup else y - expected
        self._var.update(resid)
        self._mean.update(y)
        self._n += 1
