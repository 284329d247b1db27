"""``decode_usage`` (typed decoding, the worker's hot path) agrees with ``validate_usage`` on every
input: it either returns exactly the events the full validator builds, or None (the caller then
takes the full path and gets each error with its message). Never an event the validator rejects."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.errors import ValidationError
from schemas.usage import MAX_COST_USD, MAX_STRING, MAX_TOKENS, UsageEvent, decode_usage, validate_usage

TS = 1_795_759_200

zones = st.one_of(st.just(timezone.utc), st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m))))
#: RFC 3339 as producers write it (``Z`` or an offset, with or without fractions), and near misses
rfc3339 = st.one_of(
    st.builds(lambda d, z, spec: d.replace(tzinfo=z).isoformat(timespec=spec).replace("+00:00", "Z"),
              st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2100, 1, 2)), zones,
              st.sampled_from(["seconds", "milliseconds", "microseconds"])),
    st.sampled_from(["2026-11-27T09:00:00Z", "2026-11-27T09:00:00.123456789Z", "2026-11-27t09:00:00z",
                     " 2026-11-27T09:00:00Z ", "2026-11-27 09:00:00+01:00", "2026-11-27T09:00:00", "2026-11-27",
                     "2026-11-27T09:00:00+24:00", "2026-11-27T09:00:60Z", "1999-12-31T23:59:59Z", "2026-W48-5",
                     "2100-01-01T00:00:00Z", "2026-11-27T09:00:00-00:30", "20261127T090000Z", "not a time"]),
    st.text(max_size=30),
)
texts = st.one_of(st.text(max_size=4), st.text(min_size=MAX_STRING, max_size=MAX_STRING + 1), st.just(""))
counts = st.one_of(st.integers(-2, 5000), st.sampled_from([MAX_TOKENS, MAX_TOKENS + 1, 2**63]),
                   st.floats(allow_nan=False, allow_infinity=False, width=32), st.booleans(), st.none(), texts)
field_values = {
    "event_id": texts, "provider": texts, "model": texts,
    "timestamp": st.one_of(st.integers(0, 5_000_000_000), st.floats(allow_nan=False, allow_infinity=False),
                           rfc3339, st.booleans()),
    "input_tokens": counts, "output_tokens": counts, "cached_input_tokens": counts,
    "cache_creation_input_tokens": counts, "reasoning_tokens": counts, "request_count": counts,
    "cost_usd": st.one_of(st.none(), st.floats(-1, MAX_COST_USD * 2, allow_nan=False), st.integers(-1, 10), texts),
    "service_tier": st.one_of(st.none(), st.sampled_from(["default", "batch", "priority", "flex", "turbo", ""])),
    "team": st.one_of(st.none(), texts, st.integers()),
    "tags": st.one_of(st.none(), st.dictionaries(texts, st.one_of(texts, st.integers(), st.booleans()), max_size=3)),
    "unknown_field": st.integers(),
}
valid = {"event_id": "e1", "timestamp": TS, "provider": "openai", "model": "gpt-4o"}
optional = {k: v for k, v in field_values.items() if k not in valid}
plain_text = st.text(min_size=1, max_size=8)
plain = {"input_tokens": st.integers(0, 5000), "output_tokens": st.integers(0, 5000),
         "cached_input_tokens": st.integers(0, 5000), "cache_creation_input_tokens": st.integers(0, 5000),
         "reasoning_tokens": st.integers(0, 5000), "request_count": st.integers(1, 5),
         "cost_usd": st.floats(0, 10), "service_tier": st.sampled_from(["default", "batch", "flex"]),
         "team": plain_text, "tags": st.dictionaries(plain_text, plain_text, max_size=2)}
required = {k: st.just(v) for k, v in valid.items()}
plain_events = st.fixed_dictionaries({**required, "timestamp": st.just(TS) | rfc3339}, optional=plain)  # mostly taken by the fast path
events = (plain_events
          | plain_events.flatmap(lambda d: st.fixed_dictionaries(  # plain, then odd values on the other fields
              {k: st.just(v) for k, v in d.items()}, optional={k: v for k, v in optional.items() if k not in d}))
          | st.fixed_dictionaries({k: st.just(v) | field_values[k] for k, v in valid.items()}, optional=optional)
          | st.fixed_dictionaries({}, optional=field_values))


def full_path(raw: bytes) -> list[UsageEvent] | None:
    """What the engine's full path makes of ``raw``: every event, or None when one is rejected."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    items = data if isinstance(data, list) else [data]
    try:
        return [validate_usage(item) for item in items]
    except ValidationError:
        return None


@settings(max_examples=600, deadline=None)
@given(st.one_of(events, st.lists(events, max_size=3)))
@example({**valid, "input_tokens": 10, "cached_input_tokens": 11})
@example({**valid, "output_tokens": 10, "reasoning_tokens": 11})
@example({**valid, "input_tokens": 10.0})
@example({**valid, "tags": {"k": 1}})
@example({**valid, "timestamp": "2026-11-27T09:00:00Z"})
@example({**valid, "timestamp": "2026-11-27T09:00:00"})
@example([{**valid, "timestamp": "2026-11-27T09:00:00Z"}, {**valid, "timestamp": "2126-11-27T09:00:00Z"}])
@example([{**valid}, {**valid, "model": ""}])
def test_the_typed_fast_path_agrees_with_the_full_validator(data: object) -> None:
    raw = json.dumps(data).encode()  # (orjson refuses integers beyond 64 bits)
    fast = decode_usage(raw)
    if fast is not None:  # None: the caller takes the full path, the same result by construction
        assert fast == full_path(raw)


def test_plain_events_take_the_fast_path() -> None:
    event = {**valid, "input_tokens": 900, "cached_input_tokens": 300, "output_tokens": 50, "cost_usd": 0.01,
             "service_tier": "batch", "team": "cx", "tags": {"project": "search"}}
    assert decode_usage(orjson.dumps(event)) == [validate_usage(event)]
    assert decode_usage(orjson.dumps([event, valid])) == [validate_usage(event), validate_usage(valid)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({**required, "timestamp": rfc3339}, optional=plain), min_size=1, max_size=3))
def test_rfc3339_timestamps_take_the_typed_path_when_the_full_validator_accepts_them(items: list[dict]) -> None:
    """Every timestamp the full validator accepts (Z or an offset, any fraction) is decoded on the
    typed path, to the same value; the others leave it, so their errors come from the full validator."""
    raw = json.dumps(items).encode()
    assert decode_usage(raw) == full_path(raw)


def test_rfc3339_errors_are_the_full_validators() -> None:
    for ts, reason in [("2026-11-27T09:00:00", "RFC 3339 timestamp must carry a zone (Z or +hh:mm)"),
                       ("yesterday", "must be an RFC 3339 string with zone or epoch seconds"),
                       ("2126-11-27T09:00:00Z", "must lie between 2000-01-01 and 2100-01-01 (epoch seconds, not ms)")]:
        raw = orjson.dumps({**valid, "timestamp": ts})
        assert decode_usage(raw) is None
        with pytest.raises(ValidationError) as caught:
            validate_usage(orjson.loads(raw))
        assert (caught.value.field, caught.value.rule) == ("timestamp", reason)


def test_invalid_json_broken_utf8_and_deep_nesting_fall_back() -> None:
    assert decode_usage(b"{not json") is None
    assert decode_usage(b"[" * 100_000 + b"]" * 100_000) is None
    assert decode_usage(b'{"event_id":"a","timestamp":1795759200,"provider":"p","model":"m","tags":' + b"[" * 5000) is None
    assert decode_usage(b'{"event_id":"\xff","timestamp":1795759200,"provider":"p","model":"m"}') is None
