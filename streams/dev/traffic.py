"""Realistic synthetic LLM usage traffic: daily shape, Poisson arrivals, heavy-tailed tokens.

Used by ``spendsentry demo`` and by the tests; deterministic for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True, slots=True)
class ModelProfile:
    provider: str
    model: str
    rate_per_s: float  # mean arrivals per second over a day
    input_tokens: float  # median prompt size
    output_tokens: float  # median completion size
    cached_share: float  # share of input tokens served from the prompt cache
    service: str
    team: str


DEFAULT_MODELS: tuple[ModelProfile, ...] = (
    ModelProfile("openai", "gpt-4o", 6.0, 1200, 300, 0.3, "support-bot", "cx"),
    ModelProfile("openai", "gpt-4o-mini", 10.0, 800, 200, 0.2, "search", "search"),
    ModelProfile("anthropic", "claude-sonnet-4-5", 3.0, 2500, 500, 0.5, "code-review", "devex"),
    ModelProfile("google", "gemini-2.5-flash", 4.0, 1500, 250, 0.0, "summarizer", "content"),
)


@dataclass(frozen=True, slots=True)
class Burst:
    """Multiply one model's request rate by ``factor`` during ``[start, end)``."""

    model: str
    start: float
    end: float
    factor: float = 10.0


def daily_factor(t: float) -> float:
    """Traffic shape over a UTC day: trough around 03:00, peak around 15:00 (0.5x .. 1.5x)."""
    return 1.0 + 0.5 * math.sin(2 * math.pi * ((t / 86400.0) % 1.0 - 0.375))


class TrafficGenerator:
    def __init__(self, models: tuple[ModelProfile, ...] = DEFAULT_MODELS, seed: int = 7, id_prefix: str = "ev") -> None:
        self.models = models
        self.rng = np.random.default_rng(seed)
        self.id_prefix = id_prefix
        self._n = 0

    def second(self, t: float, bursts: tuple[Burst, ...] = ()) -> list[dict]:
        """The events of one second starting at ``t``, in time order."""
        rng = self.rng
        out: list[dict] = []
        shape = daily_factor(t)
        for profile in self.models:
            rate = profile.rate_per_s * shape
            for burst in bursts:
                if burst.model == profile.model and burst.start <= t < burst.end:
                    rate *= burst.factor
            count = int(rng.poisson(rate))
            if not count:
                continue
            offsets = np.sort(rng.random(count))
            inputs = rng.lognormal(math.log(profile.input_tokens), 0.7, count)
            outputs = rng.lognormal(math.log(profile.output_tokens), 0.6, count)
            for offset, inp, outp in zip(offsets, inputs, outputs):
                self._n += 1
                input_tokens = int(inp) + 1
                out.append({
                    "event_id": f"{self.id_prefix}-{self._n}",
                    "timestamp": round(t + float(offset), 3),
                    "provider": profile.provider,
                    "model": profile.model,
                    "input_tokens": input_tokens,
                    "cached_input_tokens": int(input_tokens * profile.cached_share),
                    "output_tokens": int(outp) + 1,
                    "service": profile.service,
                    "team": profile.team,
                    "environment": "prod",
                })
        out.sort(key=lambda e: e["timestamp"])
        return out

    def events(self, start: float, end: float, bursts: tuple[Burst, ...] = ()) -> Iterator[dict]:
        """Every event in ``[start, end)``, in time order."""
        t = float(start)
        while t < end:
            yield from self.second(t, bursts)
            t += 1.0
