"""The dashboard on the worker's web port: the page and its static files under ``/ui/``, and the
two JSON reads it needs beyond the existing API, ``GET /v1/series`` (spend over time per group,
with the detector's expected band) and ``GET /v1/forecast`` (period-end forecast per budget).

The page holds no data: it reads ``/v1/*`` with ``fetch()``, sending the read token the user
entered (kept in the browser's ``localStorage``) as an ``Authorization`` header, never in a URL.
The query string is the saved view: ``/ui/?team=search`` filters every panel by ``team``,
``/ui/?group_by=service`` picks the chart's grouping (docs: concepts/dashboard.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from typing import Any

import faust

from schemas.alert import rfc3339
from schemas.budget import Budget
from streams.api.spend_views import allocation_rules
from streams.api.state import ApiState
from streams.core.attribution import parse_group_by, parse_window, segmented_view
from streams.core.engine import key_name

SERIES_PARAMS = ("group_by", "window")
#: at most this many series are drawn (the biggest spenders in the window)
MAX_SERIES = 12
MAX_FILTER_VALUE = 256
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}


def parse_filter(query: Mapping[str, str], dims: tuple[str, ...], known: tuple[str, ...]) -> dict[str, str]:
    """Every query parameter besides ``known`` is an exact filter on a segment dimension."""
    out = {}
    for name, value in query.items():
        if name in known:
            continue
        if name not in dims:
            raise ValueError(f"{name}: unknown query parameter (use {', '.join(known)} or a dimension: "
                             f"{', '.join(dims)})")
        if not value or len(value) > MAX_FILTER_VALUE:
            raise ValueError(f"{name}: a filter value must be 1 to {MAX_FILTER_VALUE} characters")
        out[name] = value
    return out


def spend_series(runtime: ApiState, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """Per group and bucket, the spend of the segments that pass the filter; totals, unit costs and
    the untagged share of the same rows; the expected band where a detector watches that group."""
    settings = runtime.settings
    config = settings.engine_config().attribution
    if config is None:
        return 400, {"error": "spend series need segments (no attribution config)"}
    if len(set(query)) != len(query):
        return 400, {"error": "a query parameter is repeated"}
    try:
        group_by = parse_group_by(query.get("group_by") or settings.group_bys[0][0], config.dims)
        window_s = parse_window(query.get("window"), bucket_seconds=settings.bucket_seconds,
                                horizon_s=config.horizon_s, default="6h")
        wanted = parse_filter(query, config.dims, SERIES_PARAMS)
    except ValueError as exc:
        return 400, {"error": str(exc), "field": str(exc).split(":", 1)[0]}
    engines = [e for e in runtime.engines.engines.values() if e.segments is not None]
    size = settings.bucket_seconds
    to = max((e.max_ts for e in engines), default=0.0)
    end = to - to % size + size
    since = end - window_s
    index = {d: i for i, d in enumerate(config.dims)}
    checks = [(index[d], v) for d, v in wanted.items()]
    gi = [index[d] for d in group_by]
    rows: list[tuple[tuple, list]] = []
    points: dict[tuple, dict[float, float]] = {}
    for engine in engines:
        for start, bucket in engine.segments.buckets.items():  # type: ignore[union-attr]
            if start < since:
                continue
            for key, row in bucket.items():
                if all(key[i] == v for i, v in checks):
                    rows.append((key, row))
                    group = tuple(key[i] or None for i in gi)
                    per = points.setdefault(group, {})
                    per[start] = per.get(start, 0.0) + row[0]
    view = segmented_view(rows, config.dims, group_by, required=config.policy.required,
                          rules=allocation_rules(runtime))
    watched = group_by in settings.group_bys and set(wanted) <= set(group_by)
    series = []
    for row in view["rows"][:MAX_SERIES]:
        group = tuple(row["key"][d] for d in group_by)
        actual = sorted(points.get(group, {}).items())
        expected: list[dict[str, float]] | None = None
        if watched and None not in group:
            name = key_name(dict(zip(group_by, group)))  # type: ignore[arg-type]
            expected = [p for e in engines for p in e.expected.points(name, since)]
        series.append({"key": row["key"], "cost_usd": row["cost_usd"],
                       "points": [{"t": t, "cost_usd": round(c, 6)} for t, c in actual], "expected": expected})
    return 200, {"group_by": list(group_by), "filter": wanted, "window_seconds": window_s,
                 "bucket_seconds": size, "from": rfc3339(since) if to else None, "to": rfc3339(end) if to else None,
                 "series": series, **view}


def budget_forecasts(runtime: ApiState, query: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
    """``?group_by=team``: the budgets whose scope is exactly one value per named dimension (a
    team's budget), keyed by it; no ``group_by``: every budget."""
    unknown = set(query) - {"group_by"}
    if unknown:
        return 400, {"error": f"unknown query parameter(s): {', '.join(sorted(unknown))} (use group_by)"}
    raw = query.get("group_by")
    dims = tuple(part.strip() for part in raw.split(",")) if raw else ()
    if raw is not None and (not raw or any(not d for d in dims) or len(set(dims)) != len(dims)):
        return 400, {"error": f"group_by: a comma-separated list of distinct dimensions (got {raw!r})",
                     "field": "group_by"}
    out = []
    for body in runtime.budgets_store.values():
        budget = Budget.from_dict(body)
        if dims and (set(budget.match) != set(dims) or any(c in v for v in budget.match.values() for c in "*?[")):
            continue
        result = runtime.budget_forecast(budget.id)
        out.append({"budget_id": budget.id, "name": budget.name, "key": {d: budget.match[d] for d in dims} or None,
                    "match": dict(budget.match), "period": budget.period, "amount_usd": budget.amount_usd,
                    "forecast": None if result is None else result.to_dict()})
    out.sort(key=lambda entry: entry["name"])
    return 200, {"group_by": list(dims), "interval": 0.8, "forecasts": out}


def register_dashboard(app: faust.App, runtime: ApiState) -> None:
    static = files("streams.api") / "static"

    @app.page("/ui/")
    async def index(view: faust.web.View, request: Any) -> Any:
        return view.html((static / "index.html").read_text(encoding="utf-8"))

    @app.page("/ui/static/{name}")
    async def asset(view: faust.web.View, request: Any, name: str) -> Any:
        if name not in STATIC:
            return view.json({"error": f"no static file {name!r}"}, status=404)
        return view.text((static / name).read_text(encoding="utf-8"), content_type=STATIC[name])

    @app.page("/v1/series")
    async def series(view: faust.web.View, request: Any) -> Any:
        status, body = spend_series(runtime, request.query)
        return view.json(body, status=status)

    @app.page("/v1/forecast")
    async def forecast_page(view: faust.web.View, request: Any) -> Any:
        status, body = budget_forecasts(runtime, request.query)
        return view.json(body, status=status)
