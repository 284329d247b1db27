"""What the detector expected, bucket by bucket, per key: the band the dashboard draws behind
the actual spend line (pure Python, no Kafka).

The engine records every judged bucket of every detector key (:meth:`ExpectedHistory.record`);
the API reads it back for a window (:meth:`ExpectedHistory.points`). History is kept in memory
for ``horizon_s`` and is not persisted: after a restart the band fills in again as buckets close,
while the actual spend (the segment rows) survives the restart.

The band is ``expected ± BAND_WIDTH`` robust standard deviations of the key's recent residuals
(observed − expected, scaled median absolute deviation), floored at zero: the range of spend that
would not have surprised the detector lately.
"""

from __future__ import annotations

from collections import deque
from statistics import median

#: half-width of the band, in robust standard deviations of the residuals
BAND_WIDTH = 3.0
#: the median absolute deviation of a normal sample times this is its standard deviation
MAD_TO_SD = 1.4826


class ExpectedHistory:
    """Per key name: ``(bucket start, observed, expected)`` of the buckets judged within the horizon."""

    def __init__(self, horizon_s: float, bucket_seconds: float) -> None:
        self.size = max(1, int(horizon_s // bucket_seconds))
        self.keys: dict[str, deque[tuple[float, float, float]]] = {}

    def record(self, name: str, start: float, observed: float, expected: float) -> None:
        points = self.keys.get(name)
        if points is None:
            points = self.keys[name] = deque(maxlen=self.size)
        points.append((start, observed, expected))

    def points(self, name: str, since: float) -> list[dict[str, float]]:
        """``[{"t", "expected", "low", "high"}]`` for the buckets starting at or after ``since``."""
        history = self.keys.get(name)
        if not history:
            return []
        width = BAND_WIDTH * spread([observed - expected for _, observed, expected in history])
        return [{"t": start, "expected": round(expected, 6), "low": round(max(0.0, expected - width), 6),
                 "high": round(expected + width, 6)}
                for start, _, expected in history if start >= since]


def spread(residuals: list[float]) -> float:
    """Robust standard deviation: scaled median absolute deviation from the median (0 for < 2 values)."""
    if len(residuals) < 2:
        return 0.0
    centre = median(residuals)
    return MAD_TO_SD * median(abs(r - centre) for r in residuals)
