"""The seasonal detector family on a plain time series (``spendsentry backtest --series``, NAB)."""

from __future__ import annotations

import math

from detectors.base import Features, Verdict

DAY = 86400.0
HOUR = 3600.0


class SeasonalSeriesDetector:
    """Two-sided variant of :class:`detectors.seasonal.SeasonalSpendDetector` for any numeric series.

    Same building blocks, additive because a generic value may be zero or negative: a slow EW level
    plus a 24-slot hour-of-day profile (interpolated between slot centres) is the expectation;
    the spread is a trimmed EW variance of the residuals (residuals beyond 5 sigma are not learned
    and values are learned clipped to +-3 sigma, so an anomaly does not become normal); a CUSUM
    of ``|z|`` beyond an allowance catches sustained shifts. The score is ``s / (s + alarm_z)`` with
    ``s = max(|z|, cusum evidence)`` (0.5 at the alarm level, monotone, never saturating); after a strong detection scores are
    damped for ``refractory`` points (one incident, one alert, like the spend lifecycle).
    The value is read from ``x["value"]`` (``x["cost"]`` when absent); ``x["t"]`` is epoch seconds.
    """

    name = "seasonal_series"

    def __init__(self, level_alpha: float = 0.02, profile_alpha: float = 0.02, var_alpha: float = 0.01,
                 warmup: int = 50, cusum_k: float = 1.0, cusum_h: float = 8.0, alarm_z: float = 6.0,
                 refractory: int = 200, seasonal: bool = True) -> None:
        self.level_alpha = level_alpha
        self.profile_alpha = profile_alpha
        self.var_alpha = var_alpha
        self.warmup = warmup
        self.cusum_k = cusum_k
        self.cusum_h = cusum_h
        self.alarm_z = alarm_z
        self.refractory = refractory
        self.seasonal = seasonal
        self._n = 0
        self._level = 0.0
        self._prof = [0.0] * 24
        self._prof_n = [0.0] * 24
        self._var = 0.0
        self._cup = 0.0
        self._cdn = 0.0
        self._quiet = 0

    @staticmethod
    def _value(x: Features) -> float:
        v = x.get("value")
        return float(x["cost"] if v is None else v)

    def _assess(self, x: Features) -> tuple:
        y = self._value(x)
        t = float(x.get("t", 0.0) or 0.0)
        pos = (t % DAY) / HOUR - 0.5
        base = math.floor(pos)
        f = pos - base
        h0, h1 = int(base) % 24, int(base + 1) % 24
        prof = (self._prof[h0] * (1 - f) + self._prof[h1] * f) if self.seasonal else 0.0
        expected = self._level + prof if self._n else y
        sd = math.sqrt(max(self._var, 0.0))
        sd = max(sd, 1e-3 * abs(self._level), 1e-9)
        z = (y - expected) / sd
        zc = max(-6.0, min(6.0, z))
        cup = min(max(0.0, self._cup + zc - self.cusum_k), 3 * self.cusum_h)
        cdn = min(max(0.0, self._cdn - zc - self.cusum_k), 3 * self.cusum_h)
        return y, expected, sd, z, cup, cdn, h0, h1, f

    def _strength(self, z: float, cup: float, cdn: float) -> float:
        # CUSUM evidence expressed on the z scale: reaching h counts like alarm_z
        return max(abs(z), self.alarm_z * max(cup, cdn) / self.cusum_h)

    def score_one(self, x: Features) -> Verdict:
        y, expected, sd, z, cup, cdn, *_ = self._assess(x)
        if self._n < self.warmup:
            return Verdict(score=0.0, expected=expected, anomalous=False, reason="warming up")
        s = self._strength(z, cup, cdn)
        score = s / (s + self.alarm_z)  # monotone in the evidence, 0.5 at the alarm level
        if self._quiet > 0:
            score *= 0.3
        anomalous = s >= self.alarm_z and self._quiet == 0
        return Verdict(score=min(max(score, 0.0), 1.0), expected=expected, anomalous=anomalous,
                       reason=f"z={z:.1f}, cusum={max(cup, cdn):.1f}")

    def learn_one(self, x: Features) -> None:
        y, expected, sd, z, cup, cdn, h0, h1, f = self._assess(x)
        n = self._n
        if n >= self.warmup:
            if self._quiet > 0:
                self._quiet -= 1
            elif self._strength(z, cup, cdn) >= self.alarm_z:
                self._quiet = self.refractory
            self._cup, self._cdn = cup, cdn
        if n == 0:
            self._level = y
            self._n = 1
            return
        resid = y - expected
        if n < self.warmup or abs(resid) <= 5.0 * sd:
            a = max(1.0 / (n + 1), self.var_alpha)
            self._var += a * (resid * resid - self._var)
        if n >= self.warmup:
            resid = max(-3.0 * sd, min(3.0 * sd, resid))
        a = max(1.0 / (n + 1), self.level_alpha)
        self._level += a * resid
        if self.seasonal:
            for h, w in ((h0, 1.0 - f), (h1, f)):
                if w > 0:
                    k = self._prof_n[h]
                    b = w * max(1.0 / (k + 2.0), self.profile_alpha)
                    self._prof[h] += b * (resid - self._prof[h]) if k else b * resid
                    self._prof_n[h] = k + w
        self._n = n + 1
