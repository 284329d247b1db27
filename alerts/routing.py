"""Routing, grouping and notification gating: pure, clock-injected, no I/O.

Pipeline for each alert from ``spendsentry.alerts``::

    Router.route(alert) -> [Destination]            # who gets it
    Grouper.add(dest, alert, now) / Grouper.flush(now) -> [(dest, alert)]   # coalesce bursts
    NotificationGate.admit(dest, alert, now) -> bool  # once per incident; again only on escalation

**Router.** A subscription matches when it is enabled, every ``match`` dimension is in the alert
key and matches (exact or glob; a dimension the key lacks never matches), the type is in
``alert_types`` (empty = all), severity >= ``min_severity`` (info < warning < critical) and
``observed - expected >= min_impact_usd``; a digest subscription (``digest`` set) is never routed
alerts, it gets its period's summary (:mod:`alerts.digest`). Default destinations (the env-configured sinks) get
every alert (``defaults="always"``, the behaviour before subscriptions existed) or only alerts no
subscription matched (``defaults="unmatched"``). A resolved alert goes exactly where its firing
record went (remembered in ``routes``, a mapping the worker can back with a table), whatever the
subscriptions say now; with no record, it is routed like a firing one.

**Grouper.** Processing time (an injected clock), not event time: alerts from different partitions
close their minutes at different event times but reach the delivery agent within a second of
each other, and processing time bounds the added latency. Per ``(destination, type)`` the first
firing alert opens a window of ``window_s`` (10 s, fixed, not sliding: nothing waits longer);
on ``flush`` after it, fewer than ``min_group`` alerts go out one by one, otherwise ONE grouped
alert: same type, ``key`` = the dimensions all members share (may be ``{}``), severity = the
highest, observed/expected = sums, ``details.members`` = [{alert_id, key, observed, expected,
severity}], summary "N models of service X ...". Its id is ``ag_`` + a hash of the member ids
(deterministic). Members' resolutions are absorbed; when the last member resolves, the group's
resolved alert is emitted with the group id. A member re-firing with a higher severity escalates
the group (same group id). Resolutions of ungrouped alerts pass straight through; an alert that
resolves while its firing still waits in a window goes out at once, firing then resolved (a
replayed incident is still reported).

**NotificationGate.** Per ``(destination key, alert_id)``: the first firing is admitted; a repeat
is admitted only when its severity is higher than the last one sent (escalation) and, when
``cooldown_s`` > 0, at least that long after the previous notification; a resolution is admitted
once, and only if its firing was. After a resolution, a firing of the same id is admitted only when
it is a reopen (``details.reopened``, set by the lifecycle): once per reopen, whatever its severity.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.alert import SEVERITIES, Alert
from schemas.subscription import Destination, Subscription, match_key

Clock = Callable[[], float]


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity) if severity in SEVERITIES else 0


def covers(sub: Subscription, alert: Alert) -> bool:
    """The subscription's filters (match, types, severity, impact) take ``alert`` in."""
    return (match_key(sub.match, alert.key)
            and (not sub.alert_types or alert.type in sub.alert_types)
            and severity_rank(alert.severity) >= severity_rank(sub.min_severity)
            and alert.observed - alert.expected >= sub.min_impact_usd)


def subscription_matches(sub: Subscription, alert: Alert) -> bool:
    """An enabled alert subscription that covers ``alert`` (a digest subscription gets digests only)."""
    return sub.enabled and sub.digest is None and covers(sub, alert)


def legacy_key(dest: Destination) -> str | None:
    """The key a webhook had before destinations were masked (``webhook:<url>``): state written under it (routes,
    notification gates) is still found after an upgrade."""
    return f"webhook:{dest.url}" if dest.type == "webhook" else None


@dataclass(slots=True)
class Route:
    """One destination an alert goes to, and why (subscription id, or ``None`` for a default)."""

    destination: Destination
    subscription_id: str | None = None
    cooldown_s: float = 0.0


class Router:
    """``route(alert) -> list[Route]`` (deduplicated by destination key, subscriptions first)."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription],
        default_destinations: Sequence[Destination] = (),
        *,
        defaults: str = "always",
        routes: MutableMapping[str, list[dict[str, Any]]] | None = None,
        max_routes: int = 100_000,
    ) -> None:
        if defaults not in ("always", "unmatched"):
            raise ValueError("defaults must be 'always' or 'unmatched'")
        self.subscriptions = list(subscriptions)
        self.default_destinations = list(default_destinations)
        self.defaults = defaults
        #: alert_id -> routes its firing record took (destinations masked: the resolution finds
        #: each again by its key, :meth:`destination`, so the table holds no credential)
        self.routes: MutableMapping[str, list[dict[str, Any]]] = routes if routes is not None else OrderedDict()
        self._max_routes = max_routes
        #: every destination routed to by this process: a firing's resolve still reaches a
        #: subscription deleted meanwhile (after a restart only configured ones are known)
        self._routed: dict[str, Destination] = {}

    def update(self, subscriptions: Iterable[Subscription]) -> None:
        """Replace the subscription set (after an API change); remembered routes are kept."""
        self.subscriptions = list(subscriptions)

    def destination(self, key: str) -> Destination | None:
        """The destination with ``key``: configured (subscriptions, disabled ones too, and defaults)
        or routed to by this process."""
        for dest in [sub.destination for sub in self.subscriptions] + self.default_destinations:
            if key in (dest.key, legacy_key(dest)):
                return dest
        return self._routed.get(key)

    def match(self, alert: Alert) -> list[Route]:
        """Current rules only (no memory)."""
        out: dict[str, Route] = {}
        for sub in self.subscriptions:
            if subscription_matches(sub, alert):
                out.setdefault(sub.destination.key, Route(sub.destination, sub.id, sub.cooldown_s))
        if self.defaults == "always" or not out:
            for dest in self.default_destinations:
                out.setdefault(dest.key, Route(dest))
        return list(out.values())

    def route(self, alert: Alert) -> list[Route]:
        if alert.status == "resolved":
            stored = self.routes.pop(alert.alert_id, None)
            if stored is not None:
                found = [(self.destination(r["key"]), r) for r in stored]
                return [Route(dest, r.get("subscription_id"), float(r.get("cooldown_s", 0.0)))
                        for dest, r in found if dest is not None]
            return self.match(alert)
        found = self.match(alert)
        merged = {r["key"]: r for r in self.routes.get(alert.alert_id) or []}
        for r in found:
            self._routed[r.destination.key] = r.destination
            merged.setdefault(r.destination.key, {"key": r.destination.key,
                                                  "destination": r.destination.to_dict(masked=True),
                                                  "subscription_id": r.subscription_id, "cooldown_s": r.cooldown_s})
        self.routes[alert.alert_id] = list(merged.values())
        if isinstance(self.routes, OrderedDict):
            self.routes.move_to_end(alert.alert_id)
            while len(self.routes) > self._max_routes:
                self.routes.popitem(last=False)
        return found


# -- grouping ------------------------------------------------------------------------------

_NOUNS = {"model": "models", "service": "services", "team": "teams", "provider": "providers",
          "environment": "environments", "operation": "operations", "pipeline_stage": "pipeline stages",
          "experiment": "experiments"}


def group_id(member_ids: Iterable[str]) -> str:
    return "ag_" + hashlib.sha256("|".join(sorted(member_ids)).encode()).hexdigest()[:24]


def common_key(keys: Sequence[dict[str, str]]) -> dict[str, str]:
    if not keys:
        return {}
    first = keys[0]
    return {k: v for k, v in first.items() if all(other.get(k) == v for other in keys[1:])}


def group_summary(alert_type: str, members: Sequence[Alert], common: dict[str, str]) -> str:
    varying = [k for k in dict.fromkeys(k for m in members for k in m.key) if k not in common]
    noun = _NOUNS.get(varying[0], varying[0]) if len(varying) == 1 else "keys"
    where = " of " + ", ".join(f"{k} {v}" for k, v in common.items()) if common else ""
    observed = sum(m.observed for m in members)
    expected = sum(m.expected for m in members)
    what = alert_type.replace("_", " ")
    return f"{len(members)} {noun}{where}: {what} at once, ${observed:,.2f} vs ${expected:,.2f} expected in total"


def make_group_alert(members: Sequence[Alert], gid: str, *, status: str = "firing") -> Alert:
    common = common_key([m.key for m in members])
    first = min(members, key=lambda m: m.window_start)
    severity = max((m.severity for m in members), key=severity_rank)
    summary = group_summary(first.type, members, common)
    return Alert(
        alert_id=gid, type=first.type, status=status, severity=severity, key=common,  # type: ignore[arg-type]
        window_start=first.window_start, window_end=max(m.window_end for m in members),
        triggered_at=max(m.triggered_at for m in members),
        observed=round(sum(m.observed for m in members), 6), expected=round(sum(m.expected for m in members), 6),
        score=max(m.score for m in members),
        summary=("resolved: " + summary) if status == "resolved" else summary,
        details={"grouped": True, "count": len(members),
                 "members": [{"alert_id": m.alert_id, "key": dict(m.key), "observed": m.observed,
                              "expected": m.expected, "severity": m.severity, "status": m.status} for m in members]})


@dataclass(slots=True)
class _Pending:
    opened_at: float
    alerts: list[Alert] = field(default_factory=list)


@dataclass(slots=True)
class _Group:
    members: dict[str, Alert]
    resolved: set[str] = field(default_factory=set)


class Grouper:
    """Coalesces bursts of alerts per destination; see the module docstring. Picklable."""

    def __init__(self, *, window_s: float = 10.0, min_group: int = 3, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self.min_group = min_group
        self.clock = clock
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._dests: dict[str, Destination] = {}
        #: (dest key, member alert id) -> group id; group id -> group
        self._member_of: dict[tuple[str, str], str] = {}
        self._groups: dict[tuple[str, str], _Group] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = {k: getattr(self, k) for k in ("window_s", "min_group", "_pending", "_dests", "_member_of", "_groups")}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.clock = time.monotonic

    def add(self, dest: Destination, alert: Alert, now: float | None = None) -> list[tuple[Destination, Alert]]:
        """Take one routed alert; return what can go out right away (resolutions, escalations)."""
        now = self.clock() if now is None else now
        self._dests[dest.key] = dest
        gid = self._member_of.get((dest.key, alert.alert_id))
        if gid is not None:
            group = self._groups[(dest.key, gid)]
            if alert.status == "resolved":
                group.resolved.add(alert.alert_id)
                group.members[alert.alert_id] = alert
                if group.resolved >= set(group.members):
                    for mid in group.members:
                        self._member_of.pop((dest.key, mid), None)
                    del self._groups[(dest.key, gid)]
                    return [(dest, make_group_alert(list(group.members.values()), gid, status="resolved"))]
                return []
            old = group.members[alert.alert_id]
            group.members[alert.alert_id] = alert
            if severity_rank(alert.severity) > severity_rank(old.severity):
                return [(dest, make_group_alert(list(group.members.values()), gid))]
            return []
        if alert.status == "resolved":
            pending = self._pending.get((dest.key, alert.type))
            if pending is not None:  # resolved before its window flushed: both go out now, in order
                firing = [a for a in pending.alerts if a.alert_id == alert.alert_id]
                pending.alerts = [a for a in pending.alerts if a.alert_id != alert.alert_id]
                if not pending.alerts:
                    del self._pending[(dest.key, alert.type)]
                return [(dest, a) for a in firing] + [(dest, alert)]
            return [(dest, alert)]
        pending = self._pending.setdefault((dest.key, alert.type), _Pending(now))
        pending.alerts = [a for a in pending.alerts if a.alert_id != alert.alert_id] + [alert]
        return []

    def is_waiting(self, dest_key: str, alert_type: str, alert_id: str) -> bool:
        """Whether the alert sits in an open window (not sent yet)."""
        pending = self._pending.get((dest_key, alert_type))
        return pending is not None and any(a.alert_id == alert_id for a in pending.alerts)

    def next_due(self) -> float | None:
        """When the earliest open window closes (for the caller's timer), or ``None``."""
        return min((p.opened_at + self.window_s for p in self._pending.values()), default=None)

    def flush(self, now: float | None = None, *, force: bool = False) -> list[tuple[Destination, Alert]]:
        """Close the windows that are due (all of them with ``force``) and return what goes out."""
        now = self.clock() if now is None else now
        out: list[tuple[Destination, Alert]] = []
        for slot in sorted(self._pending, key=lambda s: self._pending[s].opened_at):
            pending = self._pending[slot]
            if not force and now < pending.opened_at + self.window_s:
                continue
            del self._pending[slot]
            dest = self._dests[slot[0]]
            if len(pending.alerts) < self.min_group:
                out += [(dest, a) for a in pending.alerts]
                continue
            gid = group_id(a.alert_id for a in pending.alerts)
            self._groups[(dest.key, gid)] = _Group({a.alert_id: a for a in pending.alerts})
            for a in pending.alerts:
                self._member_of[(dest.key, a.alert_id)] = gid
            out.append((dest, make_group_alert(pending.alerts, gid)))
        return out


# -- notification gate ----------------------------------------------------------------------

class NotificationGate:
    """Once per incident per destination; again only on escalation. ``sent`` can be a table."""

    def __init__(self, *, sent: MutableMapping[str, dict[str, Any]] | None = None, clock: Clock = time.time,
                 max_entries: int = 100_000) -> None:
        #: "<dest key>|<alert id>" -> {"severity", "status", "at"}
        self.sent: MutableMapping[str, dict[str, Any]] = sent if sent is not None else OrderedDict()
        self.clock = clock
        self._max = max_entries

    def admit(self, dest: Destination | str, alert: Alert, *, cooldown_s: float = 0.0,
              now: float | None = None, record: bool = True) -> bool:
        """Whether to notify; with ``record=False`` only decide, and call :meth:`record` once the
        notification is durable (sent or queued for retry), so a crash in between re-sends it."""
        now = self.clock() if now is None else now
        slot = f"{dest.key if isinstance(dest, Destination) else dest}|{alert.alert_id}"
        old = legacy_key(dest) if isinstance(dest, Destination) else None
        last = self.sent.get(slot) or (self.sent.get(f"{old}|{alert.alert_id}") if old else None)
        if alert.status == "resolved":
            if last is None or last.get("status") == "resolved":
                return False
        elif last is not None:
            if last.get("status") == "resolved":
                # a reopened incident (same id, details.reopened) is news to on-call: sent again as
                # firing, once per reopen (the next repeat finds a firing recorded and is refused)
                if not (alert.details or {}).get("reopened"):
                    return False
            elif severity_rank(alert.severity) <= severity_rank(str(last.get("severity"))):
                return False
            elif cooldown_s > 0 and now - float(last.get("at", 0.0)) < cooldown_s:
                return False
        if record:
            self.record(dest, alert, now=now)
        return True

    def record(self, dest: Destination | str, alert: Alert, *, now: float | None = None) -> None:
        """Remember that ``alert`` (this status and severity) went to ``dest``."""
        now = self.clock() if now is None else now
        slot = f"{dest.key if isinstance(dest, Destination) else dest}|{alert.alert_id}"
        self.sent[slot] = {"severity": alert.severity, "status": alert.status, "at": now}
        if isinstance(self.sent, OrderedDict):
            self.sent.move_to_end(slot)
            while len(self.sent) > self._max:
                self.sent.popitem(last=False)
