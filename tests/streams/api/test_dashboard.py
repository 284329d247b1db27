"""Dashboard reads: spend series with the expected band, the lens filter, forecasts, static files."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import orjson
import pytest
from multidict import MultiDict

from schemas.budget import validate_budget
from streams.api.dashboard import STATIC, budget_forecasts, spend_series
from streams.config import Settings
from streams.core.engine import Engine
from streams.core.forecast import Forecast
from tests.streams.core.test_engine import T0, FlatPricer


class Engines:
    def __init__(self, engines: dict[int, Engine]) -> None:
        self.engines = engines


class FakeRuntime:
    """The parts of :class:`streams.api.state.ApiState` these views read."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engines = Engines({0: engine})
        self.budgets_store: dict[str, Any] = {}
        self.forecasts: dict[str, Forecast] = {}

    def budget_forecast(self, budget_id: str) -> Forecast | None:
        return self.forecasts.get(budget_id)


def _runtime(minutes: int = 20) -> FakeRuntime:
    settings = Settings()
    engine = Engine(settings.engine_config(), FlatPricer())
    n = 0
    for minute in range(minutes):
        for model, team, per_minute in (("gpt-4o", "cx", 6), ("gpt-4o-mini", "search", 3)):
            for k in range(per_minute):
                n += 1
                engine.ingest(orjson.dumps({"event_id": f"e{n}", "timestamp": T0 + minute * 60 + k, "provider": "openai",
                                            "model": model, "team": team, "input_tokens": 1000, "output_tokens": 0}))
    engine.flush()
    return FakeRuntime(settings, engine)


def test_series_per_model_carry_points_and_the_detectors_band() -> None:
    status, body = spend_series(_runtime(), {"window": "1h"})
    assert status == 200, body
    assert body["group_by"] == ["model"]
    first = body["series"][0]
    assert first["key"] == {"model": "gpt-4o"} and first["cost_usd"] == 120.0
    assert [p["cost_usd"] for p in first["points"]] == [6.0] * 20
    assert len(first["expected"]) == 20 and all(p["low"] <= p["expected"] <= p["high"] for p in first["expected"])
    assert body["rows"][0]["cost_per_1k_tokens"] == 1.0


def test_a_lens_filters_every_row_and_a_grouping_no_detector_watches_has_no_band() -> None:
    status, body = spend_series(_runtime(), {"team": "search", "group_by": "team"})
    assert status == 200, body
    assert [s["key"] for s in body["series"]] == [{"team": "search"}]
    assert body["series"][0]["expected"] is None
    assert body["total"]["cost_usd"] == 60.0
    status, body = spend_series(_runtime(), {"team": "search"})
    assert [s["key"] for s in body["series"]] == [{"model": "gpt-4o-mini"}]
    assert body["series"][0]["expected"] is None  # the model's band covers every team, not this one


@pytest.mark.parametrize("query, field", [
    ({"colour": "red"}, "colour"),
    ({"team": ""}, "team"),
    ({"team": "x" * 300}, "team"),
    ({"window": "1 hour"}, "window"),
    ({"window": "30d"}, "window"),
    ({"group_by": "team,team"}, "group_by"),
    ({"group_by": "nope"}, "group_by"),
])
def test_hostile_queries_cost_one_clear_error(query: dict[str, str], field: str) -> None:
    status, body = spend_series(_runtime(2), query)
    assert status == 400
    assert body["field"] == field and body["error"].startswith(field + ":")


def test_a_repeated_query_parameter_is_refused() -> None:
    status, body = spend_series(_runtime(2), MultiDict([("team", "cx"), ("team", "search")]))
    assert status == 400 and "repeated" in body["error"]


def test_forecasts_per_team_pick_the_budgets_scoped_to_exactly_one_team() -> None:
    runtime = _runtime(1)
    budgets = [validate_budget({"name": n, "match": m, "amount_usd": 100}) for n, m in (
        ("search", {"team": "search"}), ("cx 4o", {"team": "cx", "model": "gpt-4o"}), ("any", {"team": "s*"}))]
    for budget in budgets:
        runtime.budgets_store[budget.id] = budget.to_dict()
    runtime.forecasts[budgets[0].id] = Forecast(10.0, 30.0, 25.0, 35.0, 1.0, 0.0, 20.0, 3)
    status, body = budget_forecasts(runtime, {"group_by": "team"})
    assert status == 200
    assert [(f["key"], f["forecast"]["projected_usd"]) for f in body["forecasts"]] == [({"team": "search"}, 30.0)]
    status, body = budget_forecasts(runtime, {})
    assert [f["name"] for f in body["forecasts"]] == ["any", "cx 4o", "search"]
    assert budget_forecasts(runtime, {"group_by": ""})[0] == 400
    assert budget_forecasts(runtime, {"by": "team"})[0] == 400


def test_static_files_ship_in_the_package_and_load_nothing_from_elsewhere() -> None:
    static = files("streams.api") / "static"
    index = (static / "index.html").read_text(encoding="utf-8")
    for name in STATIC:
        text = (static / name).read_text(encoding="utf-8")
        assert f"/ui/static/{name}" in index
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text
    assert "localStorage" in (static / "app.js").read_text(encoding="utf-8")
