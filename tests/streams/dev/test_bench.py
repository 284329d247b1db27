"""``spendsentry bench``: its data, its summary line, the validator fast path it measures, and a tiny run."""

from __future__ import annotations

import math
import re
import subprocess
import sys

import orjson
import pytest

from schemas.errors import ValidationError
from schemas.usage import _validate_full, validate_usage
from streams.dev import bench
from streams.core.engine import Engine, EngineConfig
from streams.core.pricing import PriceCatalogue

SUMMARY = re.compile(
    r"^worker_eps=\d+ worker_eps_single=\d+ raw_eps=\d+ faust_eps=\d+ ratio_raw=\d+\.\d{3} ratio_faust=\d+\.\d{3} "
    r"alert_p50_s=\d+\.\d{3} alert_p99_s=\d+\.\d{3} backtest_eps=\d+ rss_mb_100k_keys=\d+\.\d "
    r"worker_eps_100k=(\d+|nan) ratio_keys=(\d+\.\d{3}|nan) backtest_eps_rfc3339=\d+ backtest_eps_epoch=\d+ "
    r"ratio_ts=\d+\.\d{3} rss_mb_garbage_keys=\d+\.\d keys_folded=\d+$")


def test_events_are_about_300_bytes_every_key_active_in_time_order():
    events = bench.make_events(3000, 1000)
    sizes = [len(orjson.dumps(e)) for e in events]
    assert 280 <= sum(sizes) / len(sizes) <= 320
    assert len({e["model"] for e in events}) == 1000
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    assert all(validate_usage(e).model == e["model"] for e in events[:50])
    # every key is priced (dated snapshots of a catalogue model)
    pricer = PriceCatalogue.bundled()
    assert all(pricer.cost(validate_usage(e)) > 0 for e in events[:50])


def test_batched_messages_keep_each_model_on_its_partition():
    events = bench.make_events(2000, 300)
    single = bench.messages(events, 1)
    batched = bench.messages(events, 100)
    home = {key: partition for partition, key, _ in single}
    assert len(single) == 2000 and len(batched) < 40
    seen = 0
    for partition, _, value in batched:
        group = orjson.loads(value)
        assert 1 <= len(group) <= 100
        assert {home[e["model"].encode()] for e in group} == {partition}
        seen += len(group)
    assert seen == 2000


def test_garbage_events_each_name_a_new_valid_unpriced_model():
    events = bench.garbage_events(3000)
    assert len({e["model"] for e in events}) == 3000
    parsed = [validate_usage(e) for e in events]
    pricer = PriceCatalogue.bundled()
    assert all(pricer.cost(event) is None for event in parsed[:200])


def test_summary_line_and_percentiles():
    figures = {"worker_eps": 51234.5, "worker_eps_single": 9000.2, "raw_eps": 300000, "faust_eps": 12000,
               "ratio_raw": 0.17, "ratio_faust": 0.75, "alert_p50_s": 3.5, "alert_p99_s": 4.25,
               "backtest_eps": 160000, "rss_mb_100k_keys": 512.34, "worker_eps_100k": 30000.4, "ratio_keys": 0.6,
               "backtest_eps_rfc3339": 90000, "backtest_eps_epoch": 100000, "ratio_ts": 0.9,
               "rss_mb_garbage_keys": 600.25, "keys_folded": 120000}
    line = bench.summary_line(figures)
    assert SUMMARY.match(line), line
    assert line.startswith("worker_eps=51234 worker_eps_single=9000 ")
    assert "alert_p50_s=nan" in bench.summary_line({**figures, "alert_p50_s": None})
    assert bench.percentile([], 99) is None
    assert bench.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert bench.percentile(list(map(float, range(1, 101))), 99) == 99.0


# -- the validator fast path (schemas.usage.validate_usage) is the full rules, only faster --------
GOOD = {"event_id": "e-1", "timestamp": 1_790_000_000.5, "provider": "openai", "model": "gpt-4o",
        "input_tokens": 1200, "cached_input_tokens": 400, "output_tokens": 300, "reasoning_tokens": 10,
        "service": "support-bot", "team": "cx"}
VARIANTS = [
    {}, {"timestamp": 1_790_000_000}, {"timestamp": "2026-09-21T10:00:00Z"}, {"timestamp": float("nan")},
    {"timestamp": True}, {"timestamp": 1_790_000_000_000}, {"input_tokens": 12.0}, {"input_tokens": 12.5},
    {"input_tokens": None}, {"input_tokens": -1}, {"input_tokens": True}, {"cached_input_tokens": 5000},
    {"reasoning_tokens": 301}, {"cache_creation_input_tokens": 10**11}, {"cost_usd": 0.25}, {"cost_usd": 1},
    {"cost_usd": -0.0}, {"cost_usd": float("inf")}, {"cost_usd": "1"}, {"request_count": 3}, {"request_count": 0},
    {"request_count": None}, {"service_tier": "batch"}, {"service_tier": "gold"}, {"service_tier": 1},
    {"team": ""}, {"team": "x" * 257}, {"team": 5}, {"team": None}, {"tags": {}}, {"tags": {"tenant": "a"}},
    {"tags": {"n": 5}}, {"tags": []}, {"event_id": ""}, {"event_id": 7}, {"model": None}, {"provider": "x" * 300},
    {"unknown_field": [1, 2]}, {"experiment": "exp", "pipeline_stage": "rerank", "operation": "chat"},
]


@pytest.mark.parametrize("change", VARIANTS, ids=range(len(VARIANTS)))
def test_validator_fast_path_matches_the_full_rules(change):
    data = {**GOOD, **change}
    try:
        expected = _validate_full(data)
    except ValidationError as exc:
        with pytest.raises(ValidationError) as caught:
            validate_usage(data)
        assert caught.value.as_dict() == exc.as_dict()
        return
    got = validate_usage(data)
    assert got == expected
    assert type(got.timestamp) is float and (got.cost_usd is None or type(got.cost_usd) is float)
    assert got.tags is not expected.tags or not got.tags


def test_engine_keys_for_tag_and_multi_dimension_families():
    config = EngineConfig(group_bys=(("model",), ("team", "model"), ("tags.tenant", "model")))
    engine = Engine(config, PriceCatalogue.bundled())
    engine.add(validate_usage({**GOOD, "tags": {"tenant": "acme"}}))
    engine.add(validate_usage({**GOOD, "event_id": "e-2", "team": None}))
    # an event missing a finer family's dimension counts at the partition family (its model) only
    assert set(engine.keys) == {(0, ("gpt-4o",)), (1, ("cx", "gpt-4o")), (2, ("acme", "gpt-4o"))}
    assert engine.counters.events == 2 and math.isclose(sum(s.total_events for s in engine.keys.values()), 4)


@pytest.mark.integration
def test_tiny_bench_run_prints_a_well_formed_last_line():
    """``spendsentry bench --quick`` against the real broker: every stage runs, the last line parses."""
    from streams.dev import localkafka

    localkafka.up()
    proc = subprocess.run([sys.executable, "-m", "streams.cli.main", "bench", "--quick"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert SUMMARY.match(last), proc.stdout[-3000:]
    values = dict(item.split("=") for item in last.split())
    assert float(values["worker_eps"]) > 0 and float(values["alert_p99_s"]) > 0  # figures, not timed assertions
    assert "cleanup: deleted" in proc.stdout
