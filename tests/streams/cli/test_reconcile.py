"""``spendsentry reconcile``: drift per scope and day, non-zero exit beyond the tolerance."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from schemas.errors import ConfigError
from streams.cli.main import main
from streams.cli.reconcile import parse_aliases

BILL = (
    "BillingAccountId,ChargeCategory,ChargePeriodEnd,ChargePeriodStart,EffectiveCost,ProviderName,"
    "ServiceCategory,ServiceName,SkuMeter\n"
    "111,Usage,2026-11-27T00:00:00Z,2026-11-26T00:00:00Z,100.0,Amazon Web Services,AI and Machine Learning,"
    "Amazon Bedrock,Claude input\n"
    "111,Usage,2026-11-28T00:00:00Z,2026-11-27T00:00:00Z,100.0,Amazon Web Services,AI and Machine Learning,"
    "Amazon Bedrock,Claude input\n"
)


def write(tmp_path: Path, day1: float, day2: float) -> tuple[str, str]:
    bill = tmp_path / "bill.csv"
    bill.write_text(BILL)
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(orjson.dumps({"event_id": f"e{i}", "timestamp": ts, "provider": "aws.bedrock",
                                                "model": "claude", "cost_usd": cost})
                                  for i, (ts, cost) in enumerate([("2026-11-26T10:00:00Z", day1 / 2),
                                                                   ("2026-11-26T20:00:00Z", day1 / 2),
                                                                   ("2026-11-27T12:00:00Z", day2)])))
    return str(bill), str(events)


def test_within_tolerance_exits_zero(tmp_path, capsys) -> None:
    bill, events = write(tmp_path, 98.0, 103.0)  # -2% and +3%
    code = main(["reconcile", "--focus", bill, "--events", events, "--alias", "Amazon Web Services=aws.bedrock"])
    out = capsys.readouterr().out
    assert code == 0
    assert "provider=aws.bedrock  2026-11-26         98.00        100.00         -2.00     -2.0%  ok" in out
    assert "2026-11-27        103.00        100.00         +3.00     +3.0%  ok" in out


def test_drift_beyond_tolerance_exits_one(tmp_path, capsys) -> None:
    bill, events = write(tmp_path, 98.0, 120.0)  # +20% on the 27th
    code = main(["reconcile", "--focus", bill, "--events", events, "--alias", "Amazon Web Services=aws.bedrock",
                 "--tolerance", "0.1"])
    out = capsys.readouterr().out
    assert code == 1
    assert "+20.00    +20.0%  DRIFT" in out


def test_unaliased_provider_is_reported_per_side(tmp_path, capsys) -> None:
    bill, events = write(tmp_path, 100.0, 100.0)
    assert main(["reconcile", "--focus", bill, "--events", events]) == 1  # names differ: both sides drift
    out = capsys.readouterr().out
    assert "provider=Amazon Web Services" in out and "provider=aws.bedrock" in out


def test_bad_alias() -> None:
    with pytest.raises(ConfigError, match="BILL_PROVIDER=USAGE_PROVIDER"):
        parse_aliases(["nope"])
