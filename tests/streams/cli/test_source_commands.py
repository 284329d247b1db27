"""``spendsentry normalize``: priced JSON Lines out, a clear error per bad line, non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli.main import main

BODY = {"id": "chatcmpl-1", "object": "chat.completion", "created": 1795759201, "model": "gpt-4o",
        "usage": {"prompt_tokens": 1000, "completion_tokens": 100,
                  "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}}


def test_normalize_prints_priced_events_and_reports_bad_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Good lines are printed priced; each bad line is reported with its number and the exit is 1."""
    monkeypatch.delenv("SPENDSENTRY_PRICES_FILE", raising=False)
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([
        json.dumps(BODY),
        "{not json",
        "",
        json.dumps({**BODY, "id": "chatcmpl-2", "usage": {"prompt_tokens": 5, "prompt_tokens_details": {"cached_tokens": 9}}}),
        json.dumps({"timestamp": "2026-11-27T06:00:00Z", "team": "cx", "response": {**BODY, "id": "chatcmpl-3"}}),
    ]) + "\n")
    code = main(["normalize", "--format", "openai", str(path)])
    out, err = capsys.readouterr()
    events = [json.loads(line) for line in out.splitlines()]
    assert code == 1
    assert [e["event_id"] for e in events] == ["chatcmpl-1", "chatcmpl-3"]
    assert events[0]["cost_usd"] == pytest.approx(1000 * 2.5e-6 + 100 * 1e-5)
    assert events[1]["team"] == "cx"
    assert "line 2: not JSON" in err
    assert "line 4: cached_input_tokens: must be <= input_tokens (5)" in err


def test_normalize_all_good_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(BODY) + "\n")
    assert main(["normalize", "--format", "azure-openai", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["provider"] == "azure"
