"""The one-sided CUSUM step every per-bucket signal shares (cost per request, cached share, model
share, request rate)."""

from __future__ import annotations


class CappedCusum:
    """A one-sided CUSUM ``s`` with threshold ``h`` whose step is capped at ``h / min_buckets`` (a
    shift must last that many buckets to reach ``h``) and whose value at ``2 h`` (evidence beyond
    that is no more alarming, and it drains in bounded time).

    Plain data: floats only.
    """

    def __init__(self, h: float, min_buckets: int) -> None:
        self.h = h
        self.min_buckets = min_buckets
        self.s = 0.0

    def _step(self, inc: float) -> float:
        return min(max(0.0, self.s + min(inc, self.h / self.min_buckets)), 2.0 * self.h)
