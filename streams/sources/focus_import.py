"""FOCUS cost exports -> cost events (``spendsentry import-focus``), and bill reconciliation.

CSV exports of FOCUS 1.0 - 1.3 are read with the standard library (UTF-8, BOM tolerated).
Parquet needs ``pyarrow``, which spendsentry does not depend on: without it a ``.parquet`` file is
refused with a clear error (convert it to CSV, or install pyarrow).

:func:`reconcile` compares, per scope and UTC day, the real-time estimate (the sum of usage-event
costs) with the billed cost, and raises a ``billing_drift`` alert when they differ by more than a
tolerance (5% by default).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from schemas.alert import Alert, alert_id_for, rfc3339
from schemas.errors import ConfigError, SchemaError
from schemas.focus import NegativeCostRow, focus_row_to_event

__all__ = ["load_fx_rates", "FocusImport", "read_focus_rows", "import_focus", "reconcile", "Reconciliation"]


def read_focus_rows(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(row number, row)`` of a FOCUS export (row 2 is the first data row of a CSV)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq  # optional
        except ImportError:
            raise ConfigError(f"{path}: Parquet FOCUS exports need pyarrow, which is not installed; "
                              "install it (pip install pyarrow) or export the data as CSV") from None
        table = pq.read_table(path)
        for number, row in enumerate(table.to_pylist(), 1):
            yield number, {k: ("" if v is None else v) for k, v in row.items()}
        return
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            if not reader.fieldnames or "EffectiveCost" not in reader.fieldnames:
                raise ConfigError(f"{path}: not a FOCUS export (no EffectiveCost column; header: "
                                  f"{', '.join((reader.fieldnames or [])[:8])})")
            for number, row in enumerate(reader, 2):
                yield number, row
        except (UnicodeDecodeError, csv.Error) as exc:
            raise ConfigError(f"{path}: cannot read as a UTF-8 CSV (line {reader.line_num}): {exc}") from None


@dataclass(slots=True)
class FocusImport:
    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    credits: int = 0
    credits_usd: float = 0.0
    rows: int = 0


def load_fx_rates(path: str | Path) -> dict[str, float]:
    """``--fx-rates FILE``: a JSON object of ISO 4217 code -> USD per unit (``{"EUR": 1.08}``)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--fx-rates {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--fx-rates {path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--fx-rates {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(f'--fx-rates {path}: must be a JSON object of currency -> USD per unit, e.g. {{"EUR": 1.08}}')
    rates = {}
    for code, rate in data.items():
        if not (isinstance(code, str) and len(code) == 3 and code.isalpha()):
            raise ConfigError(f"--fx-rates {path}: {code!r} is not an ISO 4217 currency code")
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
            raise ConfigError(f"--fx-rates {path}: {code}: the rate must be a positive number of USD per unit")
        rates[code.upper()] = float(rate)
    return rates


def import_focus(rows: Iterable[tuple[int, Mapping[str, Any]]], *, fx_rates: Mapping[str, float] | None = None,
                 tag_map: Mapping[str, Sequence[str]] | None = None) -> FocusImport:
    """Cost events of FOCUS rows; bad rows become ``row N: reason`` errors, credits are counted apart."""
    result = FocusImport()
    for number, row in rows:
        result.rows += 1
        try:
            result.events.append(focus_row_to_event(row, fx_rates=fx_rates, tag_map=tag_map))
        except NegativeCostRow as exc:
            result.credits += 1
            result.credits_usd += float(exc.value)
        except SchemaError as exc:
            result.errors.append(f"row {number}: {exc}")
    return result


@dataclass(frozen=True, slots=True)
class Reconciliation:
    key: dict[str, str]
    day: str
    estimated_usd: float
    billed_usd: float
    drift_usd: float
    drift_ratio: float | None
    alert: Alert | None


def _scope(event: Mapping[str, Any], scope: Sequence[str]) -> tuple[str, ...] | None:
    parts = []
    for name in scope:
        value = (event.get("tags") or {}).get(name[5:]) if name.startswith("tags.") else event.get(name)
        if not isinstance(value, str):
            return None
        parts.append(value)
    return tuple(parts)


def _day(ts: float) -> str:
    return rfc3339(ts)[:10]


def reconcile(estimated: Iterable[Mapping[str, Any]], billed: Iterable[Mapping[str, Any]], *,
              scope: Sequence[str] = ("provider",), tolerance: float = 0.05,
              provider_aliases: Mapping[str, str] | None = None) -> list[Reconciliation]:
    """Per scope key and UTC day: estimate (sum of ``cost_usd`` of usage events) vs billed.

    ``drift = estimated - billed``; ``drift_ratio = drift / billed``. A ``billing_drift`` alert
    (firing) is attached when ``|drift| > tolerance x billed`` (or anything was estimated for a
    day billed at zero). ``provider_aliases`` maps bill provider names onto usage ones (e.g.
    ``{"Amazon Web Services": "aws.bedrock"}``) when scoping by provider. Events without a
    ``cost_usd`` (unpriced) are not summed.
    """
    aliases = dict(provider_aliases or {})
    sums: dict[tuple[tuple[str, ...], str], list[float]] = {}

    def fold(events: Iterable[Mapping[str, Any]], side: int) -> None:
        for event in events:
            cost = event.get("cost_usd")
            if not isinstance(cost, (int, float)):
                continue
            if side == 1 and event.get("provider") in aliases:
                event = {**event, "provider": aliases[event["provider"]]}
            key = _scope(event, scope)
            if key is None:
                continue
            ts = event["timestamp"]
            if isinstance(ts, str):
                from schemas.usage import parse_timestamp

                ts = parse_timestamp(ts)
            sums.setdefault((key, _day(float(ts))), [0.0, 0.0])[side] += float(cost)

    fold(estimated, 0)
    fold(billed, 1)
    out = []
    for (key, day), (est, bill) in sorted(sums.items()):
        drift = est - bill
        ratio = drift / bill if bill else None
        labels = dict(zip(scope, key))
        breach = abs(drift) > tolerance * bill if bill else est > 0
        alert = None
        if breach:
            from datetime import date, datetime, timezone

            start = datetime.combine(date.fromisoformat(day), datetime.min.time(), timezone.utc).timestamp()
            pct = f"{ratio:+.1%}" if ratio is not None else "n/a (billed $0)"
            severity = "critical" if abs(drift) >= 100 else "warning" if abs(drift) >= 10 else "info"
            alert = Alert(
                alert_id=alert_id_for("billing_drift", labels, start), type="billing_drift", status="firing",
                severity=severity, key=labels, window_start=start, window_end=start + 86_400,
                triggered_at=start + 86_400, observed=round(est, 6), expected=round(bill, 6),
                score=round(min(1.0, abs(ratio)) if ratio is not None else 1.0, 4),
                summary=(f"{', '.join(f'{k}={v}' for k, v in labels.items())} on {day}: real-time estimate "
                         f"${est:,.2f} vs billed ${bill:,.2f} ({pct}, tolerance {tolerance:.0%})"),
                details={"detector": "billing_drift", "drift_usd": round(drift, 6),
                         "drift_ratio": None if ratio is None else round(ratio, 6), "tolerance": tolerance,
                         "day": day},
            )
        out.append(Reconciliation(labels, day, est, bill, drift, ratio, alert))
    return out


def rows_from_text(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """FOCUS CSV rows from a string (tests, HTTP uploads)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    for number, row in enumerate(reader, 2):
        yield number, row
