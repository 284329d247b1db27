"""Alert subscriptions: who gets which alerts, where. Pure records and validation, no I/O.

Request contract (``POST /v1/subscriptions``)::

    {"name": "llm-platform on-call",
     "match": {"team": "llm-platform", "model": "claude-*"},
     "alert_types": ["cost_spike", "budget_burn"], "min_severity": "warning", "min_impact_usd": 5,
     "destination": {"type": "webhook", "url": "https://...", "secret": "whsec_...", "cloudevents": false},
     "enabled": true, "cooldown_s": 0, "digest": "daily", "timezone": "Europe/Paris"}

``match`` values are exact strings or :mod:`fnmatch` globs (``*``, ``?``, ``[...]``), matched
case-sensitively; a subscription that names a dimension the alert key lacks does not match.
Destinations: ``webhook`` (url + ``whsec_`` secret), ``slack`` (``#channel`` or a channel id),
``pagerduty`` (32-character Events v2 routing key). ``digest`` (``daily`` or ``weekly``, in
``timezone``, an IANA name, default UTC) turns the subscription into a digest: one summary per
closed period to a webhook or Slack destination instead of one message per alert
(:mod:`alerts.digest`). Every bad input raises
:class:`~schemas.errors.ValidationError` naming the field, the value and the rule.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.alert import SEVERITIES
from schemas.errors import ConfigError, ValidationError
from schemas.usage import DIMENSIONS

#: alert types a subscription may name (extend when a detector adds one)
ALERT_TYPES: tuple[str, ...] = ("cost_spike", "budget_burn", "budget_threshold", "gpu_idle", "untagged_spend",
                                "billing_spike", "billing_drift")
DESTINATION_TYPES: tuple[str, ...] = ("webhook", "slack", "pagerduty")
DIGESTS: tuple[str, ...] = ("daily", "weekly")
#: destinations a digest can go to (PagerDuty takes incidents, not summaries)
DIGEST_DESTINATIONS: tuple[str, ...] = ("webhook", "slack")
MAX_TIMEZONE = 64
MAX_NAME = 200
MAX_MATCH = 16
MAX_PATTERN = 256
MAX_URL = 2048
MAX_COOLDOWN_S = 7 * 86400
_TAG_RE = re.compile(r"^tags\.[A-Za-z0-9_.:/-]{1,64}$")
_ID_RE = re.compile(r"^[a-z]+_[A-Za-z0-9]{8,64}$")
_CHANNEL_RE = re.compile(r"^(#[a-z0-9][a-z0-9._-]{0,79}|[CGD][A-Z0-9]{6,20})$")
_ROUTING_KEY_RE = re.compile(r"^[A-Za-z0-9]{32}$")
_SUB_KEYS = {"name", "match", "alert_types", "min_severity", "min_impact_usd", "destination", "enabled", "cooldown_s",
             "digest", "timezone"}


def new_id(prefix: str) -> str:
    """``<prefix>_`` + 20 random base62-ish characters (url-safe, no padding)."""
    return f"{prefix}_" + secrets.token_hex(10)


def mask(secret: str | None, prefix: str = "") -> str | None:
    """Show only the last 4 characters: ``whsec_****abcd``, ``****wxyz``."""
    if secret is None:
        return None
    body = secret[len(prefix):] if prefix and secret.startswith(prefix) else secret
    return f"{prefix if secret.startswith(prefix) else ''}****{body[-4:] if len(body) > 8 else ''}"


def mask_url(url: str) -> str:
    """A destination URL as it may be shown: scheme, host (and port), the last 4 characters and a
    stable id (``https://hooks.slack.com/…x9Qz#3f2a9c1b0d4e``). The path and query (for Slack,
    Teams, Discord and many incident tools *the* secret) never leave; the id tells two URLs apart."""
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"?…#{digest}"
    if ":" in host:
        host = f"[{host}]"
    rest = url[len(f"{parts.scheme}://{parts.netloc}"):]
    tail = f"…{rest[-4:]}" if len(rest) > 8 else ""
    return f"{parts.scheme}://{host}{port}/{tail}#{digest}"


def is_dimension(name: str) -> bool:
    return name in DIMENSIONS or bool(_TAG_RE.match(name))


def match_key(match: Mapping[str, str], key: Mapping[str, str]) -> bool:
    """Every ``match`` dimension is in ``key`` and its value matches (exact or glob). ``{}`` matches all."""
    for dim, pattern in match.items():
        value = key.get(dim)
        if value is None or not fnmatchcase(value, pattern):
            return False
    return True


def validate_match(raw: Any, field_name: str = "match") -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationError(field_name, raw, "must be an object of dimension -> value or glob")
    if len(raw) > MAX_MATCH:
        raise ValidationError(field_name, len(raw), f"at most {MAX_MATCH} dimensions")
    out: dict[str, str] = {}
    for dim, pattern in raw.items():
        where = f"{field_name}.{dim}"
        if not isinstance(dim, str) or not is_dimension(dim):
            raise ValidationError(where, dim, f"unknown dimension; use one of {', '.join(DIMENSIONS)} or tags.<name>")
        if not isinstance(pattern, str) or not pattern.strip():
            raise ValidationError(where, pattern, "must be a non-empty string (exact value or glob)")
        if len(pattern) > MAX_PATTERN:
            raise ValidationError(where, pattern, f"at most {MAX_PATTERN} characters")
        if pattern.count("[") != pattern.count("]"):
            raise ValidationError(where, pattern, "unbalanced [ ] in glob pattern")
        out[dim] = pattern
    return out


def _bool(body: Mapping[str, Any], name: str, default: bool, where: str) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ValidationError(where, value, "must be true or false")
    return value


@dataclass(slots=True)
class Destination:
    """Where a subscription's alerts go. Only the fields of its ``type`` are set."""

    type: str
    url: str | None = None
    secret: str | None = None
    cloudevents: bool = False
    channel: str | None = None
    routing_key: str | None = None

    @property
    def key(self) -> str:
        """Stable identity for per-destination state (cooldowns, grouping, routes) and the sink name in
        the delivery log, pending retries and the undeliverable topic: holds no secret (a webhook
        URL is masked, with a hash of the whole URL to tell two apart)."""
        if self.type == "webhook":
            return f"webhook:{mask_url(self.url or '')}"
        if self.type == "slack":
            return f"slack:{self.channel}"
        digest = hashlib.sha256((self.routing_key or "").encode()).hexdigest()[:16]
        return f"pagerduty:{digest}"

    def to_dict(self, *, masked: bool = True) -> dict[str, Any]:
        if self.type == "webhook":
            secret = mask(self.secret, "whsec_") if masked else self.secret
            url = mask_url(self.url or "") if masked else self.url
            return {"type": "webhook", "url": url, "secret": secret, "cloudevents": self.cloudevents}
        if self.type == "slack":
            return {"type": "slack", "channel": self.channel}
        return {"type": "pagerduty", "routing_key": mask(self.routing_key) if masked else self.routing_key}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Destination:
        return validate_destination(dict(data))


def validate_destination(raw: Any, where: str = "destination") -> Destination:
    if not isinstance(raw, dict):
        raise ValidationError(where, raw, "must be an object with a type")
    kind = raw.get("type")
    if kind not in DESTINATION_TYPES:
        raise ValidationError(f"{where}.type", kind, f"must be one of {', '.join(DESTINATION_TYPES)}")
    allowed = {"webhook": {"type", "url", "secret", "cloudevents"}, "slack": {"type", "channel"},
               "pagerduty": {"type", "routing_key"}}[kind]
    for extra in raw:
        if extra not in allowed:
            raise ValidationError(f"{where}.{extra}", raw[extra], f"not a field of a {kind} destination")
    if kind == "webhook":
        url = raw.get("url")
        if not isinstance(url, str) or len(url) > MAX_URL or not re.match(r"^https?://[^/\s?#]+([/?#]\S*)?$", url):
            raise ValidationError(f"{where}.url", url, "must be an http(s) URL with a host")
        secret = raw.get("secret")
        if not isinstance(secret, str) or not secret.startswith("whsec_"):
            raise ValidationError(f"{where}.secret", mask(secret) if isinstance(secret, str) else secret,
                                  "must be a whsec_<base64> secret (24-64 random bytes)")
        from alerts.signing import decode_secret  # local import: schemas stay importable without alerts
        try:
            key = decode_secret(secret)
        except ConfigError:
            raise ValidationError(f"{where}.secret", mask(secret, "whsec_"), "must be whsec_ + valid base64") from None
        if not 24 <= len(key) <= 64:
            raise ValidationError(f"{where}.secret", mask(secret, "whsec_"), "must decode to 24-64 bytes")
        return Destination("webhook", url=url, secret=secret,
                           cloudevents=_bool(raw, "cloudevents", False, f"{where}.cloudevents"))
    if kind == "slack":
        channel = raw.get("channel")
        if not isinstance(channel, str) or not _CHANNEL_RE.match(channel):
            raise ValidationError(f"{where}.channel", channel,
                                  "must be #channel-name (lowercase, <= 80 chars) or a channel id like C0123ABCD")
        return Destination("slack", channel=channel)
    key = raw.get("routing_key")
    if not isinstance(key, str) or not _ROUTING_KEY_RE.match(key):
        raise ValidationError(f"{where}.routing_key", mask(key) if isinstance(key, str) else key,
                              "must be a 32-character PagerDuty Events v2 integration key")
    return Destination("pagerduty", routing_key=key)


@dataclass(slots=True)
class Subscription:
    """A validated subscription. ``alert_types`` empty means every type."""

    id: str
    name: str
    destination: Destination
    match: dict[str, str] = field(default_factory=dict)
    alert_types: tuple[str, ...] = ()
    min_severity: str = "info"
    min_impact_usd: float = 0.0
    enabled: bool = True
    cooldown_s: float = 0.0
    #: ``daily``/``weekly``: a digest subscription (summaries, no per-alert messages); None: alerts
    digest: str | None = None
    timezone: str = "UTC"

    def to_dict(self, *, masked: bool = True) -> dict[str, Any]:
        out = {"id": self.id, "name": self.name, "match": dict(self.match), "alert_types": list(self.alert_types),
               "min_severity": self.min_severity, "min_impact_usd": self.min_impact_usd,
               "destination": self.destination.to_dict(masked=masked), "enabled": self.enabled,
               "cooldown_s": self.cooldown_s}
        if self.digest is not None:
            out |= {"digest": self.digest, "timezone": self.timezone}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Subscription:
        """From ``to_dict(masked=False)`` (storage); validated again."""
        body = {k: v for k, v in data.items() if k != "id"}
        return validate_subscription(body, existing_id=data.get("id"))


def _number(body: Mapping[str, Any], name: str, default: float, *, low: float, high: float) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValidationError(name, value, "must be a finite number")
    if not low <= value <= high:
        raise ValidationError(name, value, f"must be within {low:g}..{high:g}")
    return float(value)


def validate_timezone(raw: Any, where: str = "timezone") -> str:
    """An IANA time zone name :mod:`zoneinfo` knows (``UTC``, ``Europe/Paris``)."""
    try:
        if not isinstance(raw, str) or not raw or len(raw) > MAX_TIMEZONE:
            raise ValueError
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise ValidationError(where, raw, "must be an IANA time zone name, e.g. UTC or Europe/Paris") from None
    return raw


def validate_subscription(body: Any, *, existing_id: str | None = None) -> Subscription:
    """Validate a request body into a :class:`Subscription` (a new ``sub_`` id unless ``existing_id``)."""
    if not isinstance(body, dict):
        raise ValidationError("body", body, "must be a JSON object")
    for name in body:
        if name not in _SUB_KEYS:
            raise ValidationError(name, body[name], f"unknown field; allowed: {', '.join(sorted(_SUB_KEYS))}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValidationError("name", name, f"must be a non-empty string of at most {MAX_NAME} characters")
    match = validate_match(body.get("match"))
    types = body.get("alert_types", [])
    if not isinstance(types, list):
        raise ValidationError("alert_types", types, "must be a list of alert types")
    for index, kind in enumerate(types):
        if kind not in ALERT_TYPES:
            raise ValidationError(f"alert_types[{index}]", kind, f"must be one of {', '.join(ALERT_TYPES)}")
    severity = body.get("min_severity", "info")
    if severity not in SEVERITIES:
        raise ValidationError("min_severity", severity, f"must be one of {', '.join(SEVERITIES)}")
    impact = _number(body, "min_impact_usd", 0.0, low=0.0, high=1e9)
    cooldown = _number(body, "cooldown_s", 0.0, low=0.0, high=MAX_COOLDOWN_S)
    if "destination" not in body:
        raise ValidationError("destination", None, "is required")
    destination = validate_destination(body["destination"])
    enabled = _bool(body, "enabled", True, "enabled")
    digest = body.get("digest")
    if digest is not None and digest not in DIGESTS:
        raise ValidationError("digest", digest, f"must be one of {', '.join(DIGESTS)} (or absent for alerts)")
    if digest is None and "timezone" in body:
        raise ValidationError("timezone", body["timezone"], "only applies with a digest")
    timezone = validate_timezone(body.get("timezone", "UTC"))
    if digest is not None and destination.type not in DIGEST_DESTINATIONS:
        raise ValidationError("destination.type", destination.type,
                              f"a digest goes to one of {', '.join(DIGEST_DESTINATIONS)}")
    if existing_id is not None and (not isinstance(existing_id, str) or not existing_id.startswith("sub_")
                                    or not _ID_RE.match(existing_id)):
        raise ValidationError("id", existing_id, "must be sub_ followed by 8-64 letters or digits")
    return Subscription(id=existing_id or new_id("sub"), name=name.strip(), destination=destination, match=match,
                        alert_types=tuple(dict.fromkeys(types)), min_severity=severity, min_impact_usd=impact,
                        enabled=enabled, cooldown_s=cooldown, digest=digest, timezone=timezone)
