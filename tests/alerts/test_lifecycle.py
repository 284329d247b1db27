"""The incident lifecycle: escalation, no flapping, reopen, silence, plain-data state."""

from __future__ import annotations

import json

from alerts.lifecycle import Lifecycle, SeverityPolicy
from detectors.base import Verdict
from schemas.alert import Alert

KEY = {"model": "gpt-4o"}
POLICY = SeverityPolicy(warning_usd_per_hour=10.0, critical_usd_per_hour=100.0)
T0 = 1_795_392_000.0


def feed(life: Lifecycle, minute: int, observed: float, *, anomalous: bool, expected: float = 0.01,
         settled: bool = True, hold: int = 0) -> Alert | None:
    start = T0 + 60 * minute
    verdict = Verdict(score=0.9 if anomalous else 0.1, expected=expected, anomalous=anomalous,
                      reason="z=9" if anomalous else "", settled=settled, hold=hold)
    return life.on_verdict(alert_type="cost_spike", key=KEY, start=start, end=start + 60, observed=observed,
                           verdict=verdict, policy=POLICY, details={})


def test_cost_spike_escalation_is_resent_with_the_same_id_and_a_higher_severity() -> None:
    life = Lifecycle()
    first = feed(life, 0, 0.05, anomalous=True)  # $0.04 over in a minute: $2.4/h -> info
    assert first is not None and first.severity == "info" and first.status == "firing"
    assert feed(life, 1, 0.06, anomalous=True) is None  # still info: nothing new to say
    up = feed(life, 2, 0.5, anomalous=True)  # $29/h -> warning
    assert up is not None and up.status == "firing" and up.alert_id == first.alert_id
    assert (up.severity, up.details["escalated_from"]) == ("warning", "info")
    top = feed(life, 3, 5.0, anomalous=True)  # $300/h -> critical
    assert top is not None and top.alert_id == first.alert_id and top.severity == "critical"
    assert feed(life, 4, 0.5, anomalous=True) is None  # never de-escalates by re-sending


def test_an_incident_resolves_only_when_its_evidence_is_gone() -> None:
    life = Lifecycle(resolve_after=3)
    feed(life, 0, 1.0, anomalous=True)
    for minute in range(1, 20):  # in band but the CUSUM still high: not over
        assert feed(life, minute, 0.01, anomalous=False, settled=False) is None
    assert feed(life, 20, 0.01, anomalous=False) is None
    assert feed(life, 21, 0.01, anomalous=False) is None
    resolved = feed(life, 22, 0.01, anomalous=False)
    assert resolved is not None and resolved.status == "resolved"


def test_a_sparse_key_holds_its_incident_for_the_hold_it_asks_for() -> None:
    life = Lifecycle(resolve_after=3)
    feed(life, 0, 1.0, anomalous=True)
    for minute in range(1, 30):
        assert feed(life, minute, 0.0, anomalous=False, hold=30) is None
    assert feed(life, 30, 0.0, anomalous=False, hold=30) is not None


def test_firing_again_within_30_minutes_reopens_the_same_incident() -> None:
    life = Lifecycle(resolve_after=1, reopen_s=1800.0)
    first = feed(life, 0, 1.0, anomalous=True)
    assert feed(life, 1, 0.01, anomalous=False) is not None
    again = feed(life, 25, 1.0, anomalous=True)
    assert again is not None and again.alert_id == first.alert_id and again.details["reopened"] is True
    assert again.window_start == first.window_start
    assert feed(life, 26, 0.01, anomalous=False) is not None
    later = feed(life, 27 + 31, 1.0, anomalous=True)  # 31 min after that resolution: a new incident
    assert later is not None and later.alert_id != first.alert_id and "reopened" not in later.details


def test_a_silent_incident_neither_escalates_nor_resolves_out_loud() -> None:
    life = Lifecycle(resolve_after=1)
    assert feed(life, 0, 0.05, anomalous=True) is not None
    assert life.incident is not None
    life.incident.silent = True
    assert feed(life, 1, 5.0, anomalous=True) is None
    assert feed(life, 2, 0.01, anomalous=False) is None
    assert life.incident is None
    fresh = feed(life, 3, 1.0, anomalous=True)  # a silent incident is never reopened
    assert fresh is not None and "reopened" not in fresh.details


def test_state_round_trips_through_json() -> None:
    life = Lifecycle(resolve_after=2)
    feed(life, 0, 1.0, anomalous=True)
    clone = Lifecycle.from_state(json.loads(json.dumps(life.to_state())))
    for minute in (1, 2):
        assert feed(clone, minute, 0.01, anomalous=False) == feed(life, minute, 0.01, anomalous=False)
    assert clone.to_state() == life.to_state()
