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

    #: what a bucket at or below normal drains at least, as a fraction of ``h``
    DRAIN = 1.0 / 40.0

    def _step(self, inc: float, normal: bool = False) -> float:
        """The CUSUM after a step of ``inc``; a ``normal`` bucket (at or below the band) drains at
        least ``DRAIN * h``: on a sparse key the likelihood step of a normal bucket is tiny, and
        evidence capped at ``2 h`` would linger for half a day after an incident, holding it open
        through the next one."""
        if normal:
            inc = min(inc, -self.DRAIN * self.h)
        return min(max(0.0, self.s + min(inc, self.h / self.min_buckets)), 2.0 * self.h)
