"""FOCUS 1.0 and 1.3 CSV rows -> cost events; credits apart; bill reconciliation with drift alerts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from schemas.usage import validate_usage
from streams.sources.focus_import import import_focus, read_focus_rows, reconcile, rows_from_text

# FOCUS 1.0 (AWS Data Exports FOCUS_1_0_AWS-like): ProviderName, AI row for Bedrock, a compute row, a credit.
FOCUS_10 = (
    "\ufeffBilledCost,BillingAccountId,BillingAccountName,BillingCurrency,BillingPeriodEnd,BillingPeriodStart,"
    "ChargeCategory,ChargeClass,ChargeDescription,ChargePeriodEnd,ChargePeriodStart,EffectiveCost,ListCost,"
    "ProviderName,PublisherName,InvoiceIssuerName,RegionId,ResourceId,ResourceName,ServiceCategory,ServiceName,"
    "SkuId,SkuMeter,SubAccountId,Tags,PricingQuantity,PricingUnit\n"
    "12.5,111122223333,Acme,USD,2026-12-01T00:00:00Z,2026-11-01T00:00:00Z,Usage,,Claude input tokens,"
    "2026-11-27T00:00:00Z,2026-11-26T00:00:00Z,12.5,12.5,AWS,Anthropic,AWS,us-east-1,"
    "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0,"
    "anthropic.claude-sonnet-4-5-20250929-v1:0,AI and Machine Learning,Amazon Bedrock,SKU1,"
    "Claude Sonnet 4.5 Input Tokens,444455556666,\"{\"\"team\"\":\"\"cx\"\",\"\"env\"\":\"\"prod\"\"}\",4.1667,1M Tokens\n"
    "30.0,111122223333,Acme,USD,2026-12-01T00:00:00Z,2026-11-01T00:00:00Z,Usage,,p5 instance hours,"
    "2026-11-26 01:00:00,2026-11-26 00:00:00,29.25,30.0,AWS,AWS,AWS,us-east-1,i-0abc,gpu-box,Compute,"
    "Amazon Elastic Compute Cloud,SKU2,Instance Hours,444455556666,,1,Hours\n"
    "-5.0,111122223333,Acme,USD,2026-12-01T00:00:00Z,2026-11-01T00:00:00Z,Credit,,Promo credit,"
    "2026-11-27T00:00:00Z,2026-11-26T00:00:00Z,-5.0,0,AWS,AWS,AWS,,,,AI and Machine Learning,Amazon Bedrock,,,,,,\n"
)

# FOCUS 1.3: ServiceProviderName replaces ProviderName; Azure-style 7-digit fractions.
FOCUS_13 = (
    "BilledCost,BillingAccountId,BillingCurrency,ChargeCategory,ChargePeriodEnd,ChargePeriodStart,EffectiveCost,"
    "ServiceProviderName,HostProviderName,InvoiceIssuerName,ResourceId,ResourceName,ServiceCategory,"
    "ServiceSubcategory,ServiceName,SkuMeter,SubAccountId,Tags\n"
    "8.40,ba-9,USD,Usage,2026-11-27T00:00:00.0000000Z,2026-11-26T00:00:00.0000000Z,8.40,Microsoft,Microsoft,"
    "Microsoft,/subscriptions/s1/resourceGroups/rg/providers/Microsoft.CognitiveServices/accounts/aoai,"
    "aoai,AI and Machine Learning,Generative AI,Azure OpenAI,,sub-1,\"{\"\"team\"\": \"\"search\"\"}\"\n"
)


def test_focus_10_rows() -> None:
    result = import_focus(rows_from_text(FOCUS_10))
    assert result.errors == [] and result.rows == 3
    assert (result.credits, result.credits_usd) == (1, -5.0)
    bedrock, ec2 = result.events
    for event in result.events:
        validate_usage(event)
    assert (bedrock["provider"], bedrock["model"], bedrock["service"], bedrock["cost_usd"]) == (
        "AWS", "Claude Sonnet 4.5 Input Tokens", "Amazon Bedrock", 12.5)
    assert bedrock["timestamp"] == 1795651200.0  # 2026-11-26T00:00:00Z
    assert bedrock["team"] == "cx" and bedrock["operation"] == "Usage"
    assert bedrock["tags"]["account"] == "111122223333" and bedrock["tags"]["sub_account"] == "444455556666"
    assert bedrock["tags"]["env"] == "prod" and bedrock["tags"]["resource_id"].startswith("arn:aws:bedrock")
    # not AI: the model is the service; EffectiveCost (amortised), not BilledCost
    assert (ec2["model"], ec2["cost_usd"], ec2["timestamp"]) == ("Amazon Elastic Compute Cloud", 29.25, 1795651200.0)
    # deterministic ids
    again = import_focus(rows_from_text(FOCUS_10))
    assert [e["event_id"] for e in again.events] == [e["event_id"] for e in result.events]
    assert len({e["event_id"] for e in result.events}) == 2


def test_focus_13_rows() -> None:
    [event] = import_focus(rows_from_text(FOCUS_13)).events
    assert (event["provider"], event["model"], event["team"]) == ("Microsoft", "aoai", "search")  # ResourceName
    assert event["timestamp"] == 1795651200.0 and event["tags"]["service_subcategory"] == "Generative AI"


def test_bad_rows_are_reported_by_number() -> None:
    text = FOCUS_13 + FOCUS_13.splitlines()[1].replace("8.40,Microsoft", "abc,Microsoft") + "\n"
    text += FOCUS_13.splitlines()[1].replace('"{""team"": ""search""}"', "not-json") + "\n"
    result = import_focus(rows_from_text(text))
    assert len(result.events) == 1
    assert result.errors[0].startswith("row 3: EffectiveCost: must be a number")
    assert result.errors[1].startswith("row 4: Tags: must be a JSON object")


def test_import_focus_cli_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streams.cli.main import main

    path = tmp_path / "focus.csv"
    path.write_text(FOCUS_10, encoding="utf-8")
    assert main(["import-focus", "--stdout", str(path)]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 2 and "1 credit rows" in err
    assert json.loads(out.splitlines()[0])["cost_usd"] == 12.5


def test_parquet_without_pyarrow_is_refused(tmp_path: Path) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pyarrow"):
            list(read_focus_rows(tmp_path / "x.parquet"))
    with pytest.raises(ConfigError, match="not a FOCUS export"):
        (tmp_path / "x.csv").write_text("a,b\n1,2\n")
        list(read_focus_rows(tmp_path / "x.csv"))


def test_reconcile_drift_and_alert() -> None:
    """Per provider and day: $90 estimated vs $100 billed is -10% (> 5%): billing_drift alert."""
    day = 1795651200.0
    usage = [{"provider": "aws.bedrock", "timestamp": day + 60 * i, "cost_usd": 9.0} for i in range(10)]
    usage.append({"provider": "aws.bedrock", "timestamp": day + 100, "model": "x"})  # unpriced: ignored
    usage.append({"provider": "openai", "timestamp": day + 100, "cost_usd": 20.4})
    billed = [{"provider": "AWS", "timestamp": day, "cost_usd": 60.0},
              {"provider": "AWS", "timestamp": day + 3600, "cost_usd": 40.0},
              {"provider": "openai", "timestamp": day, "cost_usd": 20.0}]
    results = {r.key["provider"]: r for r in reconcile(usage, billed, provider_aliases={"AWS": "aws.bedrock"})}
    bedrock = results["aws.bedrock"]
    assert (bedrock.day, bedrock.estimated_usd, bedrock.billed_usd) == ("2026-11-26", pytest.approx(90.0), 100.0)
    assert bedrock.drift_usd == pytest.approx(-10.0) and bedrock.drift_ratio == pytest.approx(-0.1)
    alert = bedrock.alert
    assert alert.type == "billing_drift" and alert.status == "firing" and alert.severity == "warning"
    assert (alert.observed, alert.expected) == (pytest.approx(90.0), 100.0)
    assert "-10.0%" in alert.summary
    # openai: +2% is within tolerance
    assert results["openai"].alert is None and results["openai"].drift_ratio == pytest.approx(0.02)
    # a tighter tolerance flags it
    tight = {r.key["provider"]: r for r in reconcile(usage, billed, tolerance=0.01)}
    assert tight["openai"].alert is not None


HEAD = "ChargePeriodStart,ChargePeriodEnd,EffectiveCost,BillingCurrency,ProviderName,ServiceName,ServiceCategory,Tags"


def test_billing_currency_is_converted_with_fx_rates_or_refused(tmp_path: Path) -> None:
    """A EUR row became cost_usd at face value."""
    from streams.sources.focus_import import load_fx_rates

    text = (HEAD + "\n2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,100.0,EUR,Microsoft,Azure OpenAI,"
            "AI and Machine Learning,\n")
    refused = import_focus(rows_from_text(text))
    assert refused.events == [] and len(refused.errors) == 1
    assert refused.errors[0].startswith("row 2: BillingCurrency: is not USD and no rate is given for it")
    rates = tmp_path / "fx.json"
    rates.write_text('{"EUR": 1.08}')
    [event] = import_focus(rows_from_text(text), fx_rates=load_fx_rates(rates)).events
    assert event["cost_usd"] == pytest.approx(108.0)
    assert (event["tags"]["original_currency"], event["tags"]["original_cost"]) == ("EUR", "100.0")
    rates.write_text('{"EUR": -1}')
    with pytest.raises(ConfigError, match="EUR: the rate must be a positive number"):
        load_fx_rates(rates)


def test_charge_period_end_before_start_is_refused() -> None:
    text = HEAD + "\n2026-11-27T00:00:00Z,2026-11-26T00:00:00Z,1.0,USD,OpenAI,OpenAI API,,\n"
    result = import_focus(rows_from_text(text))
    assert result.events == [] and "ChargePeriodEnd: must not lie before ChargePeriodStart" in result.errors[0]


@pytest.mark.parametrize("tags, team", [
    ('{"user:team": "ml"}', "ml"),          # AWS cost-allocation tag
    ('{"team": "ml", "goog-k8s-cluster-name": "c1"}', "ml"),  # GCP label
    ('{"Team": "ml"}', "ml"),               # Azure tag
])
def test_provider_tag_conventions_map_to_team(tags: str, team: str) -> None:
    cell = '"' + tags.replace('"', '""') + '"'
    text = HEAD + f"\n2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,1.0,USD,AWS,Amazon Bedrock,,{cell}\n"
    [event] = import_focus(rows_from_text(text)).events
    assert event["team"] == team


def test_the_tag_map_is_configurable() -> None:
    from schemas.focus import parse_tag_map
    from streams.config import Settings

    settings = Settings.from_env({"SPENDSENTRY_FOCUS_TAG_MAP": "team=user:cost-team|squad"})
    assert settings.focus_tag_map["team"] == ("user:cost-team", "squad")
    cell = '"{""squad"": ""search"", ""team"": ""ignored""}"'
    text = HEAD + f"\n2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,1.0,USD,AWS,Amazon Bedrock,,{cell}\n"
    [event] = import_focus(rows_from_text(text), tag_map=settings.focus_tag_map).events
    assert event["team"] == "search"
    with pytest.raises(ConfigError, match="SPENDSENTRY_FOCUS_TAG_MAP"):
        Settings.from_env({"SPENDSENTRY_FOCUS_TAG_MAP": "owner=x"})
    assert parse_tag_map("")["team"][0] == "team"


def test_an_ai_row_model_never_falls_back_to_the_service_name() -> None:
    text = (HEAD + ",ResourceId\n2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,1.0,USD,AWS,Amazon Bedrock,"
            "AI and Machine Learning,,arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku\n"
            "2026-11-26T00:00:00Z,2026-11-27T00:00:00Z,1.0,USD,AWS,Amazon Bedrock,AI and Machine Learning,,\n")
    models = [e["model"] for e in import_focus(rows_from_text(text)).events]
    assert models == ["anthropic.claude-3-haiku", "unknown"]
