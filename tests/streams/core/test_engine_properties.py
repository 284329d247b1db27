"""Hostile input never crashes the engine: every message is accepted or dead-lettered with a reason."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ValidationError
from schemas.usage import validate_usage
from streams.core.engine import Engine, EngineConfig
from tests.streams.core.test_engine import FlatPricer

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=30,
)
field_values = st.none() | st.booleans() | st.integers(min_value=-10**12, max_value=10**22) | \
    st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=300) | st.lists(st.integers(), max_size=3)
events = st.fixed_dictionaries({}, optional={
    name: field_values for name in (
        "event_id", "timestamp", "provider", "model", "input_tokens", "output_tokens", "cached_input_tokens",
        "cache_creation_input_tokens", "reasoning_tokens", "cost_usd", "request_count", "team", "tags")
})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    dead = engine.ingest(raw)
    assert all(d.reason for d in dead)
    if not dead and not engine.counters.events + engine.counters.duplicates:
        assert orjson.loads(raw) == []  # only an empty array carries nothing


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_is_accepted_or_dead_lettered(value: object) -> None:
    try:
        raw = orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError):
        return  # NaN/Infinity are not JSON; they arrive as invalid bytes (covered above)
    engine = Engine(EngineConfig(), FlatPricer())
    dead = engine.ingest(raw)
    if isinstance(value, (list, dict)):
        items = value if isinstance(value, list) else [value]
        assert engine.counters.events + engine.counters.duplicates + len(dead) == len(items)
    else:
        assert len(dead) == 1 and dead[0].reason.startswith("message must be a JSON object or array")


@settings(max_examples=500, deadline=None)
@given(events)
def test_validator_raises_only_validation_errors(data: dict) -> None:
    try:
        event = validate_usage(data)
    except ValidationError as exc:
        assert exc.field and exc.rule
        return
    assert event.input_tokens >= event.cached_input_tokens >= 0
    assert event.cost_usd is None or 0 <= event.cost_usd <= 10**6


def test_deep_nesting_and_huge_numbers_are_dead_lettered() -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    assert engine.ingest(b"[" * 5000 + b"]" * 5000)[0].reason.startswith("invalid JSON")
    (dead,) = engine.ingest(b'{"event_id":"a","timestamp":1795759200,"provider":"p","model":"m","input_tokens":1e400}')
    assert dead.reason.startswith("invalid JSON") or dead.error["field"] == "input_tokens"
    assert engine.ingest(b'{"event_id":"a","timestamp":NaN,"provider":"p","model":"m"}')[0].reason.startswith("invalid JSON")
