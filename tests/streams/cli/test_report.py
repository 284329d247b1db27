"""``spendsentry report``: the worker's FinOps figures from files alone."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from streams.cli.main import main
from streams.core.report import spend_report
from schemas.usage import validate_usage

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600


def usage(i: int, ts: float, team: str | None, cost: float, model: str = "gpt-4o") -> dict:
    event = {"event_id": f"e{i}", "timestamp": ts, "provider": "openai", "model": model, "input_tokens": 900,
             "output_tokens": 100, "cost_usd": cost, "service": "chat"}
    if team:
        event["team"] = team
    return event


def gpu(i: int, ts: float, util: float) -> dict:
    return {"event_id": f"g{i}", "timestamp": ts, "interval_s": 3600.0, "cluster": "c1", "node": "n1",
            "gpu_model": "NVIDIA H100 80GB HBM3", "utilization": util, "hourly_price_usd": 4.0, "team": "ml"}


def write(path: Path, items: list[dict]) -> str:
    path.write_bytes(b"\n".join(orjson.dumps(i) for i in items) + b"\n")
    return str(path)


def test_report_spend_unit_costs_untagged_movers_and_gpu_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SPENDSENTRY_REQUIRED_TAGS", "team")
    prices = tmp_path / "gpu_prices.json"
    prices.write_text(json.dumps({"*H100*": {"on_demand": 4.0, "reserved": 2.5, "spot": 1.5}}))
    monkeypatch.setenv("SPENDSENTRY_GPU_PRICES_FILE", str(prices))
    events = ([usage(i, T0 - 3600 + i, "cx", 1.0) for i in range(2)]              # previous hour: cx $2
              + [usage(10 + i, T0 + i, "cx", 1.0) for i in range(5)]              # this hour: cx $5
              + [usage(20 + i, T0 + i, None, 1.0) for i in range(5)])             # untagged $5
    events_path = write(tmp_path / "events.jsonl", events)
    gpu_path = write(tmp_path / "gpu.jsonl", [gpu(1, T0 + 1800, 0.25)])
    code = main(["report", events_path, "--gpu", gpu_path, "--from", "2026-11-18T11:00:00Z",
                 "--to", "2026-11-18T12:00:00Z", "--format", "json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["total"]["cost_usd"] == 10.0 and report["total"]["requests"] == 10
    assert report["total"]["cost_per_1k_tokens"] == pytest.approx(1.0) and report["total"]["cost_per_request"] == 1.0
    assert report["untagged"] == {"required": ["team"], "cost_usd": 5.0, "share": 0.5}
    assert report["previous"]["total"]["cost_usd"] == 2.0
    assert {(tuple(m["key"].values()), m["change_usd"]) for m in report["movers"]} == {(("cx",), 3.0), ((None,), 5.0)}
    assert report["gpu"]["cost_usd"] == 4.0 and report["gpu"]["idle_usd"] == 3.0
    assert report["gpu"]["cost_per_gpu_hour"] == 4.0
    assert report["gpu"]["purchase_options"][0]["comparison"]["cheapest"] in ("reserved", "spot", "on_demand")


def test_report_table_and_csv_print_the_groups(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "events.jsonl", [usage(i, T0 + i, "cx" if i % 2 else "search", 0.5) for i in range(10)])
    assert main(["report", path, "--group-by", "team"]) == 0
    table = capsys.readouterr().out
    assert "team=cx" in table and "TOTAL" in table and "$5.00" in table
    assert main(["report", path, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("team,cost_usd") and rows[-1].startswith("TOTAL,5.0")


def test_report_on_a_focus_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bill export through import-focus, then the report: spend by service from the bill alone."""
    bill = tmp_path / "bill.csv"
    bill.write_text("ChargePeriodStart,ChargePeriodEnd,EffectiveCost,BillingCurrency,ProviderName,ServiceName,"
                    "ServiceCategory,SkuMeter,Tags\n"
                    "2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,12.5,USD,AWS,Amazon Bedrock,AI and Machine Learning,"
                    "claude-sonnet-4-5,\"{\"\"user:team\"\": \"\"cx\"\"}\"\n"
                    "2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,30,USD,AWS,Amazon EC2,Compute,,\n")
    assert main(["import-focus", "--stdout", str(bill)]) == 0
    events = tmp_path / "bill.jsonl"
    events.write_text(capsys.readouterr().out)
    assert main(["report", str(events), "--group-by", "service,team", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["key"], r["cost_usd"]) for r in report["rows"]] == [
        ({"service": "Amazon EC2", "team": None}, 30.0), ({"service": "Amazon Bedrock", "team": "cx"}, 12.5)]


def test_report_refuses_a_bad_group_by_and_lists_bad_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "events.jsonl", [usage(1, T0, "cx", 1.0)])
    assert main(["report", path, "--group-by", "colour"]) == 2
    assert "--group-by 'colour'" in capsys.readouterr().err
    (tmp_path / "bad.jsonl").write_bytes(orjson.dumps(usage(1, T0, "cx", 1.0)) + b"\n{nope\n")
    assert main(["report", str(tmp_path / "bad.jsonl")]) == 1
    assert "bad.jsonl: line 2: not JSON" in capsys.readouterr().err


def test_the_report_and_the_api_share_the_spend_code() -> None:
    """spend_report's spend table is allocated_spend over the same rows the API sums."""
    from streams.config import Settings

    dims = Settings().engine_config().attribution.dims  # type: ignore[union-attr]
    events = [(validate_usage(usage(i, T0 + i, "cx", 1.0)), 1.0) for i in range(3)]
    report = spend_report(events, [], dims=dims, group_by=("team",), start=T0, end=T0 + 60)
    assert report["rows"][0]["key"] == {"team": "cx"} and report["total"]["cost_usd"] == 3.0
    assert report["gpu"] is None
