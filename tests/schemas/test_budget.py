"""Budget validation and defaults."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.budget import Budget, BurnRule, default_burn_rules, validate_budget
from schemas.errors import ValidationError

BODY: dict[str, Any] = {"name": "gpt-4o monthly", "match": {"model": "gpt-4o"}, "period": "month",
                        "timezone": "UTC", "amount_usd": 5000, "thresholds_pct": [80, 50, 100]}


def test_valid_budget_with_defaults() -> None:
    b = validate_budget(BODY)
    assert b.id.startswith("bud_")
    assert (50.0, 80.0, 100.0) == b.thresholds_pct
    assert default_burn_rules("month") == b.burn_rules
    assert [(3600, 300, 14.4), (21600, 1800, 6.0), (259200, 21600, 1.0)] == [
        (r.long_s, r.short_s, r.burn) for r in b.burn_rules]
    assert ["critical", "critical", "warning"] == [r.severity for r in b.burn_rules]
    assert b == Budget.from_dict(b.to_dict())
    assert b.matches({"model": "gpt-4o", "team": "x"}) and not b.matches({"model": "gpt-4"})


def test_day_defaults_and_custom_rules() -> None:
    day = validate_budget(BODY | {"period": "day", "timezone": "Europe/Paris"})
    assert all(r.long_s <= 6 * 3600 and r.short_s * 12 == r.long_s for r in day.burn_rules)
    custom = validate_budget(BODY | {"burn_rules": [{"long": "2h", "short": "10m", "burn": 3, "severity": "warning"}]})
    assert (BurnRule(7200, 600, 3.0, "warning"),) == custom.burn_rules
    assert "2h/10m@3x" == custom.burn_rules[0].name


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": " "}, "name"), ({"period": "week"}, "period"), ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"timezone": 5}, "timezone"), ({"amount_usd": 0}, "amount_usd"), ({"amount_usd": "5000"}, "amount_usd"),
    ({"amount_usd": float("nan")}, "amount_usd"), ({"thresholds_pct": [0]}, "thresholds_pct[0]"),
    ({"thresholds_pct": "50"}, "thresholds_pct"), ({"match": {"size": "xl"}}, "match.size"),
    ({"burn_rules": []}, "burn_rules"),
    ({"burn_rules": [{"long": "5m", "short": "1h", "burn": 2}]}, "burn_rules[0].short"),
    ({"burn_rules": [{"long": "1x", "short": "5m", "burn": 2}]}, "burn_rules[0].long"),
    ({"burn_rules": [{"long": "4d", "short": "5m", "burn": 2}]}, "burn_rules[0].long"),
    ({"burn_rules": [{"long": "1h", "short": "30s", "burn": 2}]}, "burn_rules[0].short"),
    ({"burn_rules": [{"long": "1h", "short": "5m", "burn": 0}]}, "burn_rules[0].burn"),
    ({"burn_rules": [{"long": "1h", "short": "5m", "burn": 2, "severity": "page"}]}, "burn_rules[0].severity"),
    ({"extra": 1}, "extra"),
])
def test_bad_input_names_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_budget(BODY | changes)
    assert field == info.value.field
