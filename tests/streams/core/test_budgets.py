"""Budgets across partitions: per-partition partials add up to one tracker per budget."""

from __future__ import annotations

import orjson

from schemas.budget import validate_budget
from schemas.usage import validate_usage
from streams.core.budgets import BudgetBook, BudgetPartials, Partial
from streams.core.engine import Engine, EngineConfig
from tests.streams.core.test_engine import T0, FlatPricer, traffic

BUDGET = {"name": "cx daily", "match": {"model": "gpt-4o"}, "period": "day", "timezone": "UTC", "amount_usd": 50,
          "thresholds_pct": [50, 80, 100]}


def test_partials_sum_per_minute_and_close_in_order() -> None:
    budget = validate_budget(BUDGET)
    partials = BudgetPartials([budget])
    for n, ts in enumerate((T0 + 1, T0 + 30, T0 + 61)):
        partials.add(validate_usage({"event_id": f"x{n}", "timestamp": ts, "provider": "openai", "model": "gpt-4o"}), 1.0)
    partials.add(validate_usage({"event_id": "y", "timestamp": T0, "provider": "openai", "model": "other"}), 5.0)
    assert partials.close(T0 + 60) == [Partial(budget.id, T0, 2.0, T0 + 60)]
    assert partials.sums == {(budget.id, T0 + 60): 1.0}


def test_engine_feeds_the_book_and_the_budget_burns() -> None:
    """$1/1k tokens on ~10k tokens/min of gpt-4o burns a $50/day budget far above 4.8x: it alerts."""
    budget = validate_budget(BUDGET)
    engine = Engine(EngineConfig(), FlatPricer())
    engine.budget_partials.set_budgets([budget])
    book = BudgetBook([budget])
    alerts = []
    for event in sorted(traffic(90), key=lambda e: e["timestamp"]):
        engine.ingest(orjson.dumps(event))
        alerts += book.apply(engine.drain_partials())
    types = {(a.type, a.status) for a in alerts}
    assert ("budget_burn", "firing") in types and ("budget_threshold", "firing") in types
    burn = next(a for a in alerts if a.type == "budget_burn")
    assert burn.key == {"model": "gpt-4o", "budget": budget.id}
    state = book.state(budget.id)
    assert state["spent_usd"] > 50 and state["amount_usd"] == 50


def test_partials_survive_a_snapshot() -> None:
    budget = validate_budget(BUDGET)
    engine = Engine(EngineConfig(), FlatPricer())
    engine.budget_partials.set_budgets([budget])
    engine.ingest(orjson.dumps({"event_id": "a", "timestamp": T0 + 5, "provider": "openai", "model": "gpt-4o",
                                "input_tokens": 2000}))
    again = Engine(EngineConfig(), FlatPricer())
    again.budget_partials.set_budgets([budget])
    again.restore(orjson.loads(orjson.dumps(engine.meta())), [], [])
    assert again.budget_partials.sums == {(budget.id, T0): 2.0}
