"""``spendsentry backtest --series``: a plain ``timestamp,value`` CSV through the detector family.

Pure (no Kafka, no engine): every row is one bucket of one key, scored then learned, exactly as
the engine does per closed bucket, through the seasonal detector's anomaly likelihood
(:class:`detectors.series.LikelihoodSeriesDetector`). Output: ``timestamp,value,anomaly_score`` (score in [0, 1]),
the NAB result format, so any labelled benchmark can be scored.
"""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator

from detectors.base import Detector
from schemas.errors import ConfigError, SchemaError
from detectors.series import LikelihoodSeriesDetector


def parse_time(text: str) -> float:
    """Epoch seconds from epoch numbers, RFC 3339 or NAB's ``YYYY-MM-DD HH:MM:SS`` (UTC when naive)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"timestamp {text!r} is not a finite number")
        return value
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"timestamp {text[:60]!r}: use epoch seconds, RFC 3339 or 'YYYY-MM-DD HH:MM:SS'") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def score_series(rows: Iterable[tuple[float, float]],
                 detector_factory: Callable[[], Detector] = LikelihoodSeriesDetector) -> Iterator[float]:
    """Anomaly score in [0, 1] for each ``(epoch_seconds, value)``, in order (score, then learn)."""
    detector = detector_factory()
    for t, value in rows:
        x = {"t": t, "value": value, "cost": value}
        verdict = detector.score_one(x)
        detector.learn_one(x)
        yield min(max(float(verdict.score), 0.0), 1.0)


def read_series(source: str | Path) -> list[tuple[str, str, float, float]]:
    """``(timestamp text, value text, epoch seconds, value)`` of every row of a ``timestamp,value``
    CSV (header required). Raises :class:`~schemas.errors.ConfigError` for a missing, unreadable,
    binary or empty file or a wrong header, and :class:`~schemas.errors.SchemaError` listing the
    bad rows (``line N: reason``, the first 20 and a count)."""
    try:
        with open(source, newline="", encoding="utf-8-sig") as fh:
            text = fh.read()
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such series file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: not a text CSV (binary or not UTF-8); --series needs 'timestamp,value' rows") \
            from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the series file: {exc.strerror or exc}") from None
    if "\0" in text:
        raise ConfigError(f"{source}: not a text CSV (NUL bytes); --series needs 'timestamp,value' rows")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise ConfigError(f"{source}: empty; --series needs a 'timestamp,value' header and rows")
        cols = [c.strip().lower() for c in header]
        if "timestamp" not in cols or "value" not in cols:
            raise ConfigError(f"{source}: the header must name 'timestamp' and 'value' columns "
                              f"(got {','.join(header)[:120]!r})")
        ti, vi = cols.index("timestamp"), cols.index("value")
        rows: list[tuple[str, str, float, float]] = []
        errors: list[str] = []
        for row in reader:
            if not row or not any(cell.strip() for cell in row):
                continue
            number = reader.line_num
            try:
                if len(row) <= max(ti, vi):
                    raise ValueError(f"{len(row)} cell(s), the header has {len(header)}")
                t = parse_time(row[ti])
                value = float(row[vi])
                if not math.isfinite(value):
                    raise ValueError(f"value {row[vi]!r} is not a finite number")
            except ValueError as exc:
                errors.append(f"line {number}: {exc}")
                continue
            rows.append((row[ti], row[vi], t, value))
    except csv.Error as exc:
        raise ConfigError(f"{source}: not a CSV (line {reader.line_num}): {exc}") from None
    if errors:
        shown = "; ".join(errors[:20]) + (f"; ... {len(errors) - 20} more" if len(errors) > 20 else "")
        raise SchemaError(f"{source}: {len(errors)} bad row(s): {shown}")
    if not rows:
        raise ConfigError(f"{source}: no rows after the header; --series needs 'timestamp,value' rows")
    return rows


def score_series_file(source: str | Path, output: str | Path,
                      detector_factory: Callable[[], Detector] = LikelihoodSeriesDetector) -> int:
    """Read ``timestamp,value`` (header required), write ``timestamp,value,anomaly_score``; rows written."""
    rows = read_series(source)
    n = 0
    with open(output, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["timestamp", "value", "anomaly_score"])
        for (ts, v, _, _), score in zip(rows, score_series(((t, x) for _, _, t, x in rows), detector_factory)):
            writer.writerow([ts, v, f"{score:.9f}"])
            n += 1
    return n
