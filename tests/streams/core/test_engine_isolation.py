"""One bad message is one dead letter, never a stopped stream; event time cannot be pushed into
the future; state stays bounded however many distinct keys the input invents."""

from __future__ import annotations

import logging
from dataclasses import replace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.usage import UsageEvent
from streams.core.engine import OTHER, Engine, EngineConfig
from tests.streams.core.test_engine import T0, FlatPricer, run, traffic

GOOD = {"event_id": "good", "timestamp": T0, "provider": "openai", "model": "gpt-4o", "input_tokens": 500,
        "output_tokens": 100}


def nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    return b"[" * depth  # unterminated


def assert_still_counts(engine: Engine) -> None:
    """A good event after the bad ones is counted."""
    before = engine.counters.events
    assert engine.ingest(orjson.dumps({**GOOD, "event_id": f"good-{before}"})) == []
    assert engine.counters.events == before + 1


@pytest.mark.parametrize("kind", ["array", "object", "open"])
@pytest.mark.parametrize("depth", [2_000, 100_000, 1_000_000])
def test_deep_nesting_is_one_dead_letter(depth: int, kind: str) -> None:
    """The typed decoder's RecursionError on deep nesting no longer escapes ingest."""
    engine = Engine(EngineConfig(), FlatPricer())
    dead = engine.ingest(nested(depth, kind))
    assert len(dead) == 1 and dead[0].reason.startswith("invalid JSON: depth limit exceeded"), dead[0].reason
    assert_still_counts(engine)


hostile = st.one_of(
    st.binary(max_size=2_000),
    st.builds(nested, st.integers(min_value=1_025, max_value=1_000_000), st.sampled_from(["array", "object", "open"])),
    st.sampled_from([b"NaN", b"Infinity", b'{"timestamp": NaN}', b"1e999999", b"-" + b"9" * 5_000, b'"x"', b"true",
                     b"null", b"\xff\xfe{}", b'{"event_id": "\xed\xa0\x80"}', b'[{"event_id": 1}', b"{" * 3]),
    st.builds(lambda e, cut: orjson.dumps(e)[:cut], st.just(GOOD), st.integers(min_value=1, max_value=60)),
    st.builds(lambda field, value: orjson.dumps({**GOOD, field: "__V__"}).replace(b'"__V__"', value),
              st.sampled_from(["input_tokens", "timestamp", "cost_usd", "request_count"]),
              st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"1e400", b"9" * 400, b"-1", b"[]", b"{}"])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(hostile, min_size=1, max_size=5))
def test_hostile_messages_never_stop_the_engine(messages: list[bytes]) -> None:
    """Random bytes, deep nesting, NaN and Infinity, absurd numbers, bare scalars, invalid UTF-8,
    truncated JSON: each message is accepted or dead-lettered with a reason, and the engine keeps counting."""
    engine = Engine(EngineConfig(), FlatPricer())
    for raw in messages:
        for letter in engine.ingest(raw):
            assert letter.reason
    assert_still_counts(engine)


def test_a_message_at_the_broker_size_limit_is_processed() -> None:
    """A 1 MB array of events is counted; 1 MB of garbage is one dead letter."""
    engine = Engine(EngineConfig(), FlatPricer())
    events = [{**GOOD, "event_id": f"big{i}"} for i in range(8_000)]
    raw = orjson.dumps(events)
    assert len(raw) > 900_000
    assert engine.ingest(raw) == [] and engine.counters.events == 8_000
    assert len(engine.ingest(b"\x00" * 1_000_000)) == 1
    assert_still_counts(engine)


class ExplodingPricer(FlatPricer):
    def cost(self, event: UsageEvent) -> float | None:
        if event.model == "boom":
            raise ZeroDivisionError("price table broken")
        return super().cost(event)


@pytest.mark.parametrize("shape", ["object", "array"])
def test_an_unexpected_error_while_adding_is_a_dead_letter(shape: str) -> None:
    """Pricing (or anything else) raising dead-letters that event with the error, and the other
    events of the same array are still counted."""
    engine = Engine(EngineConfig(), ExplodingPricer())
    bad = {**GOOD, "event_id": "b", "model": "boom"}
    raw = orjson.dumps(bad if shape == "object" else [GOOD, bad, {**GOOD, "event_id": "c"}])
    dead = engine.ingest(raw)
    assert [d.reason for d in dead] == ["processing failed: ZeroDivisionError: price table broken"]
    assert dead[0].index == (None if shape == "object" else 1)
    assert engine.counters.errors == 1 and engine.counters.events == (0 if shape == "object" else 2)
    assert_still_counts(engine)


def future_config(now: float) -> EngineConfig:
    return EngineConfig(max_future_s=300.0, clock=lambda: now)


def test_a_future_event_is_dead_lettered_and_does_not_move_the_watermark() -> None:
    engine = Engine(future_config(T0 + 60), FlatPricer())
    assert engine.ingest(orjson.dumps(GOOD)) == []
    dead = engine.ingest(orjson.dumps({**GOOD, "event_id": "2099", "timestamp": 4_070_908_800.0}))
    assert len(dead) == 1 and "ahead of the wall clock" in dead[0].reason
    assert dead[0].error is not None and dead[0].error["field"] == "timestamp"
    assert engine.max_ts == T0 and engine.counters.future == 1
    # within the bound: accepted
    assert engine.ingest(orjson.dumps({**GOOD, "event_id": "soon", "timestamp": T0 + 60 + 299})) == []


def test_a_spike_after_a_future_event_still_alerts() -> None:
    """One event stamped 2099 in the middle of the stream: the later 10x burst still fires, and
    no later event is counted late."""
    events = sorted(traffic(200, burst_model="gpt-4o", burst_from=185), key=lambda e: e["timestamp"])
    clock = {"now": T0}
    engine = Engine(replace(future_config(0.0), clock=lambda: clock["now"]), FlatPricer())
    alerts = []
    for i, event in enumerate(events):
        clock["now"] = event["timestamp"]
        if i == len(events) // 2:
            assert len(engine.ingest(orjson.dumps({**GOOD, "event_id": "future", "timestamp": 4_070_908_800.0}))) == 1
        assert engine.ingest(orjson.dumps(event)) == []
        alerts += engine.drain_alerts()
    assert engine.counters.late == 0
    assert [(a.status, a.key) for a in alerts][:1] == [("firing", {"model": "gpt-4o"})]


def test_without_a_clock_the_bound_is_the_running_watermark() -> None:
    engine = Engine(EngineConfig(max_future_s=300.0), FlatPricer())
    assert engine.ingest(orjson.dumps({**GOOD, "timestamp": T0 + 10**6})) == []  # first event: nothing to compare
    engine = Engine(EngineConfig(max_future_s=300.0), FlatPricer())
    assert engine.ingest(orjson.dumps(GOOD)) == []
    assert len(engine.ingest(orjson.dumps({**GOOD, "event_id": "f", "timestamp": T0 + 301}))) == 1
    assert engine.ingest(orjson.dumps({**GOOD, "event_id": "g", "timestamp": T0 + 300})) == []


def test_new_keys_past_max_keys_fold_into_other_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    config = EngineConfig(max_keys=3, group_bys=(("model",), ("model", "team")))
    engine = Engine(config, FlatPricer())
    with caplog.at_level(logging.WARNING, logger="spendsentry.engine"):
        for i in range(10):
            assert engine.ingest(orjson.dumps({**GOOD, "event_id": f"k{i}", "model": f"m{i}", "team": "t"})) == []
    names = sorted(state.name for state in engine.keys.values())
    assert len(engine.keys) == 8  # 3 keys + __other__, per family
    assert f"model={OTHER}" in names and f"model={OTHER},team={OTHER}" in names
    assert engine.counters.events == 10 and engine.counters.folded == 14  # 7 events x 2 families
    others = [s for s in engine.keys.values() if s.key["model"] == OTHER]
    assert [s.total_events for s in others] == [7, 7]
    assert len([r for r in caplog.records if "SPENDSENTRY_MAX_KEYS" in r.getMessage()]) == 2  # once per family


def test_unpriced_models_are_bounded() -> None:
    engine = Engine(EngineConfig(max_keys=2), FlatPricer())
    run(engine, [{**GOOD, "event_id": f"u{i}", "model": "mystery", "provider": f"p{i}"} for i in range(5)])
    assert dict(engine.unpriced_models) == {("p0", "mystery"): 1, ("p1", "mystery"): 1, (OTHER, OTHER): 3}


def test_the_provider_of_each_model_is_bounded_too() -> None:
    """The price mix remembers each model's provider: endless model names must not grow it."""
    engine = Engine(EngineConfig(max_keys=3), FlatPricer())
    run(engine, [{**GOOD, "event_id": f"m{i}", "model": f"junk-{i}"} for i in range(50)])
    assert len(engine._providers) == 3


def test_an_error_outside_any_event_is_a_dead_letter_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """An error before the message is split into events (here in the decoder) dead-letters it whole."""
    engine = Engine(EngineConfig(), FlatPricer())

    def broken_decoder(raw: bytes) -> None:
        raise KeyError("cost")

    monkeypatch.setattr("streams.core.engine.decode_usage", broken_decoder)
    dead = engine.ingest(orjson.dumps(GOOD))
    assert [(d.reason, d.original) for d in dead] == [("processing failed: KeyError: 'cost'", orjson.dumps(GOOD))]
    assert engine.counters.errors == 1
    monkeypatch.undo()
    assert_still_counts(engine)


def test_a_denormal_cost_is_counted_and_every_bucket_still_closes() -> None:
    """``cost_usd=5e-324`` over two requests is a cost per request of 0: ``log`` of it raised in the
    price-mix and cost-per-request paths, the event was dead-lettered after it was counted, and the
    other keys' buckets of that minute were left open and never judged."""
    from streams.core.pricing import PriceCatalogue

    engine = Engine(EngineConfig(), PriceCatalogue.bundled())

    def event(i: int, ts: float, model: str, **extra: object) -> bytes:
        return orjson.dumps({"event_id": f"d{i}", "timestamp": ts, "provider": "openai", "model": model,
                             "service": "s", "input_tokens": 10, "output_tokens": 1, **extra})

    dead = engine.ingest(event(1, T0 + 1, "gpt-4o-mini"))
    dead += engine.ingest(event(2, T0 + 2, "gpt-4o", cost_usd=5e-324, request_count=2))
    for m in range(1, 4):
        dead += engine.ingest(event(10 + m, T0 + 60 * m + 30, "gpt-4o-mini"))
    assert dead == [] and engine.counters.errors == 0
    engine.flush()
    assert all(not state.open for state in engine.keys.values())


def test_a_detector_that_raises_costs_its_key_one_minute_and_the_others_are_judged(
        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    run(engine, [{**GOOD, "event_id": f"a{i}", "model": m, "timestamp": T0 + i} for i, m in enumerate(["a", "b"])])
    broken = next(s for s in engine.keys.values() if s.key == {"model": "a"})
    monkeypatch.setattr(broken.detector, "score_one", lambda x: 1 / 0)
    run(engine, [{**GOOD, "event_id": "later", "model": "b", "timestamp": T0 + 130}])
    assert engine.counters.errors == 1
    assert {state.name: state.last_closed for state in engine.keys.values()} == {"model=a": None, "model=b": T0}
    assert not broken.open  # its bucket was closed (unjudged), not left behind
    assert_still_counts(engine)
