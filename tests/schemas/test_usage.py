"""Usage event validation: every rule names the field, the value and the rule."""

from __future__ import annotations

import pytest

from schemas.errors import ValidationError
from schemas.usage import UsageEvent, parse_timestamp, validate_usage

GOOD = {"event_id": "e1", "timestamp": "2026-11-27T06:00:00Z", "provider": "openai", "model": "gpt-4o"}


def test_minimal_event_gets_defaults() -> None:
    event = validate_usage(GOOD)
    assert event == UsageEvent("e1", 1795759200.0, "openai", "gpt-4o")
    assert event.request_count == 1 and event.cost_usd is None and event.tags == {}


def test_full_event_round_trips() -> None:
    data = {**GOOD, "timestamp": 1795759200.5, "input_tokens": 1000, "output_tokens": 200,
            "cached_input_tokens": 400, "cache_creation_input_tokens": 100, "reasoning_tokens": 50,
            "cost_usd": 0.01, "request_count": 3, "operation": "chat", "service": "bot", "team": "cx",
            "environment": "prod", "pipeline_stage": "rerank", "experiment": "exp-7", "tags": {"tenant": "acme"}}
    event = validate_usage(data)
    assert event.to_dict() == data
    assert event.dimension("team") == "cx" and event.dimension("tags.tenant") == "acme"


@pytest.mark.parametrize("timestamp, expected", [
    ("2026-11-27T06:00:00Z", 1795759200.0),
    ("2026-11-27T07:00:00+01:00", 1795759200.0),
    (1795759200, 1795759200.0),
    (1795759200.25, 1795759200.25),
])
def test_timestamp_forms(timestamp: object, expected: float) -> None:
    assert parse_timestamp(timestamp) == expected


@pytest.mark.parametrize("change, field, rule", [
    ({"event_id": None}, "event_id", "is required"),
    ({"event_id": 5}, "event_id", "must be a string"),
    ({"event_id": ""}, "event_id", "must be 1 to 256 characters"),
    ({"timestamp": "2026-11-27T06:00:00"}, "timestamp", "RFC 3339 timestamp must carry a zone (Z or +hh:mm)"),
    ({"timestamp": "yesterday"}, "timestamp", "must be an RFC 3339 string with zone or epoch seconds"),
    ({"timestamp": 1795759200000}, "timestamp", "must lie between 2000-01-01 and 2100-01-01 (epoch seconds, not ms)"),
    ({"timestamp": True}, "timestamp", "must be an RFC 3339 string with zone or epoch seconds"),
    ({"model": None}, "model", "is required"),
    ({"input_tokens": -1}, "input_tokens", "must be >= 0"),
    ({"input_tokens": 1.5}, "input_tokens", "must be an integer"),
    ({"input_tokens": "12"}, "input_tokens", "must be an integer"),
    ({"output_tokens": 10**11}, "output_tokens", "must be <= 10000000000"),
    ({"input_tokens": 10, "cached_input_tokens": 11}, "cached_input_tokens",
     "must be <= input_tokens (10); input_tokens includes cached tokens"),
    ({"output_tokens": 1, "reasoning_tokens": 2}, "reasoning_tokens",
     "must be <= output_tokens (1); output_tokens includes reasoning tokens"),
    ({"cost_usd": float("nan")}, "cost_usd", "must be a finite number between 0 and 1000000"),
    ({"cost_usd": -0.1}, "cost_usd", "must be a finite number between 0 and 1000000"),
    ({"cost_usd": "1"}, "cost_usd", "must be a number"),
    ({"request_count": 0}, "request_count", "must be >= 1"),
    ({"team": 3}, "team", "must be a string"),
    ({"tags": ["a"]}, "tags", "must be an object of string values"),
    ({"tags": {"a": None}}, "tags.a", "must be a string"),
])
def test_rules_name_field_and_rule(change: dict, field: str, rule: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_usage({**GOOD, **change})
    assert (info.value.field, info.value.rule) == (field, rule)
    assert str(info.value).startswith(f"{field}: {rule}")


def test_non_object_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        validate_usage([GOOD])
    assert info.value.field == "$"


def test_numeric_tag_values_become_strings() -> None:
    assert validate_usage({**GOOD, "tags": {"shard": 3}}).tags == {"shard": "3"}
