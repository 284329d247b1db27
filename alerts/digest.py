"""Spend digests: one summary per digest subscription and closed period. Pure, no I/O, no clock.

A subscription with ``"digest": "daily" | "weekly"`` and a ``"timezone"`` gets, once each period of
its time zone has closed (:func:`last_closed_period`: a local day, or an ISO week from Monday
00:00), the summary :func:`build_digest` makes of plain inputs:

* spend in the period and the change against the period before, over the spend rows that match
  the subscription's ``match`` (exact values or globs, as for alerts);
* top movers: the keys (the alert key's dimensions) whose spend changed most, either way;
* budget status: the budgets inside the subscription's scope, spent / amount and projected end;
* GPU idle waste: the dollars of the period's ``gpu_idle`` alerts (None when there were none);
* the period's alerts that the subscription's filters cover, newest first;
* a link to that scope's dashboard view, ``<base>/ui/?team=search`` for the exact values of
  ``match``.

Rendered as Slack Block Kit (:func:`digest_blocks`, within Slack's limits) and as a Standard
Webhooks body (:func:`digest_body`, type ``spendsentry.digest``) whose ``webhook-id``
(:func:`digest_webhook_id`) is the same for one subscription and period however often it is sent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson

from alerts.routing import covers
from alerts.slack_blocks import CONTEXT_ELEMENTS_MAX, FIELDS_MAX, HEADER_MAX, SECTION_TEXT_MAX, escape, usd
from schemas.alert import Alert, rfc3339
from schemas.subscription import Subscription, match_key

EVENT_TYPE = "spendsentry.digest"
TOP_MOVERS = 5
MAX_ALERTS = 10
_GLOB = set("*?[")


@dataclass(frozen=True, slots=True)
class Period:
    """``[start, end)`` in Unix seconds; ``label`` is ``2026-03-29`` (daily) or ``2026-W13`` (weekly)."""

    kind: str
    label: str
    start: float
    end: float


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def period_of(kind: str, day: date, zone: ZoneInfo) -> Period:
    """The daily or weekly period of ``zone`` that holds the local date ``day``."""
    if kind == "daily":
        return Period(kind, day.isoformat(), _midnight(day, zone), _midnight(day + timedelta(days=1), zone))
    if kind != "weekly":
        raise ValueError(f"digest must be daily or weekly, not {kind!r}")
    monday = day - timedelta(days=day.weekday())
    year, week, _ = monday.isocalendar()
    return Period(kind, f"{year}-W{week:02d}", _midnight(monday, zone), _midnight(monday + timedelta(days=7), zone))


def last_closed_period(kind: str, zone: ZoneInfo, now: float) -> Period:
    """The newest daily/weekly period of ``zone`` that ended at or before ``now``."""
    current = period_of(kind, datetime.fromtimestamp(now, zone).date(), zone)
    return previous_period(current, zone)


def previous_period(period: Period, zone: ZoneInfo) -> Period:
    return period_of(period.kind, datetime.fromtimestamp(period.start, zone).date() - timedelta(days=1), zone)


def dashboard_link(base_url: str, match: Mapping[str, str]) -> str:
    """``<base>/ui/`` with the subscription's exact (non-glob) match values as the saved view."""
    exact = {dim: value for dim, value in sorted(match.items()) if not _GLOB & set(value)}
    return f"{base_url.rstrip('/')}/ui/" + (f"?{urlencode(exact)}" if exact else "")


def _change_pct(now: float, before: float) -> float | None:
    return None if before <= 0 else round((now - before) / before * 100, 1)


def _by_key(rows: Iterable[tuple[Mapping[str, str], float]], match: Mapping[str, str],
            key_dims: Sequence[str]) -> dict[tuple[str, ...], float]:
    out: dict[tuple[str, ...], float] = {}
    for key, cost in rows:
        if match_key(match, key):
            group = tuple(key.get(d) or "" for d in key_dims)
            out[group] = out.get(group, 0.0) + cost
    return out


def build_digest(sub: Subscription, period: Period, previous: Period, *,
                 spend: Iterable[tuple[Mapping[str, str], float]],
                 previous_spend: Iterable[tuple[Mapping[str, str], float]],
                 key_dims: Sequence[str], budgets: Iterable[tuple[Mapping[str, Any], Mapping[str, Any] | None]],
                 alerts: Iterable[Alert], base_url: str) -> dict[str, Any]:
    """The digest document (JSON-ready): see the module docstring for what it holds.

    ``spend``/``previous_spend``: ``(segment key, cost)`` rows of each period; ``budgets``:
    ``(budget as stored, its tracker state or None)``; ``alerts``: every recent alert (the
    period's, covered by the subscription, are picked here)."""
    now_by = _by_key(spend, sub.match, key_dims)
    before_by = _by_key(previous_spend, sub.match, key_dims)
    total, before = sum(now_by.values()), sum(before_by.values())
    movers = sorted(({"key": dict(zip(key_dims, group)), "spend_usd": round(now_by.get(group, 0.0), 2),
                      "previous_usd": round(before_by.get(group, 0.0), 2),
                      "change_usd": round(now_by.get(group, 0.0) - before_by.get(group, 0.0), 2)}
                     for group in set(now_by) | set(before_by)),
                    key=lambda m: (-abs(m["change_usd"]), -m["spend_usd"], sorted(m["key"].items())))
    in_period = sorted((a for a in alerts if period.start <= a.triggered_at < period.end and covers(sub, a)),
                       key=lambda a: a.triggered_at, reverse=True)
    idle = [a.observed for a in in_period if a.type == "gpu_idle"]
    budget_rows = []
    for stored, state in budgets:
        scope = stored.get("match") or {}
        if not match_key(sub.match, scope):
            continue
        state = state or {}
        budget_rows.append({"budget_id": stored.get("id"), "name": stored.get("name"),
                            "amount_usd": stored.get("amount_usd"), "spent_usd": state.get("spent_usd"),
                            "pct": state.get("pct"), "projected_period_spend_usd": state.get("projected_period_spend_usd"),
                            "projected_exhaustion": state.get("projected_exhaustion")})
    budget_rows.sort(key=lambda b: str(b["name"]))
    return {
        "subscription_id": sub.id, "name": sub.name, "digest": sub.digest or period.kind, "timezone": sub.timezone,
        "match": dict(sub.match),
        "period": {"label": period.label, "start": rfc3339(period.start), "end": rfc3339(period.end)},
        "previous_period": {"label": previous.label, "start": rfc3339(previous.start), "end": rfc3339(previous.end)},
        "spend_usd": round(total, 2), "previous_spend_usd": round(before, 2),
        "change_pct": _change_pct(total, before),
        "top_movers": [m for m in movers if m["change_usd"]][:TOP_MOVERS],
        "budgets": budget_rows,
        "gpu_idle_waste_usd": round(sum(idle), 2) if idle else None,
        "alerts": {"count": len(in_period),
                   "items": [{"alert_id": a.alert_id, "type": a.type, "severity": a.severity, "status": a.status,
                              "summary": a.summary, "triggered_at": rfc3339(a.triggered_at)}
                             for a in in_period[:MAX_ALERTS]]},
        "dashboard_url": dashboard_link(base_url, sub.match),
    }


# -- rendering ---------------------------------------------------------------------------------

def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _key_text(key: Mapping[str, str]) -> str:
    return ", ".join(f"{k}={v}" for k, v in key.items() if v) or "untagged"


def _signed_usd(amount: float) -> str:
    return f"+{usd(amount)}" if amount > 0 else usd(amount)


def fallback_text(digest: Mapping[str, Any]) -> str:
    """The notification text beside the blocks."""
    change = digest["change_pct"]
    change_text = "" if change is None else f" ({change:+.1f}% vs previous)"
    return _cut(escape(f"{digest['digest'].capitalize()} spend digest {digest['period']['label']} — "
                       f"{digest['name']}: {usd(digest['spend_usd'])}{change_text}"), SECTION_TEXT_MAX)


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _cut(f"*{escape(label)}*\n{escape(value)}", 2000)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SECTION_TEXT_MAX)}}


def digest_blocks(digest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Block Kit: header -> figures -> top movers -> budgets -> alerts -> context -> dashboard button."""
    change = digest["change_pct"]
    fields = [
        _field("Spend", usd(digest["spend_usd"])),
        _field("Previous period", f"{usd(digest['previous_spend_usd'])} ({digest['previous_period']['label']})"),
        _field("Change", "n/a" if change is None else f"{change:+.1f}%"),
        _field("Alerts", str(digest["alerts"]["count"])),
    ]
    if digest["gpu_idle_waste_usd"] is not None:
        fields.append(_field("GPU idle waste", usd(digest["gpu_idle_waste_usd"])))
    header = f"{digest['digest'].capitalize()} spend digest {digest['period']['label']} — {digest['name']}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(header, HEADER_MAX), "emoji": True}},
        {"type": "section", "fields": fields[:FIELDS_MAX]},
    ]
    if digest["top_movers"]:
        lines = [f"• {escape(_key_text(m['key']))}: {usd(m['spend_usd'])} ({_signed_usd(m['change_usd'])})"
                 for m in digest["top_movers"]]
        blocks.append(_section("*Top movers*\n" + "\n".join(lines)))
    if digest["budgets"]:
        lines = []
        for b in digest["budgets"]:
            spent = "n/a" if b["spent_usd"] is None else usd(b["spent_usd"])
            pct = "" if b["pct"] is None else f" ({b['pct']:.0f}%)"
            end = "" if b["projected_period_spend_usd"] is None else \
                f", projected {usd(b['projected_period_spend_usd'])}"
            lines.append(f"• {escape(str(b['name']))}: {spent} of {usd(float(b['amount_usd'] or 0))}{pct}{escape(end)}")
        blocks.append(_section("*Budgets*\n" + "\n".join(lines)))
    if digest["alerts"]["items"]:
        lines = [f"• [{escape(a['severity'])}] {escape(a['summary'] or a['type'])}" for a in digest["alerts"]["items"]]
        more = digest["alerts"]["count"] - len(lines)
        blocks.append(_section("*Alerts*\n" + "\n".join(lines) + (f"\n…and {more} more" if more > 0 else "")))
    context = [f"{escape(digest['timezone'])}: {digest['period']['start']} – {digest['period']['end']}",
               f"subscription `{escape(digest['subscription_id'])}`"]
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(t, SECTION_TEXT_MAX)}
                                                   for t in context[:CONTEXT_ELEMENTS_MAX]]})
    url = digest["dashboard_url"]
    if url.startswith(("http://", "https://")) and len(url) <= 3000:
        blocks.append({"type": "actions", "block_id": f"spendsentry_digest_{digest['period']['label']}"[:255],
                       "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"},
                                     "action_id": "open_dashboard", "url": url}]})
    return blocks


def digest_webhook_id(subscription_id: str, label: str) -> str:
    """The idempotency key of one subscription's digest of one period (same on every retry and resend)."""
    return "msg_" + hashlib.sha256(f"digest:{subscription_id}:{label}".encode()).hexdigest()[:24]


def digest_body(digest: Mapping[str, Any], timestamp: float) -> bytes:
    """The exact bytes signed and sent: ``{"type": "spendsentry.digest", "timestamp", "data"}``."""
    return orjson.dumps({"type": EVENT_TYPE, "timestamp": rfc3339(timestamp), "data": dict(digest)})
