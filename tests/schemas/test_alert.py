"""The alert record: deterministic ids and a JSON form that round-trips."""

from __future__ import annotations

from schemas.alert import Alert, alert_id_for


def test_alert_id_is_deterministic_and_key_order_free() -> None:
    a = alert_id_for("cost_spike", {"model": "gpt-4o", "team": "cx"}, 1795759200.0)
    b = alert_id_for("cost_spike", {"team": "cx", "model": "gpt-4o"}, 1795759200.0)
    assert a == b and a.startswith("al_")
    assert a != alert_id_for("cost_spike", {"model": "gpt-4o", "team": "cx"}, 1795759260.0)
    assert a != alert_id_for("budget_burn", {"model": "gpt-4o", "team": "cx"}, 1795759200.0)


def test_to_dict_round_trips_with_rfc3339_times() -> None:
    alert = Alert("al_1", "cost_spike", "firing", "warning", {"model": "gpt-4o"}, 1795759200.0, 1795759260.0,
                  1795759260.0, 12.5, 1.25, 0.99, "gpt-4o spend", {"requests": 10})
    data = alert.to_dict()
    assert data["window_start"] == "2026-11-27T06:00:00Z"
    assert Alert.from_dict(data) == alert
    assert alert.impact_usd == 11.25
