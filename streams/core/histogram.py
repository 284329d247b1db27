"""A fixed-bucket latency histogram and the Prometheus text form of its samples.

Plain Python, observed as deliveries happen (in the worker) and rendered at scrape time (by the API).
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from typing import Iterable

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def labels_text(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items()) + "}"


class Histogram:
    """A cumulative-bucket histogram per label set (Prometheus semantics)."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self._counts: dict[tuple, list[int]] = defaultdict(lambda: [0] * (len(buckets) + 1))
        self._sums: dict[tuple, float] = defaultdict(float)

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        self._counts[key][bisect.bisect_left(self.buckets, value)] += 1
        self._sums[key] += value

    def samples(self, name: str) -> Iterable[str]:
        for key, counts in sorted(self._counts.items()):
            labels = dict(key)
            running = 0
            for bound, count in zip(self.buckets, counts):
                running += count
                yield f"{name}_bucket{labels_text({**labels, 'le': repr(bound)})} {running}"
            running += counts[-1]
            yield f"{name}_bucket{labels_text({**labels, 'le': '+Inf'})} {running}"
            yield f"{name}_sum{labels_text(labels)} {self._sums[key]}"
            yield f"{name}_count{labels_text(labels)} {running}"
