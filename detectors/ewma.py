"""Per-key spend burst detector on River's exponentially weighted running statistics."""

from __future__ import annotations

import math

from river import stats

from detectors.base import Features, Verdict


class EWSpendDetector:
    """Learns a key's normal spend per bucket and flags buckets far above it.

    River's ``stats.EWMean`` / ``stats.EWVar`` track the level and spread of the key's cost per
    bucket (empty buckets included, so sparse keys learn their real rate). A bucket is anomalous
    when it is both *statistically* far above the level (``z >= z_threshold``) and *materially*
    above it (``observed >= ratio_threshold * expected`` and at least ``min_excess_usd`` more), so
    noise on tiny keys and small relative wiggles on big keys never fire. Anomalous buckets are
    learned clipped to the upper band, so a burst does not teach the model that bursts are normal.

    Parameters
    ----------
    fading_factor
        Weight of the newest bucket in the running mean/variance (0.05 ≈ a 20-bucket memory).
    warmup
        Buckets to learn before any verdict can be anomalous.
    z_threshold, ratio_threshold, min_excess_usd
        The three gates above.
    """

    name = "ew_spend"

    def __init__(
        self,
        fading_factor: float = 0.05,
        warmup: int = 30,
        z_threshold: float = 6.0,
        ratio_threshold: float = 2.0,
        min_excess_usd: float = 0.05,
    ) -> None:
        self.fading_factor = fading_factor
        self.warmup = warmup
        self.z_threshold = z_threshold
        self.ratio_threshold = ratio_threshold
        self.min_excess_usd = min_excess_usd
        self._mean = stats.EWMean(fading_factor)
        self._var = stats.EWVar(fading_factor)
        self._seen = 0

    def _spread(self, expected: float) -> float:
        # Floor the spread: a perfectly steady key (variance ~0) must not page on a 1% wiggle.
        return max(math.sqrt(max(self._var.get(), 0.0)), 0.1 * expected, 1e-6)

    def score_one(self, x: Features) -> Verdict:
        observed = float(x["cost"])
        expected = self._mean.get() if self._seen else 0.0
        z = (observed - expected) / self._spread(expected)
        score = 1.0 - math.exp(-max(z, 0.0) / self.z_threshold)
        anomalous = (
            self._seen >= self.warmup
            and z >= self.z_threshold
            and observed >= self.ratio_threshold * expected
            and observed - expected >= self.min_excess_usd
        )
        reason = f"z={z:.1f}, {observed / expected:.1f}x expected" if expected > 0 else f"z={z:.1f}"
        return Verdict(score=score, expected=expected, anomalous=anomalous, reason=reason)

    def learn_one(self, x: Features) -> None:
        value = float(x["cost"])
        if self._seen >= self.warmup:
            expected = self._mean.get()
            value = min(value, expected + self.z_threshold * self._spread(expected))
        self._mean.update(value)
        self._var.update(value)
        self._seen += 1

    def rebase(self, x: Features) -> None:
        """Feedback "expected": the bucket's level is the new normal (the key stays warm)."""
        value = float(x["cost"])
        self._mean = stats.EWMean(self.fading_factor)
        self._var = stats.EWVar(self.fading_factor)
        for _ in range(3):
            self._mean.update(value)
            self._var.update(value)
