"""``spendsentry backtest``: replay a usage-event file through the worker's engine, no Kafka.

The file is streamed line by line (constant memory), in file order, which is treated as
arrival order exactly as the worker treats partition order; the result is deterministic.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import IO, Iterable

import orjson

from schemas.budget import Budget
from streams.core.budgets import BudgetBook
from streams.core.engine import DeadLetter, Engine, EngineConfig, Pricer

#: invalid lines kept with their reason; the rest are only counted
SHOWN_ERRORS = 20


@dataclass(slots=True)
class BacktestSummary:
    events: int = 0
    invalid: int = 0
    keys: int = 0
    alerts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    #: ``line N: reason`` of the first invalid lines (at most :data:`SHOWN_ERRORS`)
    errors: list[str] = field(default_factory=list)
    #: ``provider/model`` -> events the price catalogue had no price for (priced at $0)
    unpriced: dict[str, int] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        by_type = ", ".join(f"{k[0]} {k[1]}: {v}" for k, v in sorted(self.alerts.items())) or "none"
        return [
            f"events:     {self.events:,} ({self.invalid:,} invalid)",
            f"keys:       {self.keys:,}",
            f"alerts:     {sum(self.alerts.values()):,} ({by_type})",
            f"unpriced:   {sum(self.unpriced.values()):,} events at $0 ("
            + (", ".join(f"{m}: {n:,}" for m, n in sorted(self.unpriced.items(), key=lambda i: -i[1])[:SHOWN_ERRORS])
               or "none") + ")",
            f"throughput: {self.events_per_s:,.0f} events/s ({self.seconds:.2f}s)",
        ]


class _Progress:
    """A one-line progress counter on a terminal; silent otherwise."""

    def __init__(self, stream: IO[str], every: int = 50_000) -> None:
        self.stream = stream
        self.enabled = stream.isatty()
        self.every = every
        self.started = time.monotonic()

    def update(self, lines: int) -> None:
        if self.enabled:
            rate = lines / max(time.monotonic() - self.started, 1e-9)
            self.stream.write(f"\r{lines:,} lines, {rate:,.0f}/s")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def backtest(lines: Iterable[bytes], output: IO[bytes], config: EngineConfig, pricer: Pricer,
             progress: IO[str] | None = None, budgets: Iterable[Budget] = (),
             max_future_s: float | None = None) -> BacktestSummary:
    """Feed every line to one engine (and its budgets to one budget book, as the worker's
    budget agent does); write alerts as JSON Lines to ``output``. Empty lines are skipped but
    counted, so ``summary.errors`` names each invalid line by its number in the file.

    A file is history, so the worker's wall-clock bound on event time does not apply; with
    ``max_future_s`` an event stamped further ahead of the running watermark of the input is
    rejected (counted invalid) and never moves it (``--max-future-seconds``)."""
    engine = Engine(replace(config, clock=None, max_future_s=max_future_s), pricer)
    budgets = list(budgets)
    engine.budget_partials.set_budgets(budgets)
    book = BudgetBook(budgets)
    summary = BacktestSummary()
    bar = _Progress(sys.stderr if progress is None else progress)
    started = time.perf_counter()
    ingest = engine.ingest

    def emit() -> None:
        partials = engine.drain_partials()
        for alert in engine.drain_alerts() + (book.apply(partials) if partials else []):
            summary.alerts[(alert.type, alert.status)] += 1
            output.write(orjson.dumps(alert.to_dict()) + b"\n")

    every = bar.every
    errors = summary.errors
    for n, line in enumerate(lines, 1):
        if not line:
            continue
        dead = ingest(line)
        if dead and len(errors) < SHOWN_ERRORS:
            errors.append(_line_error(n, dead))
        if engine.has_output:
            emit()
        if not n % every:
            bar.update(n)
    engine.flush()
    emit()
    summary.seconds = time.perf_counter() - started
    bar.close()
    summary.events = engine.counters.events
    summary.invalid = engine.counters.invalid
    summary.keys = len(engine.keys)
    for (provider, model), count in engine.unpriced_models.items():
        summary.unpriced[f"{provider}/{model}"] = count
    return summary


def _line_error(number: int, dead: list[DeadLetter]) -> str:
    first = dead[0]
    where = f"line {number}" if first.index is None else f"line {number} [{first.index}]"
    more = f" (and {len(dead) - 1} more element(s))" if len(dead) > 1 else ""
    return f"{where}: {first.reason[:300]}{more}"
