"""``spendsentry backtest --series``: a plain ``timestamp,value`` CSV through the detector family.

Pure (no Kafka, no engine): every row is one bucket of one key, scored then learned, exactly as
the engine does per closed bucket. Output: ``timestamp,value,anomaly_score`` (score in [0, 1]),
the NAB result format, so any labelled benchmark can be scored.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from detectors.base import Detector
from detectors.series import SeasonalSeriesDetector


def parse_time(text: str) -> float:
    """Epoch seconds from epoch numbers, RFC 3339 or NAB's ``YYYY-MM-DD HH:MM:SS`` (UTC when naive)."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def score_series(rows: Iterable[tuple[float, float]],
                 detector_factory: Callable[[], Detector] = SeasonalSeriesDetector) -> Iterator[float]:
    """Anomaly score in [0, 1] for each ``(epoch_seconds, value)``, in order (score, then learn)."""
    detector = detector_factory()
    for t, value in rows:
        x = {"t": t, "value": value, "cost": value}
        verdict = detector.score_one(x)
        detector.learn_one(x)
        yield min(max(float(verdict.score), 0.0), 1.0)


def score_series_file(source: str | Path, output: str | Path,
                      detector_factory: Callable[[], Detector] = SeasonalSeriesDetector) -> int:
    """Read ``timestamp,value`` (header required), write ``timestamp,value,anomaly_score``; rows written."""
    with open(source, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cols = [c.strip().lower() for c in header]
        ti, vi = cols.index("timestamp"), cols.index("value")
        raw = [(r[ti], r[vi]) for r in reader if r]
    rows = [(parse_time(ts), float(v)) for ts, v in raw]
    n = 0
    with open(output, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for (ts, v), score in zip(raw, score_series(rows, detector_factory)):
            writer.writerow([ts, v, f"{score:.9f}"])
            n += 1
    return n
