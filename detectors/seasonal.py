"""Seasonal per-key spend detector: hour-of-day x day-of-week baseline, CUSUM, recurring-spike memory.

One closed bucket (one minute) of one key at a time, pure Python floats in small lists so that a
key's state pickles to ~2-3 KiB (100k keys ~ 300 MB) and scoring costs a few microseconds.
"""

from __future__ import annotations

import math

from detectors.base import Features, Verdict
from detectors.counts import RequestRateCusum
from detectors.mix import CachedShareCusum, CostPerRequestCusum, ModelShareCusum, PromptSizeCusum, safe_log

DAY = 86400.0
HOUR = 3600.0
_LOG2 = math.log(2.0)
WEEK_SLOTS = 42  # 4-hour blocks of the week
WEEK_SLOT_S = 4 * HOUR
WEEK_S = 7 * DAY
#: the largest squared relative residual a warm-up bucket teaches the spread
WARMUP_R2_CAP = 4.0
_WEEKEND_SLOT = 5 * DAY / WEEK_SLOT_S  # the week position (in blocks from Monday) where Saturday starts
_SUNDAY_NOON_SLOT = 6.5 * DAY / WEEK_SLOT_S  # ... and where Sunday 12:00 UTC starts
_MONDAY = 4 * DAY  # epoch 0 was a Thursday: Monday 00:00 UTC is 4 days later (mod 7 days)
DISP_ALPHA = 1 / 720  # the request-count overdispersion's memory: half a day of buckets
_NEVER = 1e18  # a memory record that does not mask (yet)


class SeasonalSpendDetector:
    """Learns a key's normal spend per minute as ``level x hour-of-day shape x day-of-week factor``.

    * **Baseline** (Holt-Winters style, multiplicative, updated once per bucket):
      ``expected = L * S[hour] * W[weekday]``; ``S`` is 24 hour-of-day factors linearly interpolated
      between slot centres, ``W`` 42 factors of 4-hour blocks of the week, ``L`` a slow level (memory
      ~3 days). Every learner starts as a running mean, so a new key is useful after ``warmup``
      buckets. ``W`` is used only once a week of history is seen; before that a weekday has no
      factor and a Saturday or Sunday (UTC) the weekend's spend so far over its weekday expectation.
    * **Spread**: EW variance of the *relative* residual ``cost / expected - 1`` per hour slot
      (a global one while a slot is cold), floored at ``rel_spread_floor``; residuals beyond
      4 sigma are trimmed, so a burst or an outage does not blind the slot.
    * **Fast path** (bursts): ``z >= z_threshold`` and ``cost >= ratio_threshold x expected`` and
      at least ``min_excess_usd`` more, and more requests than the key's count noise allows: the
      Anscombe residual of the count against the expected count is ``>= count_z x sqrt(D)``, ``D``
      the key's learned overdispersion (EW mean of the squared residual over normal buckets,
      trimmed at 4 sigma, floored at 1 = Poisson), so a bursty sparse key is not judged as Poisson.
    * **Slow path** (level shifts, ramps, cost-per-request jumps): a one-sided CUSUM of ``z``
      of the log-likelihood ratio of a ``cusum_delta`` x shift (per-bucket increment capped at 4) reaching ``cusum_h`` while the bucket
      is ``>= cusum_ratio x expected`` and ``min_excess_usd`` above it; enabled after one day of
      history (the daily shape must be known first).
    * **Recurring-spike memory** (benign nightly batch jobs): a material spike (``>= memory_ratio x``
      expected) is remembered by 5-minute bin of the day (at most ``memory_size`` bins). The same
      bin (+-1) 6 h to 3.5 days later expects that spike again, so a job that runs at the same
      time every night pages only the first night. A burst is never masked by itself (a record is
      usable only after 6 h). A spike that paged on a key with a day of history (a runaway loop, a
      retry storm) masks only once it has been seen on a second day, so its recurrence the next
      day at the same hour pages again; one learned without an alert, or in the key's first day
      (when a nightly job may page as new), masks from the next day. Records are in weekday
      terms (a job adds its spend whatever the day: :meth:`_memory`).
    * **Learning** is robust: values are clipped to ``[expected - 1.5 sigma, expected + 3 sigma]``
      (``+ 1 sigma`` while the CUSUM is alarmed or the bucket anomalous), so a burst, a ramp or an
      outage does not become normal quickly; when no alarm builds, the top is at least the spend of
      the most requests the count's noise explains (a sparse key's lone request is no spike).
    * **Driver**: cost = requests x tokens/request x cost/token; each factor is compared with its
      learned normal (EW means of non-empty buckets) and the one that moved most is named (cache-hit
      ratio when cost per token rose while the cached share of input fell).
    """

    name = "seasonal_spend"
    #: (features, assessment) of the bucket score_one just saw, for learn_one; None once learned
    #: (a class default, so detectors pickled before it existed restore)
    _scored: tuple[Features, tuple] | None = None
    #: overdispersion of the request count (variance of its Anscombe residual; 1 = Poisson) and its
    #: sample weight: class defaults, so state written before they existed restores as Poisson
    _disp: float = 1.0
    _disp_n: float = 0.0
    disp_alpha: float = DISP_ALPHA
    #: a bucket is learned unclipped up to the spend of this many sigmas of its request count's noise
    clip_count_z: float = 2.0
    #: first week: a weekday whose calm buckets (at least ``holiday_buckets``) spent at most this
    #: share of the weekday expectation is a holiday, judged by itself so far
    holiday_ratio: float = 0.5
    holiday_buckets: int = 120
    #: time of the first bucket (None before it); -inf for state written before it existed, whose
    #: day-of-week factors have already learned
    _t0: float | None = -math.inf
    #: first week: EW spend of weekend buckets, EW of their weekday expectation (level x shape), weight
    _kind_v: float = 0.0
    _kind_e: float = 0.0
    _kind_n: float = 0.0
    #: first week: per hour of day (UTC), the highest mean spend per bucket of a previous weekday's
    #: calm buckets in that hour, and the hour being summed ([hours since epoch, spend, buckets]);
    #: None before the first (and in state written before they existed)
    _env: list[float] | None = None
    _env_acc: list[float] | None = None
    #: first week, weekdays: the UTC day being summed, its calm buckets' spend, their weekday
    #: expectation and their count (a holiday: :meth:`_dayf`); None before (and in older state)
    _today: list[float] | None = None
    #: the request-count path (a loop on a sparse stream); None in state written before it existed
    _rate: RequestRateCusum | None = None
    #: the prompt-size path (input tokens per request); None in state written before it existed
    _prompt: PromptSizeCusum | None = None
    #: the key's share of its service's requests per provider (a model swap), judged by the engine
    #: with the group's per-minute totals; set on ``model x service`` keys, None elsewhere (and in
    #: state written before it existed)
    price_mix: ModelShareCusum | None = None
    #: a sparse key's materiality (``_material``); class defaults, so state written before them restores
    material_buckets: float = 30.0
    min_material_usd: float = 0.003
    material_requests: float = 10.0

    def __init__(
        self,
        level_alpha: float = 1 / 4320,
        slot_alpha: float = 0.02,
        week_alpha: float = 1 / 480,
        var_alpha: float = 0.02,
        warmup: int = 30,
        season_warmup: int = 1440,
        z_threshold: float = 6.0,
        ratio_threshold: float = 3.5,
        min_excess_usd: float = 0.05,
        cusum_delta: float = 2.0,
        cusum_h: float = 40.0,
        cusum_ratio: float = 1.5,
        rel_spread_floor: float = 0.05,
        memory_size: int = 32,
        memory_ratio: float = 2.0,
        memory_bin_s: float = 300.0,
        use_cusum: bool = True,
        use_memory: bool = True,
        count_z: float = 4.5,
        settle_frac: float = 0.1,
        hold_requests: float = 30.0,
        max_hold: int = 60,
        mix_delta: float = 1.25,
        mix_h: float = 20.0,
        mix_ratio: float = 1.15,
        prompt_ratio: float = 1.5,
        use_mix: bool = True,
        memory_count_z: float = 3.0,
        empty_requests: float = 3.0,
        outside_rate: float = 0.1,
        disp_alpha: float = DISP_ALPHA,
    ) -> None:
        self.disp_alpha = disp_alpha
        self._disp = 1.0
        self._disp_n = 0.0
        self._t0 = None
        self._kind_v = 0.0
        self._kind_e = 0.0
        self._kind_n = 0.0
        self.memory_count_z = memory_count_z
        self.empty_requests = empty_requests
        self.outside_rate = outside_rate
        #: the cost-per-request path; the engine turns it off on keys that are mixtures of finer
        #: keys it also judges (a model's cost per request moves with its services' daily mix)
        self.use_mix = use_mix
        self.mix_ratio = mix_ratio
        self._mix = CostPerRequestCusum(delta=mix_delta, h=mix_h)
        #: the cached-share path (same keys as the cost-per-request path): a cache regression
        self._cache = CachedShareCusum(h=mix_h)
        #: the prompt-size path (same keys): prompt bloat on a stream whose cost is mostly output
        self.prompt_ratio = prompt_ratio
        self._prompt = PromptSizeCusum(h=mix_h)
        self._rate = RequestRateCusum()
        self.settle_frac = settle_frac
        self.hold_requests = hold_requests
        self.max_hold = max_hold
        self.count_z = count_z
        self.level_alpha = level_alpha
        self.slot_alpha = slot_alpha
        self.week_alpha = week_alpha
        self.var_alpha = var_alpha
        self.warmup = warmup
        self.season_warmup = season_warmup
        self.z_threshold = z_threshold
        self.ratio_threshold = ratio_threshold
        self.min_excess_usd = min_excess_usd
        self.cusum_delta = cusum_delta
        self.cusum_h = cusum_h
        self.cusum_ratio = cusum_ratio
        self.rel_spread_floor = rel_spread_floor
        self.memory_size = memory_size
        self.memory_ratio = memory_ratio
        self.memory_bin_s = memory_bin_s
        self.use_cusum = use_cusum
        self.use_memory = use_memory
        self._n = 0
        self._level = 0.0
        self._shape = [1.0] * 24
        self._shape_n = [0.0] * 24
        self._week = [1.0] * WEEK_SLOTS
        self._week_n = [0.0] * WEEK_SLOTS
        self._var = [0.0] * 24
        self._var_n = [0.0] * 24
        self._gvar = 0.0
        self._cusum = 0.0
        #: bin -> [t_last, peak_last, t_prev, peak_prev, days seen, masks from] (records written
        #: before "masks from" existed have 5 items and mask as soon as they are 6 h old)
        self._mem: dict[int, list[float]] = {}
        #: EW normal of cost/request, tokens/request, cost/token, cached share of input; count
        self._ref = [0.0, 0.0, 0.0, 0.0]
        self._ref_n = 0

    # -- the model -----------------------------------------------------------------------
    def _slots(self, t: float) -> tuple[int, int, float, float]:
        pos = (t % DAY) / HOUR - 0.5
        base = math.floor(pos)
        f = pos - base
        return int(base) % 24, int(base + 1) % 24, f, ((t - _MONDAY) % WEEK_S) / WEEK_SLOT_S - 0.5

    def _weekf(self, wpos: float) -> tuple[float, int, int, float]:
        base = math.floor(wpos)
        g = wpos - base
        w0, w1 = int(base) % WEEK_SLOTS, int(base + 1) % WEEK_SLOTS
        return self._week[w0] * (1.0 - g) + self._week[w1] * g, w0, w1, g

    def _first_week(self, t: float) -> bool:
        return self._t0 is None or t - self._t0 < WEEK_S

    def _dayf(self, t: float, wpos: float) -> float:
        """The day-of-week factor. A 4-hour block seen once is no normal (a running mean of its first
        minutes), so before a week of history there is none, except that a weekend day is judged by
        the weekend so far (a business key drops to a fifth; learned into the hour-of-day shape, that
        drop would page all of the first Monday morning)."""
        if not self._first_week(t):
            return self._weekf(wpos)[0]
        if not _weekend(wpos):
            return self._holiday(t)
        if self._kind_e <= 0.0:
            return 1.0
        return max(self._kind_v / self._kind_e, 0.05)

    def _holiday(self, t: float) -> float:
        """A first-week weekday's factor: 1, unless the day so far (``holiday_buckets`` calm buckets
        or more) spent at most ``holiday_ratio`` of its weekday expectation: a holiday, judged like a
        weekend by the day so far (the bar stays the weekday's: :meth:`_bar`). Judged at the
        weekday's level, a business key's Monday holiday (a fifth of it) was learned as minute after
        minute of outliers and its spread doubled (tuning seed 18: relative sigma 0.48, not 0.23)."""
        today = self._today
        if today is None or today[0] != t // DAY or today[3] < self.holiday_buckets or today[2] <= 0.0:
            return 1.0
        ratio = today[1] / today[2]
        return max(ratio, 0.05) if ratio <= self.holiday_ratio else 1.0

    def _learn_today(self, t: float, spend: float, base: float) -> None:
        day = t // DAY
        today = self._today
        if today is None or today[0] != day:
            today = self._today = [day, 0.0, 0.0, 0.0]
        today[1] += spend
        today[2] += base
        today[3] += 1.0

    def _bar(self, t: float, wpos: float, eff: float, h0: int, h1: int, f: float) -> float:
        """What a rise is measured against: the expectation and, in the first week, on weekdays and
        from Sunday noon UTC, at least the weekday expectation and the spend an earlier weekday had
        in this hour (:meth:`_learn_envelope`).

        A key's weekend is its own time zone's: from Sunday noon UTC it is Monday in Asia and soon
        in Europe, and a business key back at its weekday level, judged by the weekend's factor,
        paged at 5x (on the tuning seeds at Sunday 15:00, 18:30 and 23:00 UTC: UTC+9, +5.5, +1).
        And the level of a young key is a running mean of everything it saw: a Friday holiday and
        the weekend halve it, and the Monday back at Thursday's spend paged as a sustained rise for
        hours. Learning keeps the weekend's factor and the level (a key in UTC or west of it is
        still in its weekend), so only the alert is held to the weekday level."""
        if not self._first_week(t):
            return eff
        if _weekend(wpos):
            return max(eff, eff / self._dayf(t, wpos)) if wpos + 0.5 >= _SUNDAY_NOON_SLOT else eff
        env = self._env  # an hour's mean sits at its middle: interpolated like the shape
        return eff if env is None else max(eff, env[h0] * (1.0 - f) + env[h1] * f)

    def _state(self, t: float) -> tuple:
        """expected, relative sigma, memory multiplier, slot info for bucket time ``t``."""
        h0, h1, f, d = self._slots(t)
        shape = self._shape[h0] * (1.0 - f) + self._shape[h1] * f
        day = self._dayf(t, d)
        expected = self._level * shape * day if self._n else 0.0
        if self._var_n[h0] >= 20 and self._var_n[h1] >= 20:
            var = self._var[h0] * (1.0 - f) + self._var[h1] * f
        else:
            var = self._gvar
        rel = max(math.sqrt(max(var, 0.0)), self.rel_spread_floor)
        mult = self._memory(t, day) if self.use_memory and self._mem else 1.0
        return expected, rel, mult, h0, h1, f, d

    def _memory(self, t: float, day: float) -> float:
        """The multiplier the remembered spikes of this time of day expect. A record is a ratio in
        weekday terms (``day`` = 1) and a job adds its spend whatever the day: on a day at a fifth of
        the weekday (a weekend, a holiday) the same job is five times the ratio over the day's own
        expectation. Kept as a plain ratio, a nightly job learned on Thursday paged on Saturday."""
        b = int((t % DAY) // self.memory_bin_s)
        nbins = int(DAY // self.memory_bin_s)
        best = 1.0
        for k in (b - 1, b, b + 1):
            rec = self._mem.get(k % nbins)
            if rec is None or (len(rec) > 5 and t < rec[5]):
                continue
            age = t - rec[0]
            if 21600.0 < age <= 302400.0:
                best = max(best, rec[1])
            else:
                age = t - rec[2]
                if 21600.0 < age <= 302400.0:
                    best = max(best, rec[3])
        return 1.0 + (best - 1.0) / max(day, 0.05)

    def _material(self) -> float:
        """The extra spend a rise must have cost to be news: ``min_excess_usd``, or on a key that
        spends less than that in ``material_buckets`` ordinary buckets, that much, but at least
        ``material_requests`` of its requests and ``min_material_usd``. A stream of a request a
        minute on a cheap model spends a fraction of a cent an hour: a retry storm of two hundred
        calls costs it a cent or two, news to its owner, that never reaches five cents. The
        request floor keeps one lone request at night, at 10^5 x a near-zero expectation, quiet."""
        cpr = self._ref[0] if self._ref_n >= 10 else self.min_excess_usd
        return min(self.min_excess_usd, max(self.min_material_usd, self._level * self.material_buckets,
                                            cpr * self.material_requests))

    def _assess(self, x: Features) -> tuple:
        t = float(x["t"])
        y = float(x["cost"])
        expected, rel, mult, h0, h1, f, d = self._state(t)
        eff = expected * mult
        spread = max(eff * rel, expected * 0.25 * (mult - 1.0), 1e-6)
        z = (y - eff) / spread
        bar = self._bar(t, d, eff, h0, h1, f)
        # CUSUM of the log-likelihood ratio "spend is cusum_delta x expected" vs "as expected"
        # under a Gaussian relative noise of sd ``rel``: only buckets above the midpoint
        # 1 + (delta - 1) / 2 add evidence, so ordinary day-to-day level wander never accumulates.
        # Measured against the bar: spend an earlier weekday had is no evidence of a rise.
        if eff > 0:
            dm1 = self.cusum_delta - 1.0
            inc = dm1 / (rel * rel) * (y / bar - 1.0 - 0.5 * dm1)
            if y <= bar:  # a bucket at or below normal drains at least h/20: on a noisy sparse key the
                inc = min(inc, -self.cusum_h / 20.0)  # likelihood step is tiny and evidence would linger for hours
            cusum = min(max(0.0, self._cusum + min(inc, 4.0)), 2.0 * self.cusum_h)
        else:
            cusum = 0.0
        excess = y - eff
        material = self._material()
        fast = (
            self._n >= self.warmup
            and z >= self.z_threshold
            and self._count_evidence(x, eff)
            and y >= self.ratio_threshold * bar
            and excess >= material
        )
        slow = (
            self.use_cusum
            and self._n >= self.season_warmup
            and cusum >= self.cusum_h
            and y >= self.cusum_ratio * bar
            and excess >= material
        )
        req = float(x.get("requests", 0.0) or 0.0)
        mix_s, mix_r, mix_x = self._mix.assess(req, y)
        mixed = (
            self.use_mix
            and mix_s >= self._mix.h
            and mix_r >= self.mix_ratio
            and mix_x >= material  # what the rise has cost so far, not this minute alone
        )
        tin = float(x.get("input_tokens", 0.0) or 0.0)
        cached = float(x.get("cached_input_tokens", 0.0) or 0.0)
        cache_s, share = self._cache.assess(req, tin, cached)
        if self._prompt is None:
            self._prompt = PromptSizeCusum(h=self._mix.h)
        # a mixture of finer keys has no prompt size of its own (its services' sizes differ)
        tok = self._prompt.assess(req, tin, y - y / mix_r if mix_r > 0 else 0.0) if self.use_mix else (0.0, 1.0, 0.0)
        if req <= 0 and self._ref_n >= 10 and self._ref[0] > 0 and eff / self._ref[0] >= self.empty_requests:
            # an empty minute where several requests were expected: the stream stopped, so what a
            # request costs is no longer news (an incident on a stream that goes silent settles)
            mix_s = cache_s = mix_x = 0.0
            tok = (0.0, 1.0, 0.0)
        # input tokens per request well above their band, and the rise has cost enough
        prompted = (self.use_mix and tok[0] >= self._prompt.h and tok[1] >= self.prompt_ratio
                    and tok[2] >= material)
        # the cached share stays far below its band and a request costs more than normal
        uncached = self.use_mix and cache_s >= self._cache.h and mix_r > 1.0
        rate = self._rate_run(x, req, bar, y - bar)
        counted = self._n >= self.season_warmup and self._rate.fired(*rate[:4], material)
        return (t, y, expected, rel, mult, eff, z, cusum, fast, slow, h0, h1, f, d, req, mix_s, mix_r,
                mixed or uncached or prompted, tin, cached, cache_s, share, uncached, mix_x, rate, counted, tok,
                prompted)

    def _rate_run(self, x: Features, req: float, bar: float, excess: float) -> tuple[float, ...]:
        """The request-count CUSUM's run after this bucket (all zero before the cost per request,
        which turns the spend bar into expected requests, is known, or without request counts)."""
        cpr = self._ref[0]
        if self._rate is None:
            self._rate = RequestRateCusum()
        if x.get("requests") is None or self._ref_n < 10 or cpr <= 0:
            return 0.0, 0.0, 0.0, 0.0, 0.0
        return self._rate.assess(float(x["t"]), req, bar / cpr, self._disp, excess)

    # -- protocol ------------------------------------------------------------------------
    def score_one(self, x: Features) -> Verdict:
        assessed = self._assess(x)
        # the engine learns the bucket it just scored: learn_one reuses this (x is held, so its id is not reused)
        self._scored = (x, assessed)
        t, y, expected, rel, mult, eff, z, cusum, fast, slow, *_, mix_s, mix_r, mixed = assessed[:18]
        cache_s, share, uncached = assessed[20:23]
        (rate_s, run_n, run_lam, *_), counted, (tok_s, tok_r, _), prompted = assessed[24:28]
        score = max(1.0 - math.exp(-max(z, 0.0) / self.z_threshold), 1.0 - math.exp(-cusum / self.cusum_h),
                    1.0 - math.exp(-max(mix_s, cache_s, tok_s) / self._mix.h), 1.0 - math.exp(-rate_s / self._rate.h))
        anomalous = fast or slow or mixed or counted
        spend = cusum <= self.settle_frac * self.cusum_h and y <= eff * (1.0 + 2.0 * rel)
        volume = spend and rate_s <= self.settle_frac * self._rate.h
        # a mixture of finer keys judges no per-request signal (use_mix off): nothing of them to settle
        mix = spend and (not self.use_mix or (mix_s <= self.settle_frac * self._mix.h
                                              and cache_s <= self.settle_frac * self._cache.h
                                              and tok_s <= self.settle_frac * self._mix.h))
        settled_causes = ("volume",) * volume + ("mix",) * mix
        hold = self._hold(eff)
        if not anomalous:  # the reason is read only on alerts: not formatted for every normal bucket
            return Verdict(score=min(max(score, 0.0), 1.0), expected=eff, anomalous=False, settled=volume and mix,
                           settled_causes=settled_causes, hold=hold)
        ratio = f", {y / eff:.1f}x expected" if eff > 0 else ""
        driver = self._driver(x, y, eff)
        score = min(max(score, 0.0), 1.0)
        mix = None
        if uncached:
            normal = self._cache.m
            mix = (f"cached share of input {normal:.0%} -> {share:.0%}: cusum={cache_s:.1f}{ratio}",
                   f"cache-hit ratio {normal:.0%} -> {share:.0%} (cost per request {mix_r:.2f}x normal)")
        elif prompted:
            mix = (f"input tokens per request {tok_r:.1f}x normal: cusum={tok_s:.1f}{ratio}",
                   driver or f"input tokens per request {tok_r:.1f}x normal")
        elif mixed:
            mix = (f"cost per request {mix_r:.2f}x normal: cusum={mix_s:.1f}{ratio}", driver)
        volume = None
        if fast:
            volume = (f"z={z:.1f}{ratio}", driver)
        elif slow:
            volume = (f"sustained rise: cusum={cusum:.1f}, z={z:.1f}{ratio}", driver)
        elif counted:
            volume = (f"request rate {run_n / run_lam:.1f}x expected: {run_n:.0f} requests where {run_lam:.1f}"
                      f" were expected, cusum={rate_s:.1f}{ratio}", driver or f"requests {run_n / run_lam:.1f}x normal")
        # the spend paths speak first, but a request-count run says less than what a request costs
        first, cause, other = (mix, "mix", volume) if mix and not (fast or slow) else (volume, "volume", mix)
        # the requests did not rise (or not yet: a run's first minute of many times the requests
        # expected is a rise already, so a storm minutes after a bloat resolved does not reopen it)
        if rate_s < 0.5 * self._rate.h and not (rate_s > 0.0 and run_n >= self._rate.ratio * run_lam):
            # spend rose with what a request costs: one cause, the mix; or the cause is not known yet
            cause, other = ("mix" if mix else ""), None
        reason, driver = first if first is not None else ("", driver)  # (one of them fired)
        if mult > 1.0:
            reason += f" (recurring spike {mult:.1f}x expected at this time of day)"
        side = None if other is None else Verdict(
            score=score, expected=eff, anomalous=True, reason=other[0], driver=other[1],
            cause="volume" if cause == "mix" else "mix")
        # what this bucket says of another cause's open incident (lifecycle): settled only if its
        # own evidence is gone, and after the key's hold
        return Verdict(score=score, expected=eff, anomalous=True, reason=reason, driver=driver, cause=cause, side=side,
                       settled=False, settled_causes=settled_causes, hold=hold)

    def learn_one(self, x: Features) -> None:
        scored, self._scored = self._scored, None
        assessed = scored[1] if scored is not None and scored[0] is x else self._assess(x)
        (t, y, expected, rel, mult, eff, z, cusum, fast, slow, h0, h1, f, d, req, mix_s, _, mixed,
         tin, cached, cache_s, _, _, mix_x, rate, counted, tok, _) = assessed
        anomalous = fast or slow or mixed or counted
        self._cusum = cusum
        run_known = self._run_remembered()
        self._rate.learn(*rate)
        self._mix.learn(req, y, mix_s, mix_x)
        self._cache.learn(req, tin, cached, cache_s)
        if self.use_mix:
            self._prompt.learn(req, tin, tok[0], tok[2])
        # recurring-spike memory: remember material spikes by time of day
        week = self._dayf(t, d)
        if self.use_memory and self._ref_n >= 10 and expected > 0:
            r0 = y / expected
            # only a spike with more requests than chance allows: on a sparse key, noise spikes
            # would fill the memory and evict the nightly job before its second night
            if (r0 >= self.memory_ratio and y - expected >= self._material()
                    and self._count_evidence(x, expected, self.memory_count_z)):
                self._remember(t, 1.0 + (r0 - 1.0) * week, anomalous and self._n >= self.season_warmup)
            if self._run_remembered():
                # a sparse key's job shows only as a run of the request count: once it is, every bin
                # of the run so far (at most the memory's size of them, the latest), then its own
                run_n, run_lam, run_start = rate[1], rate[2], rate[4]
                first = t if run_known else max(run_start, t - (self.memory_size - 1) * self.memory_bin_s)
                for b_t in range(int(first), int(t) + 1, int(self.memory_bin_s)):
                    self._remember(float(b_t), 1.0 + (run_n / run_lam - 1.0) * week,
                                   counted and self._n >= self.season_warmup)
        value = y / mult
        alarmed = (anomalous or cusum >= 0.5 * self.cusum_h or max(mix_s, cache_s, tok[0]) >= 0.5 * self._mix.h
                   or rate[0] >= 0.5 * self._rate.h)
        outside = False
        if self._n:
            guard = 1.0 if alarmed else 3.0
            hi = expected * (1.0 + guard * rel)
            if not alarmed:  # a sparse key's lone requests are normal, not spikes to clip
                hi = max(hi, self._count_hi(expected))
            lo = expected * (1.0 - 1.5 * rel)  # an outage or traffic moved away is learned slowly too
            if self._n >= self.warmup:
                outside = self._n >= self.season_warmup and not lo <= value <= hi
                value = min(max(value, lo), hi)
        # out of band (an incident, traffic moved away) the daily and weekly shape learn at
        # ``outside_rate`` of their pace: minute after minute of clipped values would otherwise
        # drag those hours' shape (at slot_alpha per minute) and the next normal day would page
        pace = self.outside_rate if outside else 1.0
        # relative residual variance, Huber-clipped
        if expected > 0:
            resid = y / eff - 1.0 if eff > 0 else 0.0
            # during warm-up the level is young (a key's first bucket is usually a sliver of a
            # minute: 30x residuals follow it), so a residual counts as at most 2 (3x expected);
            # uncapped, one partial first bucket set the spread to ~3.6 for hours
            r2 = resid * resid if self._n >= self.warmup else min(resid * resid, WARMUP_R2_CAP)
            # trimmed: a residual beyond 4 sigma (a burst, an outage) says nothing about the noise
            # of normal minutes, and learning it would let one long incident blind the key.
            trimmed = self._n >= self.warmup and r2 > 16.0 * rel * rel
            a = max(1.0 / (self._n + 1), 0.01)
            if not trimmed:
                self._gvar += a * (r2 - self._gvar)
            for h, w in (() if trimmed else ((h0, 1.0 - f), (h1, f))):
                if w <= 0.0:
                    continue
                n = self._var_n[h]
                a = w * max(1.0 / (n + 1.0), self.var_alpha)
                self._var[h] += a * (r2 - self._var[h])
                self._var_n[h] = n + w
        # baseline
        n = self._n
        shape = self._shape[h0] * (1.0 - f) + self._shape[h1] * f
        if n == 0:
            self._level = value
            self._t0 = t
        else:
            a = max(1.0 / (n + 1), self.level_alpha)
            self._level += a * (value / max(shape * week, 1e-3) - self._level)
        level = self._level
        if level > 0:
            target = value / (level * week)
            for h, w in ((h0, 1.0 - f), (h1, f)):
                if w <= 0.0:
                    continue
                k = self._shape_n[h]
                a = pace * w * max(1.0 / (k + 2.0), self.slot_alpha)  # the prior 1.0 counts as one sample
                self._shape[h] = max(self._shape[h] + a * (target - self._shape[h]), 0.05)
                self._shape_n[h] = k + w
            base = max(level * max(shape, 1e-3), 5e-324)  # a denormal level times a shape rounds to 0
            self._learn_week(d, value / base, pace)
            # a minute the memory expects a spike in says nothing of the day's factor: spend over
            # the multiplier, where the spike did not come, taught a weekend a quarter of its level;
            # nor does one whose service moved its calls to another model (the weekend's first
            # hours inside a model swap taught it 0.56 and the swap's end paged all of Saturday)
            moved = self.price_mix is not None and self.price_mix.away
            if not alarmed and self._first_week(t) and mult == 1.0 and not moved:
                if _weekend(d):
                    self._learn_weekend(y, base, pace)
                else:
                    self._learn_today(t, y, base)
        if self._first_week(t):
            self._learn_envelope(t, y, not alarmed)
        # normal of the spend drivers and of the count's spread (normal buckets only)
        if not anomalous:
            self._learn_disp(req, eff)
            self._learn_ref(x)
        self._n = n + 1

    # -- helpers -------------------------------------------------------------------------
    def _learn_week(self, wpos: float, target: float, pace: float) -> None:
        """Learn the 4-hour-block factors of the week (used once a week of history is seen)."""
        _, w0, w1, g = self._weekf(wpos)
        for i, w in ((w0, 1.0 - g), (w1, g)):
            if w <= 0.0:
                continue
            k = self._week_n[i]
            a = pace * w * max(1.0 / (k + 2.0), self.week_alpha)
            self._week[i] = max(self._week[i] + a * (target - self._week[i]), 0.05)
            self._week_n[i] = k + w

    def _learn_weekend(self, spend: float, base: float, pace: float) -> None:
        """First week: the weekend's factor as a ratio of EW sums (spend over the weekday expectation)
        of calm buckets, so the busy hours decide it rather than sparse night minutes, and of unclipped
        spend (clipped at a band that follows the factor, a sparse key's factor sinks to its floor).
        Out of band it learns at ``outside_rate``: traffic moved away is not a weekend."""
        if self._kind_e <= 0.0:  # the prior factor 1 counts as one bucket
            self._kind_v = self._kind_e = base
        a = pace * max(1.0 / (self._kind_n + 2.0), self.week_alpha)
        self._kind_v += a * (spend - self._kind_v)
        self._kind_e += a * (base - self._kind_e)
        self._kind_n += 1.0

    def _run_remembered(self) -> bool:
        """Whether the request-count run (as last learned) is one memory records: half-way to its
        threshold at ``memory_ratio`` x the requests expected."""
        r = self._rate
        return r.s >= 0.5 * r.h and r.n >= self.memory_ratio * r.lam

    def _learn_envelope(self, t: float, y: float, calm: bool) -> None:
        """Sum the calm buckets of the current hour; when it ends, on a weekday (UTC) with at least
        half an hour of them, its mean raises that hour's envelope (:meth:`_bar`)."""
        hour = float(t // HOUR)
        acc = self._env_acc
        if acc is None or acc[0] != hour:
            if acc is not None and acc[2] >= 30 and not _weekend(self._slots(acc[0] * HOUR)[3]):
                env = self._env if self._env is not None else [0.0] * 24
                h = int(acc[0]) % 24
                env[h] = max(env[h], acc[1] / acc[2])
                self._env = env
            acc = self._env_acc = [hour, 0.0, 0.0]
        if calm:
            acc[1] += y
            acc[2] += 1.0

    def rebase(self, x: Features) -> None:
        """Feedback "expected": scale the level so the expectation at ``x["t"]`` is ``x["cost"]``
        (the daily and weekly shape are kept) and clear the slow-shift evidence."""
        expected = self._state(float(x["t"]))[0]
        cost = float(x["cost"])
        if expected > 0 and cost > 0:
            self._level *= cost / expected
        elif cost > 0:
            self._level = cost
        self._cusum = 0.0
        if self._rate is not None:
            self._rate.reset()
        self._mix.s = self._mix.excess = 0.0
        self._cache.s = 0.0

    def _hold(self, eff: float) -> int:
        """Quiet buckets an incident needs before it resolves: enough to expect ``hold_requests``
        requests (3 on a busy key, up to ``max_hold`` on a sparse one)."""
        cpr = self._ref[0]
        if self._ref_n < 10 or cpr <= 0:
            return 0
        lam = eff / cpr
        return int(min(self.max_hold, math.ceil(self.hold_requests / max(lam, 1e-9))))

    def _count_evidence(self, x: Features, eff: float, z: float | None = None) -> bool:
        """A one-bucket burst needs more *requests* than this key's normal count spread allows.

        Without request counts (or before the cost per request is known) the cost alone decides.
        A cost-per-request jump with a flat request count is left to the CUSUM path, which needs it
        to persist for a few buckets, so one heavy-tailed request on a sparse key never pages.
        """
        req = x.get("requests")
        cpr = self._ref[0]
        if req is None or self._ref_n < 10 or cpr <= 0:
            return True
        resid = _anscombe(float(req), eff / cpr)
        return resid >= (self.count_z if z is None else z) * math.sqrt(max(self._disp, 1.0))

    def _count_hi(self, expected: float) -> float:
        """The most spend a bucket's request count explains by chance: the cost of the most requests
        within ``clip_count_z`` of the count's noise (0 before the cost per request is known).
        Clipped at ``expected + 3 sigma`` only, a sparse key's lone requests (50x a mostly empty
        minute, and beyond 4 sigma trimmed from the spread, which stays near 1) were learned as 4x
        expected and its empty minutes in full, so its expectation sank towards zero and every
        request paged. At 2 sigmas the bound allows about 2.5 requests at 0.1 expected, 4.6 at 1 (the
        band's own 4x), so on a busier key it adds nothing, and a loop on a sparse key stays clipped."""
        cpr = self._ref[0]
        if self._ref_n < 10 or cpr <= 0:
            return 0.0
        root = math.sqrt(max(expected, 0.0) / cpr + 0.375) + 0.5 * self.clip_count_z * math.sqrt(max(self._disp, 1.0))
        return cpr * (root * root - 0.375)

    def _learn_disp(self, req: float, eff: float) -> None:
        """Learn the count's overdispersion: an EW mean of the squared Anscombe residual (1 under
        Poisson; real traffic is far burstier). A residual beyond 4 of its sigmas (a burst, an
        outage) is trimmed once a few dozen buckets are in, and capped at 4 Poisson sigmas before,
        so an incident does not blind the key."""
        cpr = self._ref[0]
        if self._ref_n < 10 or cpr <= 0 or eff <= 0:
            return
        r2 = _anscombe(req, eff / cpr) ** 2
        if self._disp_n < self.warmup:  # at most 4 Poisson sigmas: one early burst must not blind the key
            r2 = min(r2, 16.0)
        elif r2 > 16.0 * max(self._disp, 1.0):
            return
        self._disp += max(1.0 / (self._disp_n + 1.0), self.disp_alpha) * (r2 - self._disp)
        self._disp_n += 1.0

    def _remember(self, t: float, ratio: float, alerted: bool) -> None:
        """Remember a spike in its bin. An ``alerted`` one makes the first-day records of the last
        hour (its own and its earlier minutes': a loop that pages after nine minutes began in an
        earlier bin, which would mask its recurrence the next day) mask only after a second day
        (from 6 h after that day's spike)."""
        b = int((t % DAY) // self.memory_bin_s)
        rec = self._mem.get(b)
        if rec is None:
            if len(self._mem) >= self.memory_size:
                # one-off spikes go first (a long incident must not evict a recurring job), then the oldest
                oldest = min(self._mem, key=lambda k: (self._mem[k][4] > 1.0, self._mem[k][0], k))
                del self._mem[oldest]
            self._mem[b] = [t, ratio, -1e18, 1.0, 1.0, _NEVER if alerted else 0.0]
        elif t - rec[0] <= 21600.0:
            rec[0], rec[1] = t, max(rec[1], ratio)
        else:
            rec[2], rec[3] = rec[0], rec[1]
            rec[0], rec[1] = t, ratio
            rec[4] = min(rec[4] + 1.0, 30.0)
            if len(rec) > 5 and rec[5] > t:
                rec[5] = t + 21600.0
        if alerted:  # the spike's earlier minutes, remembered before it paged, are the same spike
            for other in self._mem.values():
                if other[4] == 1.0 and t - other[0] <= HOUR and len(other) > 5:
                    other[5] = _NEVER

    def _parts(self, x: Features) -> tuple[float, float, float, float] | None:
        req = float(x.get("requests", 0.0) or 0.0)
        tin = float(x.get("input_tokens", 0.0) or 0.0)
        tokens = tin + float(x.get("output_tokens", 0.0) or 0.0)
        cost = float(x["cost"])
        if req <= 0 or tokens <= 0 or cost <= 0:
            return None
        cached = float(x.get("cached_input_tokens", 0.0) or 0.0)
        return cost / req, tokens / req, cost / tokens, (cached / tin if tin > 0 else 0.0)

    def _learn_ref(self, x: Features) -> None:
        parts = self._parts(x)
        if parts is None:
            return
        a = max(1.0 / (self._ref_n + 1), 0.01)
        ref = self._ref
        for i, v in enumerate(parts):
            ref[i] += a * (v - ref[i])
        self._ref_n += 1

    def _driver(self, x: Features, y: float, eff: float) -> str:
        parts = self._parts(x)
        if parts is None or self._ref_n < 10 or eff <= 0 or y <= 0:
            return ""
        _, tpr, cpt, cache = parts
        _, rtpr, rcpt, rcache = self._ref
        if rtpr <= 0 or rcpt <= 0:
            return ""
        total = safe_log(y / eff)
        l_tpr = safe_log(tpr / rtpr)
        l_cpt = safe_log(cpt / rcpt)
        l_req = total - l_tpr - l_cpt
        name, value = max((("requests", l_req), ("tokens per request", l_tpr), ("cost per token", l_cpt)),
                          key=lambda kv: kv[1])
        if value < 0.5 * _LOG2 * 0.5 and value < 0.5 * total:
            return ""
        factor = math.exp(min(value, 700.0))
        if name == "cost per token":
            if rcache - cache >= 0.15:
                return f"cache-hit ratio {rcache:.0%} -> {cache:.0%} (cost per token {factor:.1f}x normal)"
            return f"cost per token {factor:.1f}x normal (price mix)"
        return f"{name} {factor:.1f}x normal"


def _weekend(wpos: float) -> bool:
    """Saturday or Sunday (UTC), from the week position of :meth:`SeasonalSpendDetector._slots`."""
    return wpos + 0.5 >= _WEEKEND_SLOT


def _anscombe(n: float, lam: float) -> float:
    """Anscombe's variance-stabilised residual of a count ``n`` against its mean ``lam`` (sd ~1
    under Poisson, honest in the tail for small counts too)."""
    return 2.0 * (math.sqrt(n + 0.375) - math.sqrt(lam + 0.375))
