"""The incident lifecycle: escalation, no flapping, reopen, silence, plain-data state."""

from __future__ import annotations

import json
from dataclasses import replace

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


def cause(life: Lifecycle, minute: int, verdict: Verdict) -> list[Alert]:
    start = T0 + 60 * minute
    return life.on_causes(alert_type="cost_spike", key=KEY, start=start, end=start + 60, observed=0.05,
                          verdict=verdict, policy=POLICY, details={})


LOOP = Verdict(score=0.9, expected=0.01, anomalous=True, reason="request rate 9x expected", cause="volume")
BLOAT = Verdict(score=0.9, expected=0.01, anomalous=True, reason="input tokens per request 4x normal", cause="mix")
CALM = Verdict(score=0.1, expected=0.01, anomalous=False)


def test_a_second_cause_inside_an_open_incident_is_an_incident_of_its_own() -> None:
    life = Lifecycle()
    [loop] = cause(life, 0, LOOP)
    assert cause(life, 1, LOOP) == []
    both = Verdict(score=0.9, expected=0.01, anomalous=True, reason=LOOP.reason, cause="volume", side=BLOAT)
    [bloat] = cause(life, 2, both)
    assert bloat.status == "firing" and bloat.alert_id != loop.alert_id
    assert bloat.details["concurrent_with"] == loop.alert_id and bloat.details["reason"] == BLOAT.reason
    assert cause(life, 3, BLOAT) == []  # the bloat goes on: nothing new; the loop is not settled by it
    out = [a for m in range(4, 8) for a in cause(life, m, CALM)]
    assert [(a.status, a.alert_id) for a in out] == [("resolved", loop.alert_id), ("resolved", bloat.alert_id)]
    assert life.incident is None and life.side is None


def test_the_second_cause_carries_on_as_the_keys_incident_when_the_first_resolves() -> None:
    life = Lifecycle()
    [loop] = cause(life, 0, LOOP)
    [bloat] = cause(life, 1, BLOAT)
    # the bloat still fires in the third minute, the requests back to normal (settled_causes)
    out = [a for m in range(2, 5) for a in cause(life, m, replace(BLOAT, anomalous=m == 4, settled_causes=("volume",)))]
    assert [(a.status, a.alert_id) for a in out] == [("resolved", loop.alert_id)]
    assert life.incident is not None and life.incident.alert_id == bloat.alert_id and life.side is None


def test_a_cause_that_keeps_firing_does_not_settle_the_other_causes_incident() -> None:
    """A runaway loop firing minute after minute says nothing of the cost per request: the bloat's
    incident beside it stays open (it resolved every three minutes and fired anew: tuning seed 1)."""
    life = Lifecycle()
    [loop] = cause(life, 0, LOOP)
    [bloat] = cause(life, 1, BLOAT)
    assert [a for m in range(2, 12) for a in cause(life, m, LOOP)] == []
    assert life.side is not None and life.side.alert_id == bloat.alert_id
    mix_back = replace(LOOP, settled_causes=("mix",))  # ... until its own evidence is gone
    out = [a for m in range(12, 15) for a in cause(life, m, mix_back)]
    assert [(a.status, a.alert_id) for a in out] == [("resolved", bloat.alert_id)]


def test_an_incident_resolves_on_its_own_causes_evidence_not_on_the_others() -> None:
    life = Lifecycle()
    [loop] = cause(life, 0, LOOP)
    mix_still_high = Verdict(score=0.5, expected=0.01, anomalous=False, settled=False, settled_causes=("volume",))
    out = [a for m in range(1, 4) for a in cause(life, m, mix_still_high)]
    assert [(a.status, a.alert_id) for a in out] == [("resolved", loop.alert_id)]
    life = Lifecycle()
    cause(life, 0, BLOAT)  # a mix incident is not settled by the requests being back
    assert [a for m in range(1, 10) for a in cause(life, m, mix_still_high)] == []
    life = Lifecycle()
    cause(life, 0, replace(LOOP, cause=""))  # nor is one whose cause was never named
    assert [a for m in range(1, 10) for a in cause(life, m, mix_still_high)] == []


def test_an_incident_opened_before_its_cause_was_known_takes_the_first_cause_named() -> None:
    life = Lifecycle()
    [first] = cause(life, 0, replace(LOOP, cause=""))  # a first burst minute: the requests not yet counted
    assert cause(life, 1, LOOP) == []
    assert cause(life, 2, replace(LOOP, cause="")) == []
    [bloat] = cause(life, 3, BLOAT)
    assert bloat.alert_id != first.alert_id


def test_a_verdict_of_one_cause_only_never_opens_a_second_incident() -> None:
    life = Lifecycle()
    cause(life, 0, BLOAT)
    assert [a for m in range(1, 30) for a in cause(life, m, BLOAT if m % 3 else replace(BLOAT, cause=""))] == []
    state = json.loads(json.dumps(life.to_state()))
    assert Lifecycle.from_state(state).to_state() == life.to_state()


def test_firing_again_for_another_cause_soon_after_resolving_is_a_new_incident() -> None:
    """A prompt bloat resolves and a retry storm fires 20 minutes later: that is news of its own
    (tuning seed 72: reopened, the storm's alert carried the bloat's first window, hours before)."""
    life = Lifecycle(resolve_after=1, reopen_s=1800.0)
    [bloat] = cause(life, 0, BLOAT)
    assert [a.status for a in cause(life, 1, CALM)] == ["resolved"]
    [storm] = cause(life, 21, LOOP)
    assert storm.alert_id != bloat.alert_id and "reopened" not in storm.details
    assert storm.window_start == T0 + 21 * 60
    assert [a.status for a in cause(life, 22, CALM)] == ["resolved"]
    [again] = cause(life, 30, LOOP)  # the same cause again: the storm's incident reopens
    assert again.alert_id == storm.alert_id and again.details["reopened"] is True
