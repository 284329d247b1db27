"""The pure spend engine: buckets, watermark, dedup, late events, dead letters, snapshots."""

from __future__ import annotations

import random

import orjson

from schemas.usage import UsageEvent
from streams.core.engine import Engine, EngineConfig

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600  # an hour boundary in 2026


class FlatPricer:
    """$1 per 1k tokens of any kind; model 'mystery' is unknown."""

    def cost(self, event: UsageEvent) -> float | None:
        if event.model == "mystery":
            return None
        return (event.input_tokens + event.output_tokens) / 1000.0


def traffic(minutes: int, *, burst_model: str | None = None, burst_from: int = 0, burst_x: int = 10,
            seed: int = 1, start: float = T0, prefix: str = "e"):
    """Steady traffic on two models, optionally multiplied from minute ``burst_from``."""
    rng = random.Random(seed)
    n = 0
    for minute in range(minutes):
        for model, per_minute in (("gpt-4o", 20), ("claude-sonnet-4-5", 10)):
            count = per_minute * (burst_x if model == burst_model and minute >= burst_from else 1)
            for _ in range(count):
                n += 1
                yield {
                    "event_id": f"{prefix}{n}", "timestamp": start + minute * 60 + rng.random() * 59.9,
                    "provider": "openai", "model": model,
                    "input_tokens": rng.randint(400, 600), "output_tokens": rng.randint(80, 120),
                }


def run(engine: Engine, events) -> list:
    alerts = []
    for event in events:
        assert engine.ingest(orjson.dumps(event)) == []
        alerts += engine.drain_alerts()
    return alerts


def test_burst_on_one_model_fires_once_and_resolves() -> None:
    """A 10x burst after three quiet hours fires one alert for that model only, then resolves."""
    engine = Engine(EngineConfig(), FlatPricer())
    events = list(traffic(200, burst_model="gpt-4o", burst_from=180))
    events = [e for e in events if not (e["model"] == "gpt-4o" and 186 * 60 <= e["timestamp"] - T0)]
    events += [e for e in traffic(10, start=T0 + 186 * 60, seed=9, prefix="r") if e["model"] == "gpt-4o"]
    alerts = run(engine, sorted(events, key=lambda e: e["timestamp"]))
    engine.flush()
    alerts += engine.drain_alerts()
    assert [(a.status, a.key) for a in alerts] == [
        ("firing", {"model": "gpt-4o"}), ("resolved", {"model": "gpt-4o"}),
    ]
    firing, resolved = alerts
    assert firing.alert_id == resolved.alert_id
    assert firing.window_start == T0 + 180 * 60
    assert firing.observed > 5 * firing.expected
    assert firing.type == "cost_spike"


def test_duplicate_event_ids_are_dropped() -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    event = {"event_id": "x", "timestamp": T0, "provider": "openai", "model": "gpt-4o", "input_tokens": 1000}
    engine.ingest(orjson.dumps(event))
    engine.ingest(orjson.dumps(event))
    (view,) = engine.spend()
    assert view["events"] == 1 and view["total_cost_usd"] == 1.0
    assert engine.counters.duplicates == 1


def test_late_event_counts_in_total_but_not_in_closed_bucket() -> None:
    engine = Engine(EngineConfig(allowed_lateness_s=10), FlatPricer())
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000}
    engine.ingest(orjson.dumps({**base, "event_id": "a", "timestamp": T0 + 5}))
    engine.ingest(orjson.dumps({**base, "event_id": "b", "timestamp": T0 + 71}))  # closes [T0, T0+60)
    engine.ingest(orjson.dumps({**base, "event_id": "c", "timestamp": T0 + 30}))  # late
    (view,) = engine.spend()
    assert engine.counters.late == 1 and view["late_events"] == 1
    assert view["total_cost_usd"] == 3.0
    assert view["last_closed"]["cost_usd"] == 1.0


def test_out_of_order_within_lateness_is_kept() -> None:
    engine = Engine(EngineConfig(allowed_lateness_s=10), FlatPricer())
    base = {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000}
    engine.ingest(orjson.dumps({**base, "event_id": "a", "timestamp": T0 + 5}))
    engine.ingest(orjson.dumps({**base, "event_id": "b", "timestamp": T0 + 65}))
    engine.ingest(orjson.dumps({**base, "event_id": "c", "timestamp": T0 + 50}))  # bucket still open
    engine.flush()
    assert engine.counters.late == 0
    (view,) = engine.spend()
    assert view["last_closed"]["cost_usd"] == 1.0 and engine.counters.buckets_closed == 2


def test_invalid_messages_become_dead_letters_with_reasons() -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    good = {"event_id": "g", "timestamp": T0, "provider": "openai", "model": "gpt-4o"}
    assert engine.ingest(b"{not json")[0].reason.startswith("invalid JSON")
    (dead,) = engine.ingest(orjson.dumps({**good, "input_tokens": -5}))
    assert dead.error == {"field": "input_tokens", "value": -5, "rule": "must be >= 0"}
    batch = engine.ingest(orjson.dumps([good, {"event_id": "h", "provider": "openai", "model": "x"}, 7]))
    assert [(d.index, d.error["field"] if d.error else None) for d in batch] == [(1, "timestamp"), (2, "$")]
    assert orjson.loads(batch[0].original)["event_id"] == "h"
    assert engine.ingest(b'"text"')[0].reason.startswith("message must be a JSON object or array")
    assert engine.counters.invalid == 5 and engine.counters.events == 1


def test_unknown_model_is_counted_not_dropped() -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    engine.ingest(orjson.dumps({"event_id": "m", "timestamp": T0, "provider": "acme", "model": "mystery"}))
    (view,) = engine.spend()
    assert view["events"] == 1 and view["unpriced_events"] == 1
    assert engine.unpriced_models[("acme", "mystery")] == 1


def test_producer_cost_is_kept() -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    engine.ingest(orjson.dumps({"event_id": "m", "timestamp": T0, "provider": "acme", "model": "mystery",
                                "cost_usd": 0.25}))
    (view,) = engine.spend()
    assert view["total_cost_usd"] == 0.25 and view["unpriced_events"] == 0


def test_group_bys_add_key_families() -> None:
    engine = Engine(EngineConfig(group_bys=(("model",), ("team", "model"))), FlatPricer())
    engine.ingest(orjson.dumps({"event_id": "m", "timestamp": T0, "provider": "openai", "model": "gpt-4o",
                                "team": "search", "input_tokens": 1000}))
    assert sorted(v["key"]["model"] + str(v["key"].get("team")) for v in engine.spend()) == [
        "gpt-4oNone", "gpt-4osearch"]


def test_restore_from_snapshots_resumes_exactly() -> None:
    """An engine rebuilt from its snapshots mid-stream emits the same alerts as one that never stopped."""
    events = sorted(traffic(200, burst_model="claude-sonnet-4-5", burst_from=190), key=lambda e: e["timestamp"])
    whole = Engine(EngineConfig(), FlatPricer())
    expected = run(whole, events)

    first = Engine(EngineConfig(), FlatPricer())
    cut = len(events) * 2 // 3
    alerts = run(first, events[:cut])
    windows: dict[str, bytes] = {}
    models: dict[str, bytes] = {}
    w, m = first.drain_dirty()
    windows.update(w)
    models.update(m)
    second = Engine(EngineConfig(), FlatPricer())
    second.restore(first.meta(), windows.values(), models.values())
    alerts += run(second, events[cut:])
    assert [a.to_dict() for a in alerts] == [a.to_dict() for a in expected]
    assert any(a.status == "firing" for a in expected)


def test_huge_burst_fires_within_seconds_not_at_bucket_close() -> None:
    """A 30x retry storm alerts from inside the open bucket; the close does not alert again."""
    engine = Engine(EngineConfig(), FlatPricer())
    events = sorted(traffic(200, burst_model="gpt-4o", burst_from=180, burst_x=30), key=lambda e: e["timestamp"])
    alerts = []
    for event in events:
        engine.ingest(orjson.dumps(event))
        for alert in engine.drain_alerts():
            alerts.append((alert, event["timestamp"]))
    firing = [(a, ts) for a, ts in alerts if a.status == "firing"]
    assert len(firing) == 1
    alert, seen_at = firing[0]
    assert alert.key == {"model": "gpt-4o"} and alert.details["early"] is True
    assert alert.window_start == T0 + 180 * 60
    assert seen_at - alert.window_start < 15  # seconds of event time into the burst
    assert alert.triggered_at == seen_at


def test_fast_path_stays_quiet_on_a_5x_burst() -> None:
    """Moderate bursts are judged at bucket close by the detector, not by the fast path."""
    engine = Engine(EngineConfig(), FlatPricer())
    alerts = run(engine, sorted(traffic(200, burst_model="gpt-4o", burst_from=180, burst_x=5),
                                key=lambda e: e["timestamp"]))
    firing = [a for a in alerts if a.status == "firing"]
    assert len(firing) == 1 and "early" not in firing[0].details


def test_expected_feedback_rebases_the_detector_and_resolves() -> None:
    """'Expected' makes the burst level normal: the incident resolves and the level stops alerting."""
    engine = Engine(EngineConfig(), FlatPricer())
    events = sorted(traffic(200, burst_model="gpt-4o", burst_from=180, burst_x=5), key=lambda e: e["timestamp"])
    cut = next(i for i, e in enumerate(events) if e["timestamp"] >= T0 + 182 * 60)
    alerts = run(engine, events[:cut])
    (firing,) = [a for a in alerts if a.status == "firing"]
    feedback = {"__control__": "feedback", "action": "expected", "alert_id": firing.alert_id, "key": firing.key}
    assert engine.control(feedback, orjson.dumps(feedback)) == []
    (resolved,) = engine.drain_alerts()
    assert resolved.status == "resolved" and resolved.alert_id == firing.alert_id
    assert resolved.details["feedback"] == "expected"
    assert [a for a in run(engine, events[cut:]) if a.status == "firing"] == []


def test_unknown_control_message_is_dead_lettered() -> None:
    engine = Engine(EngineConfig(), FlatPricer())
    (dead,) = engine.control({"__control__": "explode"}, b'{"__control__": "explode"}')
    assert dead.reason == "unknown control message 'explode'"


def test_control_records_on_the_usage_topic_are_dead_lettered() -> None:
    """A producer of usage events cannot rebase a detector: feedback only comes from <prefix>.control."""
    engine = Engine(EngineConfig(), FlatPricer())
    events = sorted(traffic(200, burst_model="gpt-4o", burst_from=180, burst_x=5), key=lambda e: e["timestamp"])
    (firing,) = [a for a in run(engine, events[:-10]) if a.status == "firing"]
    forged = orjson.dumps({"__control__": "feedback", "action": "expected", "alert_id": firing.alert_id,
                           "key": firing.key})
    (dead,) = engine.ingest(forged)
    assert dead.reason == "control records are not accepted on the usage topic"
    assert [a for a in engine.drain_alerts() if a.status == "resolved"] == []
