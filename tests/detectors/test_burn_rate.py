"""BudgetTracker: burn rates, multiwindow alerts with hysteresis, thresholds, projection, periods."""

from __future__ import annotations

import pickle

from detectors.burn_rate import BudgetTracker, period_bounds
from schemas.budget import validate_budget

NOV1 = 1793491200.0  # 2026-11-01T00:00:00Z; November has 30 days
PACE = 3000 / (30 * 1440)  # $/minute that spends exactly $3000 over November


def tracker(**changes: object) -> BudgetTracker:
    return BudgetTracker(validate_budget({"name": "gpt-4o monthly", "match": {"model": "gpt-4o"},
                                          "amount_usd": 3000} | changes))


def run(t: BudgetTracker, start: float, minutes: int, per_minute: float) -> list:
    out = []
    for i in range(minutes):
        m = start + i * 60
        t.add(m + 30, per_minute)
        out += t.close_minute(m)
    return out


def test_period_bounds_respect_timezone_and_month_length() -> None:
    assert (NOV1, NOV1 + 30 * 86400) == period_bounds(NOV1 + 5, "month", "UTC")
    start, end = period_bounds(NOV1 + 12 * 3600, "day", "America/New_York")
    assert (NOV1 + 4 * 3600, 25 * 3600) == (start, end - start)  # 2026-11-01 is the 25-hour DST day there


def test_on_pace_spend_burns_1x_and_never_alerts() -> None:
    t = tracker()
    assert [] == run(t, NOV1, 400, PACE)
    s = t.state()
    assert abs(s["burn_rates"]["1h"] - 1.0) < 1e-6 and abs(s["burn_rates"]["5m"] - 1.0) < 1e-6
    assert s["projected_exhaustion"] is None  # runs out exactly at the period end, not before


def test_fast_burn_fires_once_escalates_per_rule_and_resolves() -> None:
    t = tracker(thresholds_pct=[100])
    run(t, NOV1, 60, PACE)
    alerts = run(t, NOV1 + 3600, 120, PACE * 20)
    burn = [a for a in alerts if a.type == "budget_burn"]
    assert ["firing", "firing"] == [a.status for a in burn]  # the 1h rule, then the 6h rule: same incident
    assert burn[0].alert_id == burn[1].alert_id and "critical" == burn[0].severity
    assert burn[0].details["burn_long"] >= 14.4 and burn[0].details["burn_short"] >= 14.4
    assert burn[0].observed > burn[0].expected and "runs out" in burn[0].summary
    assert t.state()["open_incident"]["alert_id"] == burn[0].alert_id
    after = run(t, NOV1 + 3 * 3600, 600, PACE)
    resolved = [a for a in after if a.type == "budget_burn"]
    assert ["resolved"] == [a.status for a in resolved] and resolved[0].alert_id == burn[0].alert_id
    assert t.state()["open_incident"] is None


def test_short_window_alone_does_not_fire() -> None:
    """A 10-minute spike above 14.4x: the 5m window exceeds, the 1h window does not."""
    t = tracker()
    run(t, NOV1, 120, PACE)
    assert [] == [a for a in run(t, NOV1 + 7200, 10, PACE * 30) if a.type == "budget_burn"]


def test_thresholds_once_per_period_then_resolved_at_rollover() -> None:
    t = tracker(amount_usd=100, burn_rules=[{"long": "1h", "short": "5m", "burn": 1000}])
    first = run(t, NOV1, 60, 60 / 60)  # $60 in the first hour: crosses 50%
    assert [50.0] == [a.details["threshold_pct"] for a in first]
    assert "info" == first[0].severity
    both = run(t, NOV1 + 3600, 1, 45.0)  # to $105: 80 and 100 in one go -> one alert, the highest
    assert [(100.0, "critical")] == [(a.details["threshold_pct"], a.severity) for a in both]
    assert [] == run(t, NOV1 + 7200, 30, 1.0)
    assert t.state()["projected_exhaustion"] == "2026-11-01T01:01:00Z"  # when it ran out
    rolled = t.close_minute(NOV1 + 30 * 86400)
    assert {"resolved"} == {a.status for a in rolled} and 2 == len(rolled)
    assert 0.0 == t.spent and [] == t.state()["thresholds_crossed_pct"]


def test_projection_and_state_shape() -> None:
    t = tracker()
    run(t, NOV1, 60, PACE * 3)
    s = t.state()
    assert s["projected_exhaustion"].startswith("2026-11-1") and s["projected_exhaustion"].endswith("Z")
    assert {"spent_usd", "amount_usd", "pct", "burn_rates", "projected_exhaustion", "period_start",
            "period_end", "projected_period_spend_usd"} <= set(s)
    assert {"5m", "30m", "1h", "6h", "3d"} == set(s["burn_rates"])


def test_late_spend_counts_but_is_not_rejudged() -> None:
    t = tracker()
    run(t, NOV1, 5, PACE)
    t.add(NOV1 + 10, 1.0)
    assert abs(t.spent - (5 * PACE + 1.0)) < 1e-9 and 1.0 == t.late_usd
    assert abs(t.window_spend(300) - (5 * PACE + 1.0)) < 1e-9


def test_pickle_round_trip_and_bounded_memory() -> None:
    t = tracker()
    run(t, NOV1, 30, PACE)
    clone = pickle.loads(pickle.dumps(t))
    assert clone.state() == t.state()
    assert len(t._ring) == 3 * 1440  # O(longest window), whatever the history
