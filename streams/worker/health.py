"""What ``/healthz`` and ``/metrics`` say about the worker's own condition: agent crashes,
partitions that stopped advancing, recovery that does not finish.

The worker reports into one :class:`Health`: Faust calls :meth:`Health.agent_crashed` when an
agent raised (its supervisor then restarts it), and the usage agent calls
:meth:`Health.progressed` when a partition's offset moved. :meth:`Health.problems` turns that,
the consumer lag and the recovery state into reasons a probe can act on (docs/operations/health.md).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

log = logging.getLogger("spendsentry.streams")


@dataclass(slots=True)
class Crash:
    """The last time an agent raised, and what."""

    agent: str
    at: float
    error: str


@dataclass
class Health:
    """Agent crashes and per-partition progress, judged against ``stall_s``.

    ``clock`` is the wall clock (monotonic seconds); tests pass their own.
    """

    stall_s: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    restarts: Counter[str] = field(default_factory=Counter)
    last_crash: dict[str, Crash] = field(default_factory=dict)
    #: usage partition -> clock time its offset last advanced (or it was assigned)
    last_progress: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    async def agent_crashed(self, agent: Any, exc: BaseException) -> None:
        """Faust's ``on_error`` hook: an agent raised and is about to be restarted."""
        name = str(getattr(agent, "name", agent))
        self.restarts[name] += 1
        self.last_crash[name] = Crash(name, self.clock(), f"{type(exc).__name__}: {exc}"[:300])
        log.error("agent %s crashed (%d restarts): %s: %s", name, self.restarts[name], type(exc).__name__, exc,
                  exc_info=exc)

    def progressed(self, partition: int) -> None:
        self.last_progress[partition] = self.clock()

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.last_progress.pop(partition, None)

    def seconds_since_progress(self, partitions: set[int]) -> dict[int, float]:
        """Per assigned partition: seconds since its offset last advanced (since assignment if never)."""
        now = self.clock()
        return {p: now - self.last_progress.setdefault(p, now) for p in sorted(partitions)}

    def problems(self, lag: Mapping[int, int], recovered: bool) -> list[str]:
        """Reasons the worker is not healthy now; empty when it is."""
        now = self.clock()
        reasons = [
            f"agent {crash.agent} crashed {now - crash.at:.0f}s ago ({crash.error}); restarts: {self.restarts[name]}"
            for name, crash in sorted(self.last_crash.items()) if now - crash.at < self.stall_s
        ]
        if not recovered and now - self.started >= self.stall_s:
            reasons.append(f"table recovery not complete after {now - self.started:.0f}s")
        since = self.seconds_since_progress(set(lag))
        for partition, behind in sorted(lag.items()):
            if behind > 0 and since[partition] >= self.stall_s:
                reasons.append(f"partition {partition} has {behind} messages waiting and has not advanced "
                               f"for {since[partition]:.0f}s")
        return reasons
