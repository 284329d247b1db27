"""Block Kit rendering of an alert: pure functions, no I/O, Slack's size limits enforced.

Layout: ``header`` -> ``section`` (summary + up to 10 fields) -> ``context`` (id, detector, time).
Limits (docs.slack.dev/reference/block-kit): header 150 chars, section text 3000, at most 10
fields of 2000 chars each, context at most 10 elements.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from schemas.alert import Alert, rfc3339

HEADER_MAX = 150
SECTION_TEXT_MAX = 3000
FIELDS_MAX = 10
FIELD_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10
#: fixed fields after the key dimensions: observed, expected (Δ%), window, severity, score
_FIXED_FIELDS = 5

_SEVERITY_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:"}


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn treats as control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def usd(amount: float) -> str:
    return f"-${-amount:,.2f}" if amount < 0 else f"${amount:,.2f}"


def delta_pct(observed: float, expected: float) -> str:
    """Change from expected as a signed percentage; ``n/a`` when nothing was expected."""
    if expected <= 0:
        return "n/a"
    return f"{(observed - expected) / expected * 100:+,.0f}%"


def title(alert: Alert) -> str:
    """``Cost spike — gpt-4o · support-bot``: the alert type in words and what it is about (the
    model, and the service when the alert is about one stream)."""
    kind = alert.type.replace("_", " ").strip().capitalize() or "Alert"
    model, service = alert.key.get("model"), alert.key.get("service")
    subject = (f"{model} · {service}" if model and service else model) or alert.key_text or "all spend"
    return f"{kind} — {subject}"


def window_text(start: float, end: float) -> str:
    """``2026-11-27 06:00–06:05 UTC``, with the end date repeated only when it differs."""
    a = datetime.fromtimestamp(start, tz=timezone.utc)
    b = datetime.fromtimestamp(end, tz=timezone.utc)
    tail = b.strftime("%H:%M") if a.date() == b.date() else b.strftime("%Y-%m-%d %H:%M")
    return f"{a:%Y-%m-%d %H:%M}–{tail} UTC"


def header_text(alert: Alert) -> str:
    if alert.status == "resolved":
        return _truncate(f":white_check_mark: RESOLVED: {title(alert)}", HEADER_MAX)
    return _truncate(f":rotating_light: {title(alert)}", HEADER_MAX)


def fallback_text(alert: Alert) -> str:
    """The notification text sent beside the blocks (what push notifications and screen readers show)."""
    state = "RESOLVED" if alert.status == "resolved" else alert.severity.upper()
    return _truncate(escape(f"[{state}] {title(alert)}: {alert.summary}"), SECTION_TEXT_MAX)


def _field(label: str, value: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _truncate(f"*{escape(label)}*\n{escape(value)}", FIELD_MAX)}


def _key_fields(key: dict[str, str]) -> list[dict[str, str]]:
    room = FIELDS_MAX - _FIXED_FIELDS
    items = list(key.items())
    if len(items) <= room:
        return [_field(k, v) for k, v in items]
    shown, rest = items[: room - 1], items[room - 1:]
    return [_field(k, v) for k, v in shown] + [_field("Other dimensions", ", ".join(f"{k}={v}" for k, v in rest))]


def render_blocks(alert: Alert) -> list[dict[str, Any]]:
    """The Block Kit message for one alert (firing or resolved)."""
    fields = _key_fields(alert.key) + [
        _field("Observed", usd(alert.observed)),
        _field("Expected", f"{usd(alert.expected)} (Δ {delta_pct(alert.observed, alert.expected)})"),
        _field("Window", window_text(alert.window_start, alert.window_end)),
        _field("Severity", alert.severity),
        _field("Score", f"{alert.score:.4g}"),
    ]
    emoji = _SEVERITY_EMOJI.get(alert.severity)
    if emoji:  # emoji codes are mrkdwn, so they go in after escaping
        fields[-2]["text"] = fields[-2]["text"].replace("\n", f"\n{emoji} ", 1)
    detector = str(alert.details.get("detector", "")) or None
    context = [
        f"id `{escape(alert.alert_id)}`",
        escape(f"detector {detector} / {alert.type}" if detector else f"type {alert.type}"),
        f"triggered {rfc3339(alert.triggered_at)}",
    ]
    if alert.status == "resolved" and "peak_observed" in alert.details:
        context.append(f"peak {usd(float(alert.details['peak_observed']))}")
    return [
        {"type": "header", "text": {"type": "plain_text", "text": header_text(alert), "emoji": True}},
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _truncate(escape(alert.summary) or " ", SECTION_TEXT_MAX)},
            "fields": fields[:FIELDS_MAX],
        },
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _truncate(t, SECTION_TEXT_MAX)}
                         for t in context[:CONTEXT_ELEMENTS_MAX]],
        },
    ]


def resolved_reply_text(alert: Alert) -> str:
    """The thread reply posted under the original firing message."""
    peak = alert.details.get("peak_observed")
    peak_text = f", peak {usd(float(peak))}" if isinstance(peak, (int, float)) else ""
    return _truncate(
        escape(f":white_check_mark: Resolved at {rfc3339(alert.triggered_at)}: {usd(alert.observed)} vs "
               f"{usd(alert.expected)} expected{peak_text}."),
        SECTION_TEXT_MAX,
    )


# -- message states and buttons ------------------------------------------------------------

#: what a Slack alert message can show; FIRING/RESOLVED come from the alert, the rest from buttons
STATES: tuple[str, ...] = ("FIRING", "ACKNOWLEDGED", "SNOOZED", "EXPECTED", "RESOLVED")
#: button action_id -> state it puts the message in
ACTION_STATES: dict[str, str] = {"ack": "ACKNOWLEDGED", "snooze_1h": "SNOOZED", "expected": "EXPECTED"}
_STATE_EMOJI = {"ACKNOWLEDGED": ":eyes:", "SNOOZED": ":zzz:", "EXPECTED": ":ok_hand:"}
BUTTON_TEXT_MAX = 75


def actions_block(alert_id: str) -> dict[str, Any]:
    """Acknowledge / Snooze 1h / Expected, each carrying the alert id as its value."""
    def button(text: str, action_id: str, style: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": text[:BUTTON_TEXT_MAX]},
                               "action_id": action_id, "value": alert_id[:2000]}
        if style:
            out["style"] = style
        return out

    return {"type": "actions", "block_id": f"spendsentry_actions_{alert_id}"[:255],
            "elements": [button("Acknowledge", "ack", "primary"), button("Snooze 1h", "snooze_1h"),
                         button("Expected", "expected")]}


def message_blocks(alert: Alert, state: str | None = None, *, note: str | None = None) -> list[dict[str, Any]]:
    """The full message: :func:`render_blocks` with the state in the header, an optional note
    (who acknowledged, when a snooze ends) and the buttons while the incident is open."""
    state = state or ("RESOLVED" if alert.status == "resolved" else "FIRING")
    blocks = render_blocks(alert)
    if state in _STATE_EMOJI and alert.status != "resolved":
        blocks[0]["text"]["text"] = _truncate(f"{_STATE_EMOJI[state]} {state}: {title(alert)}", HEADER_MAX)
    if note:
        blocks[2]["elements"] = (blocks[2]["elements"] + [{"type": "mrkdwn", "text": _truncate(note, 3000)}])[
            :CONTEXT_ELEMENTS_MAX]
    if alert.status == "firing" and state != "RESOLVED":
        blocks.append(actions_block(alert.alert_id))
    return blocks


def escalation_reply_text(alert: Alert, previous: str) -> str:
    return _truncate(escape(f"Escalated {previous} → {alert.severity}: {alert.summary}"), SECTION_TEXT_MAX)


def state_reply_text(state: str, user: str | None) -> str:
    who = f" by <@{user}>" if user else ""
    return {"ACKNOWLEDGED": f":eyes: Acknowledged{who}.", "SNOOZED": f":zzz: Snoozed for 1 hour{who}.",
            "EXPECTED": f":ok_hand: Marked as expected spend{who}."}.get(state, f"{state}{who}.")
