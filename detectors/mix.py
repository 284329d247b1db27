"""Cost per request: the signal that moves when the *mix* moves, not the volume.

Prompt bloat (tokens per request), a cache regression (cached share) and a slow leak (every token
count) all raise what one request costs while the request rate stays put, and on a stream whose
rate wanders by 30 % a 1.3x cost rise hides in the spend series. Per request it does not: a bucket
of ``n`` requests measures ``log(cost / n)`` with variance ``sigma^2 / n``.
"""

from __future__ import annotations

import math

from detectors.cusum import CappedCusum


class _BandCusum(CappedCusum):
    """What both signals share: an EW band (mean ``m``, per-request overdispersion ``v``) learned
    over non-empty buckets and frozen while the CUSUM ``s`` is above ``freeze`` x its threshold
    ``h``, and the capped CUSUM step (a shift must last ``min_buckets`` buckets).

    Plain data: floats only.
    """

    #: floor of the learned overdispersion (in the signal's units squared)
    V_FLOOR = 0.0

    def __init__(self, h: float, alpha: float, min_buckets: int, warmup: int, freeze: float) -> None:
        super().__init__(h, min_buckets)
        self.alpha = alpha
        self.warmup = warmup
        self.freeze = freeze
        self.m = 0.0
        self.v = 0.0
        self.n = 0

    def _learn(self, x: float, requests: float, s: float, pace: float = 1.0) -> None:
        """Learn the bucket's value ``x`` of ``requests`` requests (at ``pace`` x the rate) unless
        the CUSUM is alarmed."""
        if self.n == 0:
            self.m = x
        elif s <= self.freeze * self.h:
            r = x - self.m
            a = max(1.0 / (self.n + 1), self.alpha) * pace
            self.m += a * r
            self.v += a * (min(requests * r * r, 25.0 * max(self.v, self.V_FLOOR)) - self.v)
        self.n += 1


class _PerRequestCusum(_BandCusum):
    """One-sided CUSUM of the log-likelihood ratio "``total / requests`` is ``delta`` x normal", for
    a per-request quantity whose requests have heavy-tailed sizes (what a request costs, how many
    input tokens it sends).

    * **Normal**: EW mean ``m`` of the debiased ``log(total / requests)`` over non-empty buckets
      (memory about ``1 / alpha`` buckets), frozen while the CUSUM is above ``freeze`` x its
      threshold so a slow leak cannot teach itself in.
    * **Spread** (overdispersion learned per key): EW mean of ``n * (log x - m)^2``; heavy-tailed
      request sizes and hour-to-hour mix wander both land here, so a key whose requests wander needs
      proportionally more evidence.
    * **Evidence** per bucket ``n / sigma^2 * d * (r - d / 2)`` with ``d = log(delta)`` and
      ``r = log x - m``, capped at ``h / min_buckets`` (a rise must last at least that many
      buckets), so a busy key decides in minutes and a sparse one after enough requests.
    * **Materiality**: ``excess``, the extra spend of the current run (summed over the buckets since
      the CUSUM left zero). On a cheap stream a bloat or leak that doubles what a request costs adds
      a fraction of a cent a minute, so "this minute is $0.05 above normal" never holds; "the rise
      has cost $0.05 so far" does, within minutes. The run survives empty buckets (on a stream of a
      request a minute, a third of its minutes are empty, and a bloat ending its run at each had
      never cost $0.05), but not ``max_gap`` of them in a row (the CUSUM stays): evidence carried
      through a silent night must not make the first minute after it material.
    """

    #: extra spend of the current run and the empty buckets since its last request (class
    #: defaults, so state written before them restores)
    excess: float = 0.0
    gap: int = 0
    max_gap: int = 30

    def __init__(self, delta: float, h: float, alpha: float, min_buckets: int, warmup: int, freeze: float) -> None:
        super().__init__(h, alpha, min_buckets, warmup, freeze)
        self.d = math.log(delta)

    def _judge(self, requests: float, total: float, extra: float | None) -> tuple[float, float, float]:
        """(CUSUM after this bucket, per request / normal, extra spend of the run so far), the
        bucket's extra spend being ``extra`` (None: what ``total``, a spend, is above normal)."""
        if requests <= 0:
            return self.s, 1.0, (self.excess if self.gap < self.max_gap else 0.0)
        if total <= 0 or self.n < self.warmup:
            return 0.0, 1.0, 0.0
        r = self._log_mean(total, requests) - self.m
        inc = requests / max(self.v, self.V_FLOOR) * self.d * (r - 0.5 * self.d)
        s = self._step(inc, r <= 0.0)
        ratio = math.exp(min(r, 700.0))
        if extra is None:
            extra = total - total / ratio
        return s, ratio, (self.excess + extra if s > 0.0 else 0.0)

    def learn(self, requests: float, total: float, s: float, excess: float) -> None:
        self.s = s
        self.excess = excess
        self.gap = 0 if requests > 0 else min(self.gap + 1, self.max_gap)  # bounded: only compared with max_gap
        if requests > 0 and total > 0:
            self._learn(self._log_mean(total, requests), requests, s)

    def _log_mean(self, total: float, requests: float) -> float:
        """``log(total / requests)``, debiased for the bucket's size: the log of a mean of ``n``
        heavy-tailed request sizes sits about ``log(1 + cv^2 / n) / 2`` below the log of their
        expectation (``cv^2`` per request, about ``v``), so a normal learned on a sparse night read
        every busy morning as 1.3-1.5x."""
        return safe_log(total / requests) + 0.5 * math.log1p(max(self.v, self.V_FLOOR) / requests)


class CostPerRequestCusum(_PerRequestCusum):
    """What one request costs: prompt bloat, a slow leak, a cache regression, a pricier model."""

    V_FLOOR = 0.02

    def __init__(self, delta: float = 1.25, h: float = 20.0, alpha: float = 0.005, min_buckets: int = 8,
                 warmup: int = 60, freeze: float = 0.3) -> None:
        super().__init__(delta, h, alpha, min_buckets, warmup, freeze)

    def assess(self, requests: float, cost: float) -> tuple[float, float, float]:
        """(CUSUM after this bucket, cost per request / normal, extra spend of the run so far); an
        empty bucket adds nothing."""
        return self._judge(requests, cost, None)


class PromptSizeCusum(_PerRequestCusum):
    """Input tokens per request: prompt bloat where output dominates the price.

    A prompt three times its size on a model whose output tokens cost 8x its input, with long
    answers, raises what a request costs only 1.15x, inside the cost-per-request noise; the input
    tokens per request tripled, which is strong evidence on its own. Its materiality is the extra
    spend the engine measures on the cost side (``extra`` per bucket, summed over the run).
    """

    V_FLOOR = 0.05

    def __init__(self, delta: float = 2.0, h: float = 20.0, alpha: float = 0.005, min_buckets: int = 8,
                 warmup: int = 60, freeze: float = 0.3) -> None:
        super().__init__(delta, h, alpha, min_buckets, warmup, freeze)

    def assess(self, requests: float, input_tokens: float, extra: float) -> tuple[float, float, float]:
        """(CUSUM after this bucket, input tokens per request / normal, extra spend of the run so
        far) with ``extra`` this bucket's spend above normal; an empty bucket adds nothing."""
        return self._judge(requests, input_tokens, extra)


class CachedShareCusum(_BandCusum):
    """One-sided CUSUM of "the cached share of input tokens fell to ``1 - drop`` of its normal".

    A cache regression raises cost per request only 1.1-1.2x on a model with a small cache
    discount, inside the noise of the cost-per-request signal; the cached share itself collapses
    (say 60 % -> 0 %), which is strong evidence on its own.

    * **Band**: EW mean ``m`` of the bucket's cached share and, per key, the overdispersion: EW
      mean of ``n * (share - m)^2`` (``n`` requests), frozen while the CUSUM is above ``freeze`` x
      its threshold so a regression does not become normal.
    * **Evidence** per bucket ``n / v * D * (m - share - D / 2)`` with ``D = drop * m``, capped at
      ``h / min_buckets`` (the share must stay low that many buckets); a key whose normal share is
      under ``min_share`` has nothing to lose and adds none.

    """

    V_FLOOR = 1e-4

    def __init__(self, drop: float = 0.5, h: float = 20.0, alpha: float = 0.005, min_buckets: int = 8,
                 warmup: int = 60, freeze: float = 0.3, min_share: float = 0.1) -> None:
        super().__init__(h, alpha, min_buckets, warmup, freeze)
        self.drop = drop
        self.min_share = min_share

    def assess(self, requests: float, input_tokens: float, cached: float) -> tuple[float, float]:
        """(CUSUM after this bucket, this bucket's cached share); an empty bucket adds nothing."""
        if requests <= 0 or input_tokens <= 0:
            return self.s, self.m
        share = cached / input_tokens
        if self.n < self.warmup or self.m < self.min_share:
            return 0.0, share
        d = self.drop * self.m
        inc = requests / max(self.v, self.V_FLOOR) * d * (self.m - share - 0.5 * d)
        return self._step(inc, share >= self.m), share

    def learn(self, requests: float, input_tokens: float, cached: float, s: float) -> None:
        self.s = s
        if requests > 0 and input_tokens > 0:
            self._learn(cached / input_tokens, requests, s)


class ModelShareCusum(_BandCusum):
    """One-sided CUSUM of "this model's share of its service's requests rose": a model swap.

    The share is over the service's models of one provider (a model and its siblings), from the
    engine's per-minute totals of that group. A service that moves most calls from a cheap model to
    its pricier sibling shows it plainly here (share 0 % -> 80 %), while in spend the new stream has
    no history and the old one only falls.

    * **Band**: EW mean ``m`` of the share over buckets where the group had requests, and the
      overdispersion ``v``: EW mean of ``n * (share - m)^2`` (``n`` = the group's requests, so the
      evidence is count-aware: binomial when ``v = m (1 - m)``), floored at ``V_FLOOR``; frozen
      while the CUSUM is above ``freeze`` x its threshold. A slow drift of the mix is learned.
    * **Evidence** per bucket ``n / v * D * (share - m - D / 2)`` with ``D = lift * (1 - m)`` (the
      share rose by ``lift`` of what the siblings had), capped at ``h / min_buckets``; none when
      ``D < min_rise`` (a service already on this model for the most part cannot swap to it).
    * **Price**: EW means of log cost per request of this model (``own``) and of its siblings
      (``rest``), so the engine raises a swap only towards a pricier model.
    """

    V_FLOOR = 0.05
    #: the model's provider (its group), kept with the state so a restarted engine knows it before
    #: the model's next event (a class default: trackers written before it restore with "")
    provider: str = ""
    #: the last learned bucket's share was far below its band: the service moved calls away from
    #: this model (a class default, so trackers written before it restore)
    away: bool = False

    def __init__(self, lift: float = 0.5, h: float = 20.0, alpha: float = 0.005, min_buckets: int = 8,
                 warmup: int = 60, freeze: float = 0.3, price_alpha: float = 0.02, min_rise: float = 0.2) -> None:
        super().__init__(h, alpha, min_buckets, warmup, freeze)
        self.lift = lift
        self.min_rise = min_rise
        self.price_alpha = price_alpha
        self.own = math.nan
        self.rest = math.nan

    @classmethod
    def sibling_of(cls, source: ModelShareCusum) -> ModelShareCusum:
        """The tracker of a model the service never used: the service's history, at share 0, and
        the price of what it used so far as its siblings' price."""
        new = cls(source.lift, source.h, source.alpha, source.min_buckets, source.warmup, source.freeze,
                  source.price_alpha, source.min_rise)
        new.n, new.m, new.v, new.rest = source.n, 0.0, source.v, source.own
        new.provider = source.provider
        return new

    def assess(self, requests: float, group_requests: float) -> tuple[float, float]:
        """(CUSUM after this bucket, this bucket's share); a bucket with no group requests adds nothing."""
        if group_requests <= 0:
            return self.s, self.m
        share = requests / group_requests
        d = self.lift * (1.0 - self.m)
        if self.n < self.warmup or d < self.min_rise:
            return 0.0, share
        inc = group_requests / max(self.v, self.V_FLOOR) * d * (share - self.m - 0.5 * d)
        return self._step(inc), share

    def learn(self, requests: float, cost: float, group_requests: float, group_cost: float, s: float) -> None:
        self.s = s
        if group_requests <= 0:
            return
        share = requests / group_requests
        # far below and beyond the count's noise (a minor model's empty minute is no swap)
        self.away = (self.n >= self.warmup and share < self.m - 0.5 * self.lift
                     and (self.m - share) * math.sqrt(group_requests / max(self.v, self.V_FLOOR)) >= 3.0)
        # far outside the band (a swap away from this model, or its end) is learned at a tenth of
        # the pace, so a swap of hours does not teach the model's return as a rise
        self._learn(share, group_requests, s, 0.1 if abs(share - self.m) > 0.5 * self.lift else 1.0)
        if requests > 0 and cost > 0:
            self.own = _ew(self.own, safe_log(cost / requests), self.price_alpha)
        if group_requests > requests and group_cost > cost:
            self.rest = _ew(self.rest, safe_log((group_cost - cost) / (group_requests - requests)), self.price_alpha)

    def price_ratio(self, requests: float, cost: float) -> float:
        """This bucket's cost per request over the siblings' usual one (0 when either is unknown)."""
        if requests <= 0 or cost <= 0 or math.isnan(self.rest):
            return 0.0
        return math.exp(min(safe_log(cost / requests) - self.rest, 700.0))  # no overflow on absurd prices


def safe_log(x: float) -> float:
    """``log`` that takes a cost per request rounded to 0 (a denormal ``cost_usd`` over several
    requests) as the smallest positive float instead of raising."""
    return math.log(max(x, 5e-324))


def _ew(mean: float, x: float, alpha: float) -> float:
    return x if math.isnan(mean) else mean + alpha * (x - mean)
