"""``spendsentry backtest``: the worker's engine over a file, deterministic, streaming."""

from __future__ import annotations

import io

import orjson

from streams.cli.backtest import backtest
from streams.config import Settings
from streams.core.pricing import PriceCatalogue
from dataclasses import replace

from schemas.alert import rfc3339
from streams.dev.traffic import DEFAULT_MODELS, Burst, TrafficGenerator

T0 = 1_795_000_000.0 - 1_795_000_000.0 % 3600


def lines(seed: int = 3) -> list[bytes]:
    models = tuple(replace(m, rate_per_s=m.rate_per_s / 10) for m in DEFAULT_MODELS)
    generator = TrafficGenerator(models, seed=seed)
    burst = Burst("gpt-4o", T0 + 150 * 60, T0 + 155 * 60, 10.0)
    return [orjson.dumps(e) for e in generator.events(T0, T0 + 170 * 60, (burst,))] + [b"{broken"]


def run(data: list[bytes]) -> tuple[bytes, object]:
    out = io.BytesIO()
    summary = backtest(iter(data), out, Settings().engine_config(), PriceCatalogue.bundled(), progress=io.StringIO())
    return out.getvalue(), summary


def test_backtest_finds_the_burst_and_is_deterministic() -> None:
    data = lines()
    first, summary = run(data)
    second, _ = run(data)
    assert first == second
    alerts = [orjson.loads(line) for line in first.splitlines()]
    stream = {"model": "gpt-4o", "service": "support-bot"}  # judged per model and per stream: the stream speaks
    assert [(a["status"], a["key"]) for a in alerts] == [("firing", stream), ("resolved", stream)]
    assert alerts[0]["window_start"] == rfc3339(T0 + 150 * 60)
    assert set(alerts[0]) >= {"type", "key", "triggered_at", "window_start", "window_end", "observed", "expected",
                              "score", "severity", "status"}
    assert summary.events == len(data) - 1 and summary.invalid == 1 and summary.keys == 8
    assert summary.alerts == {("cost_spike", "firing"): 1, ("cost_spike", "resolved"): 1}
    assert "events/s" in "\n".join(summary.lines())


def test_backtest_runs_budgets_from_the_budgets_file(tmp_path) -> None:
    """SPENDSENTRY_BUDGETS_FILE budgets burn in the backtest exactly as in the worker."""
    from streams.core.budgets import load_budgets_file

    path = tmp_path / "budgets.json"
    path.write_bytes(orjson.dumps([{"name": "gpt-4o daily", "match": {"model": "gpt-4o"}, "period": "day",
                                    "amount_usd": 2, "thresholds_pct": [100]}]))
    budgets = load_budgets_file(path)
    assert budgets[0].id == load_budgets_file(path)[0].id  # stable across loads
    out = io.BytesIO()
    backtest(iter(lines()), out, Settings().engine_config(), PriceCatalogue.bundled(), progress=io.StringIO(),
             budgets=budgets)
    kinds = {(a["type"], a["status"]) for a in map(orjson.loads, out.getvalue().splitlines())}
    assert ("budget_threshold", "firing") in kinds and ("budget_burn", "firing") in kinds


def test_max_future_seconds_bounds_event_time_by_the_running_watermark() -> None:
    """One event stamped 2099 halfway through: with the bound it is rejected and the burst after
    it still alerts; without it, it moves the watermark and the burst is never judged."""
    data = lines()
    future = orjson.dumps({"event_id": "2099", "timestamp": 4_070_908_800.0, "provider": "openai", "model": "gpt-4o",
                           "input_tokens": 1})
    data = data[:len(data) // 2] + [future] + data[len(data) // 2:]
    out = io.BytesIO()
    summary = backtest(iter(data), out, Settings().engine_config(), PriceCatalogue.bundled(), progress=io.StringIO(),
                       max_future_s=300.0)
    assert summary.invalid == 2  # the future event and the broken line
    assert [(a["status"], a["key"]) for a in map(orjson.loads, out.getvalue().splitlines())][:1] == [
        ("firing", {"model": "gpt-4o", "service": "support-bot"})]
    unbounded = io.BytesIO()
    backtest(iter(data), unbounded, Settings().engine_config(), PriceCatalogue.bundled(), progress=io.StringIO())
    assert not [a for a in map(orjson.loads, unbounded.getvalue().splitlines()) if a["status"] == "firing"]
