"""Request rate on count statistics: the signal that sees a runaway loop on a sparse stream.

A stream of a few requests an hour spends cents: a loop that multiplies its calls by ten adds a
fraction of a cent a minute, inside the spend series' noise (a lone request is 50x an empty
minute) and below any per-minute dollar floor. Its request *count* is decisive: 40 requests in half
an hour where 3 were expected is no chance, under Poisson or under the key's learned overdispersion.
"""

from __future__ import annotations

import math

from detectors.cusum import CappedCusum


class RequestRateCusum(CappedCusum):
    """One-sided CUSUM of the Poisson log-likelihood ratio "requests arrive at ``k`` x the expected
    rate" against "as expected", per bucket ``(n log k - lam (k - 1)) / D``: ``n`` requests where
    ``lam`` were expected, ``D`` the key's overdispersion (>= 1), the step capped at
    ``h / min_buckets`` (a rise must last that many buckets; a 1-5 minute micro-burst does not).

    A run starts when the CUSUM leaves zero and ends when it returns there; it fires
    (:meth:`fired`) at ``h`` when the run's requests are at least ``ratio`` x what was expected
    over it (a 1.5-2.5x busy hour is no loop, however certain) and its extra spend is material.

    Plain data: floats only.
    """

    def __init__(self, k: float = 4.0, h: float = 20.0, min_buckets: int = 5, ratio: float = 4.0) -> None:
        super().__init__(h, min_buckets)
        self.log_k = math.log(k)
        self.k = k
        self.ratio = ratio
        #: the current run: requests, expected requests, extra spend, start time (0 between runs)
        self.n = 0.0
        self.lam = 0.0
        self.excess = 0.0
        self.start = 0.0

    def assess(self, t: float, requests: float, lam: float, disp: float,
               excess: float) -> tuple[float, float, float, float, float]:
        """(CUSUM, run requests, run expected requests, run extra spend, run start) after the bucket
        at ``t`` of ``requests`` where ``lam`` were expected and ``excess`` more than expected was spent."""
        inc = (requests * self.log_k - lam * (self.k - 1.0)) / max(disp, 1.0)
        s = self._step(inc)
        if s <= 0.0:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        return s, self.n + requests, self.lam + lam, self.excess + excess, self.start if self.s > 0.0 else t

    def fired(self, s: float, n: float, lam: float, excess: float, min_excess: float) -> bool:
        return s >= self.h and n >= self.ratio * lam and excess >= min_excess

    def learn(self, s: float, n: float, lam: float, excess: float, start: float) -> None:
        self.s, self.n, self.lam, self.excess, self.start = s, n, lam, excess, start

    def reset(self) -> None:
        self.s = self.n = self.lam = self.excess = self.start = 0.0
