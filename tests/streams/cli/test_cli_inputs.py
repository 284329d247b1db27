"""Every command: a bad file, folder, flag value or empty input is one line naming it and the rule,
exit 2, no traceback; invalid lines are listed (``line N: reason``, the first 20 and a count)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.cli.main import main

EVENT = {"event_id": "e1", "timestamp": 1_795_000_000.0, "provider": "openai", "model": "gpt-4o",
         "input_tokens": 10, "output_tokens": 5}
BILL = ("ChargePeriodStart,ChargePeriodEnd,EffectiveCost,ProviderName,ServiceName\n"
        "2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,1.0,OpenAI,OpenAI API\n")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("argv", [
    ["normalize", "--format", "openai", "{missing}"],
    ["backtest", "{missing}", "--output", "{out}"],
    ["backtest", "--series", "{missing}", "--output", "{out}"],
    ["reconcile", "--focus", "{bill}", "--events", "{missing}"],
    ["reconcile", "--focus", "{missing}", "--events", "{events}"],
    ["import-focus", "--stdout", "{missing}"],
    ["report", "{missing}"],
])
def test_a_missing_input_file_is_one_line_naming_it_and_exit_2(argv: list[str], tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bill.csv").write_text(BILL)
    (tmp_path / "events.jsonl").write_bytes(orjson.dumps(EVENT) + b"\n")
    names = {"missing": str(tmp_path / "nope.jsonl"), "out": str(tmp_path / "out.jsonl"),
             "bill": str(tmp_path / "bill.csv"), "events": str(tmp_path / "events.jsonl")}
    assert main([a.format(**names) for a in argv]) == 2
    line = one_error_line(capsys)
    assert "nope.jsonl" in line and ("no such" in line or "cannot read" in line)


def test_an_output_in_a_missing_folder_is_refused_before_any_work(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(orjson.dumps(EVENT) + b"\n")
    out = tmp_path / "no-such-dir" / "alerts.jsonl"
    assert main(["backtest", str(events), "--output", str(out)]) == 2
    assert "no-such-dir" in one_error_line(capsys) and not out.parent.exists()


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_backtest_on_an_empty_file_exits_2(content: bytes, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(content)
    assert main(["backtest", str(events), "--output", str(tmp_path / "a.jsonl")]) == 2
    assert "empty" in one_error_line(capsys)


def test_backtest_lists_invalid_lines_with_numbers_and_exits_1(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A binary file is not '0 events (10 invalid)' and exit 0: each line is named, 20 shown, the rest counted."""
    events = tmp_path / "events.bin"
    events.write_bytes(orjson.dumps(EVENT) + b"\n\n" + b"\n".join(b"\x89PNG\x1a\xff" for _ in range(30)))
    assert main(["backtest", str(events), "--output", str(tmp_path / "a.jsonl")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{events}: line 3: invalid JSON" in err
    assert err.count("events.bin: line ") == 20
    assert "and 10 more bad line(s) (30 in all)" in err


def test_backtest_summary_counts_and_lists_unpriced_models(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps({**EVENT, "event_id": f"e{i}", "model": "my-finetune-v9"})
                                  for i in range(3)))
    assert main(["backtest", str(events), "--output", str(tmp_path / "a.jsonl")]) == 0
    assert "unpriced:   3 events at $0 (openai/my-finetune-v9: 3)" in capsys.readouterr().out


@pytest.mark.parametrize("content, expected", [
    ("", "empty"),
    ("time,amount\n1,2\n", "must name 'timestamp' and 'value'"),
    ("timestamp,value\n", "no rows after the header"),
    ("timestamp,value\n2026-01-01 00:00:00,1\nyesterday,2\n2026-01-01 00:10:00,abc\n", "line 3: timestamp 'yesterday'"),
    ("timestamp,value\n2026-01-01 00:00:00,1\n2026-01-01 00:10:00,abc\n", "line 3: could not convert"),
    ("\x00\x01\x02binary", "not a text CSV"),
])
def test_every_bad_series_input_is_one_line_and_exit_2(content: str, expected: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    series = tmp_path / "series.csv"
    series.write_text(content)
    assert main(["backtest", "--series", str(series), "--output", str(tmp_path / "s.csv")]) == 2
    assert expected in one_error_line(capsys)


def test_a_binary_series_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    series = tmp_path / "series.csv"
    series.write_bytes(bytes(range(256)))
    assert main(["backtest", "--series", str(series), "--output", str(tmp_path / "s.csv")]) == 2
    assert "not a text CSV" in one_error_line(capsys)


def test_reconcile_refuses_a_scope_that_is_not_a_dimension(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """``--scope foo`` compared nothing and exited 0, so a CI drift gate passed."""
    (tmp_path / "bill.csv").write_text(BILL)
    (tmp_path / "events.jsonl").write_bytes(orjson.dumps(EVENT) + b"\n")
    code = main(["reconcile", "--focus", str(tmp_path / "bill.csv"), "--events", str(tmp_path / "events.jsonl"),
                 "--scope", "foo"])
    assert code == 2
    assert "'foo' is not a dimension" in one_error_line(capsys)


@pytest.mark.parametrize("argv, expected", [
    (["normalize", "--format", "openai", "{empty}"], "no payloads"),
    (["reconcile", "--focus", "{bill}", "--events", "{empty}"], "no usage events"),
    (["import-focus", "--stdout", "{header_only}"], "no rows after the header"),
])
def test_an_empty_input_is_one_line_and_exit_2(argv: list[str], expected: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bill.csv").write_text(BILL)
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "header_only.csv").write_text(BILL.splitlines()[0] + "\n")
    names = {"empty": str(tmp_path / "empty.jsonl"), "bill": str(tmp_path / "bill.csv"),
             "header_only": str(tmp_path / "header_only.csv")}
    assert main([a.format(**names) for a in argv]) == 2
    assert expected in one_error_line(capsys)


@pytest.mark.parametrize("value", ["abc", "-1", "H100=", "=3", "H100=x", "2,3", "nan"])
def test_collect_gpu_refuses_a_bad_price_per_hour(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect-gpu", "--once", "--stdout", "--dcgm-url", "http://127.0.0.1:1/metrics",
                 "--price-per-hour", value]) == 2
    assert "--price-per-hour" in one_error_line(capsys)


def test_collect_gpu_refuses_a_non_positive_interval(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["collect-gpu", "--once", "--stdout", "--interval", "0"]) == 2
    assert "--interval 0.0: must be a positive" in one_error_line(capsys)
