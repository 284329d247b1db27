"""The detector protocol shared by every spend detector.

A detector sees one closed bucket of one key at a time, as a plain dict of features
(``cost``, ``requests``, ``input_tokens``, ``output_tokens``, ``cached_input_tokens``,
``t`` = bucket start in epoch seconds). It is pure: no I/O, no clock, picklable, so the
very same object runs in the Faust worker and in ``spendsentry backtest`` and survives a
restart in a table. ``score_one`` is always called before ``learn_one`` on the same bucket.

Spend detectors also implement ``rebase(x)``: operator feedback ("Expected") that the level of
``x`` is normal from now on. The engine calls it when it exists and otherwise starts the key's
detector afresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable

Features = Mapping[str, float]


@dataclass(slots=True, frozen=True)
class Verdict:
    """A detector's view of one bucket: ``score`` in [0, 1] (high = anomalous)."""

    score: float
    expected: float
    anomalous: bool
    reason: str = ""
    #: which part of spend moved, when the detector can tell: ``requests``, ``tokens per request``,
    #: ``cost per token`` (price mix) or ``cache-hit ratio``, with the factor, e.g.
    #: ``"requests 9.8x normal"``; empty when nothing stands out or the detector does not explain.
    driver: str = ""
    #: whether the evidence that fires an alert is gone (e.g. the CUSUM is back near zero): only
    #: normal *and* settled buckets count towards resolving an open incident
    settled: bool = True
    #: the causes (see ``cause``) whose own evidence is gone while ``settled`` is not: an incident
    #: opened by more requests resolves when they are back, not when a per-request CUSUM that
    #: never fired it (a weekend's different traffic mix) is
    settled_causes: tuple[str, ...] = ()
    #: normal, settled buckets an open incident of this key needs before it resolves (0: the
    #: lifecycle's default); a sparse key asks for more, as a few quiet minutes say nothing there
    hold: int = 0
    #: what moved, for a detector that tells causes apart: ``volume`` (the requests rose) or ``mix``
    #: (what a request costs, sends or caches); "" when it does not or cannot tell yet. The
    #: lifecycle keeps an incident per cause.
    cause: str = ""
    #: the other cause's own verdict when both fire in this bucket (``reason`` speaks for ``cause``)
    side: Verdict | None = None


@runtime_checkable
class Detector(Protocol):
    name: str

    def score_one(self, x: Features) -> Verdict: ...

    def learn_one(self, x: Features) -> None: ...
