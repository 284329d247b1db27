"""Attribution: segment rows, the tag policy alert, allocation rules, query parsing (worked numbers)."""

from __future__ import annotations

import orjson
import pytest

from schemas.errors import ConfigError
from schemas.usage import validate_usage
from streams.core.attribution import (SEGMENT_DIMS, AttributionConfig, SegmentStore, TagPolicy, apply_allocation,
                                      parse_allocation_rules, parse_group_by, parse_window, segmented_view,
                                      unit_metrics)
from streams.core.engine import Engine, EngineConfig

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600
DIMS = SEGMENT_DIMS


def ev(i: int, ts: float, cost: float, tokens: int = 0, **attrs):
    return validate_usage({"event_id": f"e{i}", "timestamp": ts, "provider": "openai", "model": "gpt-4o",
                           "cost_usd": cost, "input_tokens": tokens, **attrs})


def key(**values) -> tuple:
    return tuple(values.get(d) for d in DIMS)


def test_segments_sum_per_bucket_and_fold_overflow_into_other() -> None:
    store = SegmentStore(AttributionConfig(max_segments=2), 60.0)
    store.add(ev(1, T0 + 1, 1.0, 100, team="a"), 1.0, T0)
    store.add(ev(2, T0 + 2, 2.0, 300, team="a"), 2.0, T0)
    store.add(ev(3, T0 + 3, 4.0, 50, team="b"), 4.0, T0)
    store.add(ev(4, T0 + 4, 8.0, 10, team="c"), 8.0, T0)  # third segment: over max_segments
    store.add(ev(5, T0 + 5, 16.0, 10), 16.0, T0)  # untagged overflow keeps its empty team
    rows = store.buckets[T0]
    base = dict(provider="openai", model="gpt-4o")
    assert rows[key(**base, team="a")] == [3.0, 400, 2, 2]
    assert rows[key(**base, team="b")] == [4.0, 50, 1, 1]
    assert rows[key(provider="other", model="other", team="other")] == [8.0, 10, 1, 1]
    assert rows[key(provider="other", model="other")] == [16.0, 10, 1, 1]
    # past the 24 h horizon the bucket is dropped (and reported dirty with rows None)
    store.drain_dirty()
    store.close(T0 + 86_400 + 60)
    assert store.buckets == {} and store.drain_dirty() == [(T0, None)]


def test_tag_policy_fires_over_the_window_share_and_resolves() -> None:
    """Required team; max 10% untagged over 10 min, at least $1: 3 of 10 dollars untagged fires."""
    config = AttributionConfig(policy=TagPolicy(("team",), 0.1, 600.0, 1.0), alert_key=("model",))
    store = SegmentStore(config, 60.0)
    store.add(ev(1, T0 + 1, 7.0, team="a"), 7.0, T0)
    store.add(ev(2, T0 + 2, 3.0), 3.0, T0)
    store.close(T0 + 60)
    [alert] = store.drain_alerts()
    assert (alert.type, alert.status, alert.key) == ("untagged_spend", "firing", {"model": "gpt-4o"})
    assert alert.observed == 3.0 and alert.expected == 1.0 and alert.score == 0.3
    assert alert.details["untagged_share"] == 0.3
    # 10 more minutes of fully tagged spend: the untagged minute leaves the window, share 0
    for minute in range(1, 11):
        store.add(ev(10 + minute, T0 + minute * 60, 5.0, team="a"), 5.0, T0 + minute * 60)
        store.close(T0 + minute * 60 + 60)
    [resolved] = store.drain_alerts()
    assert resolved.status == "resolved" and resolved.alert_id == alert.alert_id


def test_tag_policy_needs_min_spend() -> None:
    config = AttributionConfig(policy=TagPolicy(("team",), 0.1, 600.0, 1.0))
    store = SegmentStore(config, 60.0)
    store.add(ev(1, T0 + 1, 0.5), 0.5, T0)  # 100% untagged but only $0.50
    store.close(T0 + 60)
    assert store.drain_alerts() == []


def test_engine_feeds_segments_and_diverts_bill_rows() -> None:
    config = EngineConfig(attribution=AttributionConfig())
    engine = Engine(config, pricer=None)  # type: ignore[arg-type]
    engine.ingest(orjson.dumps({"event_id": "x1", "timestamp": T0 + 5, "provider": "openai", "model": "gpt-4o",
                                "cost_usd": 1.25, "team": "a", "input_tokens": 10, "output_tokens": 5}))
    engine.ingest(orjson.dumps({"event_id": "x1", "timestamp": T0 + 6, "provider": "openai", "model": "gpt-4o",
                                "cost_usd": 1.25, "team": "a"}))  # duplicate: not counted twice
    engine.ingest(orjson.dumps({"event_id": "focus_1", "timestamp": T0, "provider": "AWS", "model": "Bedrock",
                                "service": "Bedrock", "cost_usd": 100.0,
                                "tags": {"charge_period_end": "2026-11-18T00:00:00Z", "account": "1"}}))
    [(k, row)] = engine.segments.buckets[T0].items()
    assert row == [1.25, 15, 1, 1] and k[DIMS.index("team")] == "a"
    assert engine.bills is not None and engine.bills.view()[0]["total_cost_usd"] == 100.0
    assert [s.key for s in engine.keys.values()] == [{"model": "gpt-4o"}]  # the bill row is not a minute bucket
    assert engine.counters.events == 2 and engine.counters.duplicates == 1


def test_parse_window_and_group_by() -> None:
    assert parse_window("5m", bucket_seconds=60, horizon_s=86400) == 300
    assert parse_window("24h", bucket_seconds=60, horizon_s=86400) == 86400
    assert parse_window(None, bucket_seconds=60, horizon_s=86400) == 3600
    for bad, reason in (("1w", "positive integer followed by s, m, h or d"), ("0m", "positive integer"),
                        ("30s", "at least one bucket"), ("2d", "at most 24h")):
        with pytest.raises(ValueError, match=reason):
            parse_window(bad, bucket_seconds=60, horizon_s=86400)
    assert parse_group_by("team,pipeline_stage", DIMS) == ("team", "pipeline_stage")
    assert parse_group_by(None, DIMS) == ()
    with pytest.raises(ValueError, match="unknown dimension 'colour'"):
        parse_group_by("team,colour", DIMS)
    with pytest.raises(ValueError, match="repeats"):
        parse_group_by("team,team", DIMS)


SHARED = [{"name": "endpoint", "match": {"service": "shared-endpoint"}, "split_by": "tokens", "across": "team"}]


def test_allocation_by_tokens_worked_numbers() -> None:
    """$90 of shared-endpoint cost with no team; teams a and b sent 3000 and 1000 tokens through
    it: a gets $67.50, b $22.50. Team c's other-service spend is untouched."""
    rows = {
        key(service="shared-endpoint"): [90.0, 0, 0, 1],
        key(service="shared-endpoint", team="a"): [3.0, 3000, 3, 3],
        key(service="shared-endpoint", team="b"): [1.0, 1000, 1, 1],
        key(service="search", team="c"): [5.0, 500, 1, 1],
    }
    out, [report] = apply_allocation(rows, DIMS, parse_allocation_rules(SHARED))
    assert out[key(service="shared-endpoint", team="a")] == [70.5, 3000, 3, 3, 67.5]
    assert out[key(service="shared-endpoint", team="b")] == [23.5, 1000, 1, 1, 22.5]
    assert out[key(service="shared-endpoint")] == [0.0, 0, 0, 1, 0.0]  # keeps its event count
    assert out[key(service="search", team="c")] == [5.0, 500, 1, 1, 0.0]
    assert report == {"rule": "endpoint", "split_by": "tokens", "across": "team", "pool_usd": 90.0,
                      "allocated_usd": 90.0, "unallocated_usd": 0.0, "shares": {"a": 0.75, "b": 0.25}}


def test_allocation_by_gpu_seconds_and_unallocated_pool() -> None:
    rules = parse_allocation_rules([{"name": "cluster", "match": {"service": "gpu-cluster"},
                                     "split_by": "gpu_seconds", "across": "team"}])
    rows = {key(service="gpu-cluster"): [100.0, 0, 0, 1]}
    out, [report] = apply_allocation(rows, DIMS, rules, {"cluster": {"x": 600.0, "y": 1800.0, "z": 0.0}})
    assert out[key(service="gpu-cluster", team="x")][0] == pytest.approx(25.0)
    assert out[key(service="gpu-cluster", team="y")][0] == pytest.approx(75.0)
    assert key(service="gpu-cluster", team="z") not in out
    _, [none] = apply_allocation(rows, DIMS, rules, {})
    assert none["allocated_usd"] == 0.0 and none["unallocated_usd"] == 100.0


def test_allocation_rules_are_validated() -> None:
    for bad, reason in (
        ({}, "must be a JSON array"),
        ([{"name": "x", "match": {"service": "s"}, "split_by": "bytes", "across": "team"}], r"\[0\].split_by"),
        ([{"name": "x", "match": {"colour": "s"}, "split_by": "tokens", "across": "team"}], "unknown dimension 'colour'"),
        ([{"name": "x", "match": {"team": "s"}, "split_by": "tokens", "across": "team"}], "cannot also be matched"),
        ([{"name": "x", "match": {}, "split_by": "tokens", "across": "team"}], "non-empty object"),
        ([SHARED[0], SHARED[0]], r"\[1\].name"),
    ):
        with pytest.raises(ConfigError, match=reason):
            parse_allocation_rules(bad)


def test_segmented_view_groups_after_allocation_with_unit_metrics() -> None:
    rows = [
        (key(service="shared-endpoint"), [90.0, 0, 0, 1]),
        (key(service="shared-endpoint", team="a", pipeline_stage="train"), [2.0, 3000, 3, 3]),
        (key(service="shared-endpoint", team="a", pipeline_stage="train"), [1.0, 0, 1, 1]),  # another bucket
        (key(service="shared-endpoint", team="b", pipeline_stage="infer"), [1.0, 1000, 4, 4]),
    ]
    view = segmented_view(rows, DIMS, ("team",), required=("team",), rules=parse_allocation_rules(SHARED))
    assert view["rows"][0] == {"key": {"team": "a"}, "cost_usd": 70.5, "tokens": 3000, "requests": 4, "events": 4,
                               "allocated_usd": 67.5, "cost_per_1k_tokens": 23.5, "cost_per_request": 17.625}
    assert view["rows"][1]["key"] == {"team": "b"} and view["rows"][1]["cost_usd"] == 23.5
    assert view["rows"][2] == {"key": {"team": None}, "cost_usd": 0.0, "tokens": 0, "requests": 0, "events": 1,
                               "allocated_usd": 0.0, "cost_per_1k_tokens": None, "cost_per_request": None}
    assert view["total"]["cost_usd"] == 94.0
    assert view["untagged"] == {"required": ["team"], "cost_usd": 90.0, "share": pytest.approx(90 / 94, abs=1e-6)}
    assert unit_metrics(3.0, 1500, 0) == {"cost_per_1k_tokens": 2.0, "cost_per_request": None}
