"""The seasonal detector family on a plain time series (``spendsentry backtest --series``, NAB)."""

from __future__ import annotations

import math
from typing import Any

from river import stats

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


class AnomalyLikelihood:
    """HTM's anomaly likelihood (Ahmad et al. 2017, as in Numenta's NAB detector) over raw scores.

    The short-window mean of the raw scores (``short`` points) is compared with the long-run
    distribution of that same mean (the last ``long`` values, a Gaussian fitted by mean and
    variance); the likelihood is one minus the Gaussian tail probability of the current short mean.
    Nothing is reported (0.5) before ``learning`` raw scores are seen. Like HTM, the distribution's
    mean and variance have floors (``min_mean``, ``min_var``, so a long quiet stretch does not make
    every wobble improbable), and a run of "red zone" likelihoods (tail below ``red``) keeps only
    its first at full strength, the rest reported at the ``yellow`` tail: one anomaly, one alarm.
    The output is HTM's log scale: ``log(1 - likelihood) / log(1e-10)``, in [0, 1].
    Built from River's parts: ``stats.Mean`` over the short window and ``stats.Var`` (mean and
    variance) over the long one, each kept rolling by ``update``/``revert``.
    """

    def __init__(self, short: int = 10, long: int = 2000, learning: int = 150, min_mean: float = 0.03,
                 min_var: float = 0.0003, red: float = 1e-5, yellow: float = 1e-3) -> None:
        self.short = short
        self.long = long
        self.learning = learning
        self.min_mean = min_mean
        self.min_var = min_var
        self.red = red
        self.yellow = yellow
        # the windows are plain lists fed to River's statistics with update/revert (what
        # river.utils.Rolling does), so the state stays plain data for the state codec
        self._recent_values: list[float] = []
        self._recent = stats.Mean()
        self._history_values: list[float] = []
        self._history = stats.Var()
        self._n = 0
        self._last_tail = 1.0

    def _tail(self, raw: float) -> float:
        """Tail probability of the short mean including ``raw`` (1.0 while learning)."""
        if self._n < self.learning:
            return 1.0
        k = len(self._recent_values)
        # the short mean once ``raw`` joins the window (the oldest value leaves when it is full)
        oldest = self._recent_values[0] if k == self.short else None
        total = self._recent.get() * k + raw - (oldest if oldest is not None else 0.0)
        avg = total / (k if oldest is not None else k + 1)
        mean = max(self._history.mean.get(), self.min_mean)
        sd = math.sqrt(max(self._history.get(), self.min_var))
        z = abs(avg - mean) / sd
        return 0.5 * math.erfc(z / math.sqrt(2.0))

    def score(self, raw: float) -> float:
        """The log-scaled likelihood of ``raw`` given what was learned (does not learn)."""
        tail = self._tail(raw)
        if tail <= self.red and self._last_tail <= self.red:
            tail = self.yellow
        return min(max(math.log(max(tail, 1e-10) + 1e-10) / math.log(1e-10), 0.0), 1.0) \
            if self._n >= self.learning else 0.0

    def learn(self, raw: float) -> None:
        self._last_tail = self._tail(raw)
        self._push(self._recent_values, self._recent, raw, self.short)
        if self._n >= self.short - 1:
            self._push(self._history_values, self._history, self._recent.get(), self.long)
        self._n += 1

    @staticmethod
    def _push(values: list[float], stat: Any, value: float, size: int) -> None:
        values.append(value)
        stat.update(value)
        if len(values) > size:
            stat.revert(values.pop(0))


class LikelihoodSeriesDetector:
    """:class:`SeasonalSeriesDetector`'s evidence through :class:`AnomalyLikelihood` (``--series``).

    The raw score is the seasonal detector's prediction error ``|z| / (|z| + alarm_z)`` (its CUSUM
    is left out: the short-window mean already accumulates a sustained shift, and on NAB the CUSUM
    in the raw score cost 3 points); its likelihood, not the raw score, is reported, so a series
    whose residuals are always noisy does not alarm all the time and a quiet one alarms on a modest
    but unusual rise. With ``spatial``, a value beyond the range seen so far (once the seasonal
    detector is warm) by more than ``spatial_tolerance`` of that range scores 1, as NAB's HTM
    detector does.
    """

    name = "likelihood_series"

    def __init__(self, spatial: bool = True, spatial_tolerance: float = 0.05, **likelihood: Any) -> None:
        self.inner = SeasonalSeriesDetector(refractory=0)
        self.likelihood = AnomalyLikelihood(**likelihood)
        self.spatial = spatial
        self.spatial_tolerance = spatial_tolerance
        self._lo = stats.Min()
        self._hi = stats.Max()

    def _raw(self, x: Features) -> float:
        if self.inner._n < self.inner.warmup:
            return 0.0
        z = abs(self.inner._assess(x)[3])
        return z / (z + self.inner.alarm_z)

    def _outside(self, x: Features) -> bool:
        lo, hi = self._lo.get(), self._hi.get()
        if not self.spatial or lo is None or hi is None or hi <= lo:
            return False
        y = self.inner._value(x)
        margin = (hi - lo) * self.spatial_tolerance
        return y > hi + margin or y < lo - margin

    def score_one(self, x: Features) -> Verdict:
        inner = self.inner.score_one(x)
        raw = self._raw(x)
        score = self.likelihood.score(raw)
        if self.inner._n >= self.inner.warmup and self._outside(x):
            score = 1.0
        return Verdict(score=score, expected=inner.expected, anomalous=score >= 0.5,
                       reason=f"likelihood {score:.3f} ({inner.reason})")

    def learn_one(self, x: Features) -> None:
        self.likelihood.learn(self._raw(x))
        y = self.inner._value(x)
        self._lo.update(y)
        self._hi.update(y)
        self.inner.learn_one(x)
