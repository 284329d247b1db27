"""Slack interactivity (button clicks on alert messages): verify, parse, render the update.

Slack POSTs ``application/x-www-form-urlencoded`` with one field ``payload`` (JSON) to the app's
Request URL, signed: ``X-Slack-Signature: v0=hex(HMAC-SHA256(signing_secret,
"v0:{X-Slack-Request-Timestamp}:{raw body}"))``. The timestamp must be within 5 minutes
(replay protection); the comparison is constant-time. The HTTP endpoint itself lives in the
worker's web app; this module is pure (plus :func:`sign_request` for tests and stand-ins).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import orjson

from alerts.slack_blocks import ACTION_STATES, fallback_text, message_blocks, state_reply_text
from schemas.alert import Alert
from schemas.errors import SpendSentryError

HEADER_SIGNATURE = "X-Slack-Signature"
HEADER_TIMESTAMP = "X-Slack-Request-Timestamp"
TOLERANCE_S = 300
SNOOZE_S = 3600


class SlackSignatureError(SpendSentryError):
    """Verification failed. ``reason``: missing_header, bad_timestamp, stale_timestamp, bad_signature."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(f"{reason}: {detail}")


class ReplayCache:
    """Signatures seen within the tolerance window: a verified request presented again inside the
    5 minutes is refused (``replayed``). Bounded: at most ``max_entries`` are held; the oldest go first."""

    def __init__(self, tolerance_s: float = TOLERANCE_S, max_entries: int = 100_000) -> None:
        self.tolerance_s = tolerance_s
        self.max_entries = max_entries
        self._seen: dict[str, float] = {}  # signature -> its request timestamp, in arrival order

    def __len__(self) -> int:
        return len(self._seen)

    def check(self, headers: Mapping[str, str], *, now: float | None = None) -> None:
        """Call after :func:`verify_request`; raises :class:`SlackSignatureError` on a replay."""
        current = time.time() if now is None else now
        for seen, at in list(self._seen.items()):
            if current - at <= self.tolerance_s and len(self._seen) < self.max_entries:
                break
            del self._seen[seen]
        key = f"{_header(headers, HEADER_TIMESTAMP)}:{_header(headers, HEADER_SIGNATURE)}"
        if key in self._seen:
            raise SlackSignatureError("replayed", "this signed request was already received")
        self._seen[key] = float(int(_header(headers, HEADER_TIMESTAMP)))


class InteractionError(SpendSentryError):
    """A verified request whose payload is not a button click we know (answer 400)."""


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    if not value:
        raise SlackSignatureError("missing_header", f"{name} header is missing")
    return value


def signature(signing_secret: str, timestamp: int | str, body: bytes) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


def sign_request(signing_secret: str, body: bytes, timestamp: int) -> dict[str, str]:
    """Headers Slack would send with ``body`` (for tests and local stand-ins)."""
    return {HEADER_TIMESTAMP: str(timestamp), HEADER_SIGNATURE: signature(signing_secret, timestamp, body),
            "Content-Type": "application/x-www-form-urlencoded"}


def verify_request(signing_secret: str, headers: Mapping[str, str], body: bytes, *,
                   now: float | None = None, tolerance_s: float = TOLERANCE_S) -> None:
    """Raise :class:`SlackSignatureError` unless ``body`` is signed by Slack within ``tolerance_s``."""
    raw_ts = _header(headers, HEADER_TIMESTAMP)
    given = _header(headers, HEADER_SIGNATURE)
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise SlackSignatureError("bad_timestamp", f"not an integer: {raw_ts[:40]!r}") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise SlackSignatureError("stale_timestamp", f"timestamp {timestamp} is more than {tolerance_s:g}s away")
    if not hmac.compare_digest(given.encode(), signature(signing_secret, timestamp, body).encode()):
        raise SlackSignatureError("bad_signature", "X-Slack-Signature does not match")


@dataclass(frozen=True, slots=True)
class Action:
    """One button click: which alert, which button (``ack``/``snooze_1h``/``expected``), by whom, where."""

    alert_id: str
    action: str
    user: str | None
    channel: str | None
    ts: str | None
    response_url: str | None = None

    @property
    def state(self) -> str:
        return ACTION_STATES[self.action]

    def snoozed_until(self, now: float) -> float | None:
        return now + SNOOZE_S if self.action == "snooze_1h" else None


def parse_action(body: bytes) -> Action:
    """The first of our buttons in a ``block_actions`` payload; :class:`InteractionError` otherwise."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=False)
        payload: Any = orjson.loads(form["payload"][0])
    except (KeyError, IndexError, UnicodeDecodeError, orjson.JSONDecodeError):
        raise InteractionError("body has no JSON payload field") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise InteractionError(f"unsupported interaction type {payload.get('type') if isinstance(payload, dict) else None!r}")
    for item in payload.get("actions") or []:
        if isinstance(item, dict) and item.get("action_id") in ACTION_STATES and isinstance(item.get("value"), str):
            user = payload.get("user") or {}
            channel = payload.get("channel") or {}
            container = payload.get("container") or {}
            message = payload.get("message") or {}
            return Action(alert_id=item["value"], action=item["action_id"],
                          user=user.get("id") if isinstance(user, dict) else None,
                          channel=(channel.get("id") if isinstance(channel, dict) else None)
                          or container.get("channel_id"),
                          ts=container.get("message_ts") or message.get("ts"),
                          response_url=payload.get("response_url"))
    raise InteractionError("no spendsentry button in actions")


def update_for_action(alert: Alert, action: Action, *, channel: str | None = None,
                      ts: str | None = None) -> dict[str, Any]:
    """``chat.update`` arguments that show the new state on the alert's message (buttons kept)."""
    note = state_reply_text(action.state, action.user)
    return {"channel": channel or action.channel, "ts": ts or action.ts, "text": fallback_text(alert),
            "blocks": message_blocks(alert, action.state, note=note)}
