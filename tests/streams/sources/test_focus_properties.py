"""Hostile FOCUS exports: every row becomes a valid cost event, a counted credit, or a ``row N:
reason`` error; whole files that cannot be read are a :class:`ConfigError`. Never a crash."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ConfigError, SchemaError
from schemas.focus import NegativeCostRow, focus_row_to_event, parse_focus_time
from schemas.usage import validate_usage
from streams.sources.focus_import import import_focus, read_focus_rows, rows_from_text

GOOD = {
    "BillingAccountId": "111122223333", "BillingCurrency": "USD", "ChargeCategory": "Usage",
    "ChargePeriodStart": "2026-11-26T00:00:00Z", "ChargePeriodEnd": "2026-11-27T00:00:00Z",
    "EffectiveCost": "12.5", "ProviderName": "AWS", "RegionId": "us-east-1", "ResourceId": "arn:x",
    "ResourceName": "claude", "ServiceCategory": "AI and Machine Learning", "ServiceName": "Amazon Bedrock",
    "SkuMeter": "Claude Input Tokens", "SubAccountId": "4444", "Tags": '{"team": "cx", "n": 3}',
}
COLUMNS = list(GOOD)

HOSTILE_CELLS = ["", "null", "NaN", "nan", "Infinity", "-inf", "1e400", "-0", "-5", "0", "1e-400", "1_000",
                 "0x10", " 12.5 ", "12,5", "€12", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
                 "9999-12-31T23:59:59-23:59", "2026-11-26 00:00:00.12345678901234Z", "2026-02-30T00:00:00Z",
                 "1795759200", "[" * 3000, "{" * 3000, '{"team": ' * 1500, "[1,2]", '"str"', "{}",
                 '{"a": NaN}', '{"": ""}', "\x00", "\ud800", "x" * 10_000]
cells = st.one_of(st.text(max_size=30), st.sampled_from(HOSTILE_CELLS))
rows = st.fixed_dictionaries({}, optional={name: cells for name in COLUMNS})


def _check_row(row: dict) -> None:
    try:
        event = focus_row_to_event(row)
    except NegativeCostRow as exc:
        assert float(exc.value) < 0
        return
    except SchemaError as exc:
        assert str(exc)
        return
    again = validate_usage(event)
    assert again.cost_usd is not None and math.isfinite(again.cost_usd) and again.cost_usd >= 0


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(COLUMNS), cells, max_size=len(COLUMNS)).map(lambda d: {**GOOD, **d}))
def test_good_rows_with_hostile_cells(row: dict) -> None:
    _check_row(row)


@settings(max_examples=150, deadline=None)
@given(rows)
def test_arbitrary_rows(row: dict) -> None:
    _check_row(row)


@pytest.mark.parametrize("column", COLUMNS)
def test_each_column_with_each_hostile_cell(column: str) -> None:
    for value in HOSTILE_CELLS:
        _check_row({**GOOD, column: value})


def test_non_string_cells_from_parquet() -> None:
    """Parquet rows carry typed values (floats, ints, None, datetimes as strings)."""
    for value in (math.nan, math.inf, -math.inf, 10**400, -1.0, 0, True, None, [1], {"a": 1}):
        for column in ("EffectiveCost", "ChargePeriodStart", "Tags", "ProviderName", "ServiceName"):
            _check_row({**GOOD, column: value})


def _csv(rows_: list[list[str]], header: list[str] = COLUMNS) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows_)
    return out.getvalue()


def test_rows_with_extra_or_missing_cells_are_row_errors_not_crashes() -> None:
    """A ragged CSV (more cells than the header, or fewer) is reported per row."""
    good = [GOOD[c] for c in COLUMNS]
    text = _csv([good, good + ["surplus", "cells"], good[:3], good])
    result = import_focus(rows_from_text(text))
    assert result.rows == 4
    assert len(result.events) + len(result.errors) == 4
    assert all(e.startswith("row ") for e in result.errors)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(cells, max_size=len(COLUMNS) + 3), max_size=6))
def test_import_of_arbitrary_csv_never_raises(body: list[list[str]]) -> None:
    result = import_focus(rows_from_text(_csv(body)))
    assert result.rows == len(result.events) + len(result.errors) + result.credits


@pytest.mark.parametrize("raw", [
    b"\xff\xfe\x00\x00garbage",
    b"EffectiveCost,ChargePeriodStart\n\xff\xfe,2026-11-26T00:00:00Z\n",
    b"",
    b"\x00\x00\x00",
    b"a,b\n1,2\n",
])
def test_unreadable_files_are_config_errors(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "focus.csv"
    path.write_bytes(raw)
    try:
        result = import_focus(read_focus_rows(path))
    except ConfigError as exc:
        assert str(path) in str(exc)
        return
    assert result.rows == len(result.events) + len(result.errors) + result.credits


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=40), st.none(), st.integers(), st.floats()))
def test_focus_time_parses_or_raises_a_validation_error(value: object) -> None:
    try:
        ts = parse_focus_time(value, "ChargePeriodStart")
    except SchemaError:
        return
    assert math.isfinite(ts)
