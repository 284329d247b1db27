"""Router, Grouper and NotificationGate: pure, with an injected clock."""

from __future__ import annotations

import pickle
from dataclasses import replace
from typing import Any

import orjson

from alerts.routing import Grouper, NotificationGate, Router
from alerts.signing import generate_secret
from schemas.alert import Alert
from schemas.subscription import Destination, validate_subscription
from tests.support import make_alert

SLACK = {"type": "slack", "channel": "#llm-oncall"}


def sub(match: dict[str, str], destination: dict[str, Any] | None = None, **extra: Any):
    return validate_subscription({"name": "s", "match": match, "destination": destination or SLACK} | extra)


def test_matching_rules() -> None:
    r = Router([sub({"team": "cx", "model": "gpt-*"}, min_severity="warning", min_impact_usd=5,
                    alert_types=["cost_spike"])])
    alert = make_alert()  # cost_spike, warning, team=cx model=gpt-4o, impact 11.25
    assert ["slack:#llm-oncall"] == [x.destination.key for x in r.route(alert)]
    assert [] == r.match(replace(alert, severity="info"))
    assert [] == r.match(replace(alert, observed=5.0))  # impact 3.75 < 5
    assert [] == r.match(replace(alert, type="budget_burn"))
    assert [] == r.match(replace(alert, key={"model": "gpt-4o"}))  # key lacks team
    assert [] == r.match(replace(alert, key={"model": "claude-3", "team": "cx"}))
    assert [] == Router([sub({}, enabled=False)]).match(alert)


def test_defaults_always_or_unmatched_and_dedup() -> None:
    default = Destination("slack", channel="#cost-alerts")
    s = sub({"model": "gpt-4o"})
    always = Router([s, sub({"team": "cx"})], [default])
    assert ["slack:#llm-oncall", "slack:#cost-alerts"] == [x.destination.key for x in always.route(make_alert())]
    unmatched = Router([s], [default], defaults="unmatched")
    assert ["slack:#llm-oncall"] == [x.destination.key for x in unmatched.route(make_alert())]
    other = make_alert(key={"model": "o3"})
    assert ["slack:#cost-alerts"] == [x.destination.key for x in unmatched.route(other)]


def test_resolved_goes_where_the_firing_went() -> None:
    hook = {"type": "webhook", "url": "https://h.example.com/x", "secret": generate_secret()}
    r = Router([sub({"model": "gpt-4o"}, hook)])
    fired = r.route(make_alert())
    r.update([])  # subscription deleted meanwhile
    resolved = r.route(make_alert("resolved"))
    assert [x.destination for x in fired] == [x.destination for x in resolved]
    assert resolved[0].destination.secret == hook["secret"]
    assert [] == r.route(make_alert("resolved"))  # nothing remembered, no subscriptions


def burst(n: int, service: str = "search") -> list[Alert]:
    return [make_alert(key={"service": service, "model": f"m{i}"}, observed=10.0 + i, expected=1.0) for i in range(n)]


def test_grouper_one_message_for_a_burst_then_one_resolution() -> None:
    now = [100.0]
    g = Grouper(window_s=10, min_group=3, clock=lambda: now[0])
    dest = Destination("slack", channel="#c")
    alerts = burst(20)
    for a in alerts:
        assert [] == g.add(dest, a)
    assert g.next_due() == 110.0
    now[0] = 109.9
    assert [] == g.flush()
    now[0] = 110.0
    [(d, group)] = g.flush()
    assert d == dest and group.alert_id.startswith("ag_") and "cost_spike" == group.type
    assert {"service": "search"} == group.key and 20 == len(group.details["members"])
    assert group.summary.startswith("20 models of service search")
    assert abs(group.observed - sum(a.observed for a in alerts)) < 1e-6
    clone = pickle.loads(pickle.dumps(g))
    for a in alerts[:-1]:
        assert [] == clone.add(dest, replace(a, status="resolved"), now=200.0)
    [(_, done)] = clone.add(dest, replace(alerts[-1], status="resolved"), now=201.0)
    assert ("resolved", group.alert_id) == (done.status, done.alert_id)


def test_grouper_small_bursts_go_out_singly_and_escalation_passes() -> None:
    g = Grouper(window_s=10, min_group=3, clock=lambda: 0.0)
    dest = Destination("slack", channel="#c")
    a, b = burst(2)
    g.add(dest, a, now=0)
    g.add(dest, b, now=1)
    assert [a, b] == [x for _, x in g.flush(now=10)]
    assert [(dest, replace(a, status="resolved"))] == g.add(dest, replace(a, status="resolved"), now=20)
    members = burst(3, "ads")
    for m in members:
        g.add(dest, m, now=30)
    [(_, group)] = g.flush(now=40)
    [(_, up)] = g.add(dest, replace(members[0], severity="critical"), now=41)
    assert (group.alert_id, "critical") == (up.alert_id, up.severity)


def test_resolved_before_flush_sends_firing_then_resolved() -> None:
    """A replayed incident (firing and resolved in one window) is still reported, in order."""
    g = Grouper(clock=lambda: 0.0)
    dest = Destination("slack", channel="#c")
    g.add(dest, make_alert(), now=0)
    out = g.add(dest, make_alert("resolved"), now=1)
    assert [a.status for _, a in out] == ["firing", "resolved"]
    assert [] == g.flush(now=100)


def test_gate_once_per_incident_escalation_and_cooldown() -> None:
    gate = NotificationGate(clock=lambda: 0.0)
    dest = Destination("slack", channel="#c")
    alert = make_alert()
    assert gate.admit(dest, alert, now=0)
    assert not gate.admit(dest, alert, now=1)
    assert not gate.admit(dest, replace(alert, severity="info"), now=2)
    assert not gate.admit(dest, replace(alert, severity="critical"), cooldown_s=60, now=30)
    assert gate.admit(dest, replace(alert, severity="critical"), cooldown_s=60, now=61)
    assert gate.admit(Destination("slack", channel="#other"), alert, now=62)  # per destination
    assert gate.admit(dest, make_alert("resolved"), now=70)
    assert not gate.admit(dest, make_alert("resolved"), now=71)
    assert not NotificationGate().admit(dest, make_alert("resolved"))  # never fired here


def test_gate_sends_a_reopened_incident_once_per_reopen() -> None:
    gate = NotificationGate(clock=lambda: 0.0)
    dest = Destination("slack", channel="#c")
    alert = make_alert()
    reopened = replace(alert, details={**alert.details, "reopened": True})
    assert gate.admit(dest, alert, now=0)
    assert gate.admit(dest, make_alert("resolved"), now=10)
    assert not gate.admit(dest, alert, now=20)  # a plain repeat after the resolution stays refused
    assert gate.admit(dest, replace(reopened, severity="info"), cooldown_s=600, now=30)  # news, whatever severity
    assert not gate.admit(dest, replace(reopened, severity="info"), now=31)  # once per reopen
    assert gate.admit(dest, make_alert("resolved"), now=40)
    assert gate.admit(dest, reopened, now=50)  # the next reopen pages again


def test_remembered_routes_hold_no_secret_and_a_restarted_router_finds_them_by_key() -> None:
    hook = {"type": "webhook", "url": "https://h.example.com/services/T0/B0/SECRETPATH?token=SECRETQUERY",
            "secret": generate_secret()}
    routes: dict = {}
    Router([sub({"model": "gpt-4o"}, hook)], routes=routes).route(make_alert())
    stored = orjson.dumps(routes)
    assert b"SECRETPATH" not in stored and b"SECRETQUERY" not in stored and hook["secret"].encode() not in stored
    restarted = Router([sub({"model": "nothing-matches"}, hook)], routes=dict(routes))
    (route,) = restarted.route(make_alert("resolved"))
    assert route.destination.url == hook["url"] and route.destination.secret == hook["secret"]
    assert [] == Router([], routes=dict(routes)).route(make_alert("resolved"))  # deleted before the restart


def test_state_written_under_a_webhooks_old_unmasked_key_is_still_found_after_an_upgrade() -> None:
    """Before issue 13 a webhook's key was ``webhook:<url>``: a firing sent then is resolved after."""
    hook = {"type": "webhook", "url": "https://h.example.com/services/T0/B0/SECRETPATH", "secret": generate_secret()}
    subscription = sub({"model": "gpt-4o"}, hook)
    old_key = f"webhook:{hook['url']}"
    alert = make_alert()
    routes = {alert.alert_id: [{"key": old_key, "destination": hook, "subscription_id": subscription.id,
                                "cooldown_s": 0.0}]}
    (route,) = Router([subscription], routes=routes).route(make_alert("resolved"))
    assert route.destination == subscription.destination
    gate = NotificationGate(sent={f"{old_key}|{alert.alert_id}": {"severity": alert.severity, "status": "firing",
                                                                    "at": 0.0}})
    assert not gate.admit(subscription.destination, alert, now=1.0)  # no repeat of the firing
    assert gate.admit(subscription.destination, make_alert("resolved"), now=1.0)  # its resolve goes out
