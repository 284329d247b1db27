"""Spend budgets: a planned amount per calendar period for a scope of spend. Records + validation.

Request contract (``POST /v1/budgets``)::

    {"name": "gpt-4o monthly", "match": {"model": "gpt-4o"}, "period": "month", "timezone": "UTC",
     "amount_usd": 5000, "thresholds_pct": [50, 80, 100],
     "burn_rules": [{"long": "1h", "short": "5m", "burn": 14.4, "severity": "critical"}, ...]}

``burn_rules`` defaults to :func:`default_burn_rules` for the period (SRE multiwindow,
multi-burn-rate; see ``detectors/burn_rate.py``). Windows are ``<n>m``, ``<n>h``, ``<n>d`` or
seconds, whole minutes, short < long <= 3 days.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.alert import SEVERITIES
from schemas.errors import ValidationError
from schemas.subscription import MAX_NAME, match_key, new_id, validate_match

PERIODS: tuple[str, ...] = ("month", "day")
MAX_WINDOW_S = 3 * 86400
MAX_RULES = 8
MAX_THRESHOLDS = 10
_DURATION_RE = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_KEYS = {"name", "match", "period", "timezone", "amount_usd", "thresholds_pct", "burn_rules", "enabled"}


@dataclass(frozen=True, slots=True)
class BurnRule:
    """Alert when the burn rate over ``long_s`` AND over ``short_s`` both reach ``burn``."""

    long_s: int
    short_s: int
    burn: float
    severity: str

    @property
    def name(self) -> str:
        return f"{fmt_duration(self.long_s)}/{fmt_duration(self.short_s)}@{self.burn:g}x"

    def to_dict(self) -> dict[str, Any]:
        return {"long": fmt_duration(self.long_s), "short": fmt_duration(self.short_s), "burn": self.burn,
                "severity": self.severity}


def parse_duration(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(where, value, "must be a duration like 5m, 1h, 3d or seconds")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION_RE.match(value.strip())):
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValidationError(where, value, "must be a duration like 5m, 1h, 3d or seconds")
    if seconds <= 0 or seconds % 60:
        raise ValidationError(where, value, "must be a positive whole number of minutes")
    if seconds > MAX_WINDOW_S:
        raise ValidationError(where, value, "must be at most 3d")
    return seconds


def fmt_duration(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def default_burn_rules(period: str) -> tuple[BurnRule, ...]:
    """The SRE workbook's three rules for a 30-day period, and a day-sized equivalent.

    month: 14.4x over 1h + 5m (2% of the budget in an hour, critical), 6x over 6h + 30m (5% in
    6 h, critical), 1x over 3d + 6h (10% in 3 days, warning).
    day: the month windows divided by 30 fall below our one-minute resolution, so a day uses
    1h + 5m at 4.8x (20% of the day's budget in an hour, critical), 3h + 15m at 2.4x (30% in
    3 h, critical) and 6h + 30m at 1.2x (30% in 6 h, warning); short = long / 12 as in SRE practice.
    """
    if period == "day":
        return (BurnRule(3600, 300, 4.8, "critical"), BurnRule(10800, 900, 2.4, "critical"),
                BurnRule(21600, 1800, 1.2, "warning"))
    return (BurnRule(3600, 300, 14.4, "critical"), BurnRule(21600, 1800, 6.0, "critical"),
            BurnRule(259200, 21600, 1.0, "warning"))


@dataclass(slots=True)
class Budget:
    id: str
    name: str
    match: dict[str, str]
    period: str
    timezone: str
    amount_usd: float
    thresholds_pct: tuple[float, ...] = (50.0, 80.0, 100.0)
    burn_rules: tuple[BurnRule, ...] = field(default_factory=tuple)
    enabled: bool = True

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def matches(self, dims: Mapping[str, str]) -> bool:
        """Whether spend with these dimensions (``tags.<name>`` flattened) counts against this budget."""
        return match_key(self.match, dims)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "match": dict(self.match), "period": self.period,
                "timezone": self.timezone, "amount_usd": self.amount_usd, "thresholds_pct": list(self.thresholds_pct),
                "burn_rules": [r.to_dict() for r in self.burn_rules], "enabled": self.enabled}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Budget:
        return validate_budget({k: v for k, v in data.items() if k != "id"}, existing_id=data.get("id"))


def _validate_rules(raw: Any) -> tuple[BurnRule, ...]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_RULES:
        raise ValidationError("burn_rules", raw, f"must be a list of 1-{MAX_RULES} rules")
    rules = []
    for i, item in enumerate(raw):
        where = f"burn_rules[{i}]"
        if not isinstance(item, dict):
            raise ValidationError(where, item, "must be an object {long, short, burn, severity}")
        for extra in item:
            if extra not in ("long", "short", "burn", "severity"):
                raise ValidationError(f"{where}.{extra}", item[extra], "unknown field")
        long_s = parse_duration(item.get("long"), f"{where}.long")
        short_s = parse_duration(item.get("short"), f"{where}.short")
        if short_s >= long_s:
            raise ValidationError(f"{where}.short", item.get("short"), "must be shorter than long")
        burn = item.get("burn")
        if isinstance(burn, bool) or not isinstance(burn, (int, float)) or not math.isfinite(burn) or burn <= 0:
            raise ValidationError(f"{where}.burn", burn, "must be a number > 0")
        severity = item.get("severity", "critical")
        if severity not in SEVERITIES:
            raise ValidationError(f"{where}.severity", severity, f"must be one of {', '.join(SEVERITIES)}")
        rules.append(BurnRule(long_s, short_s, float(burn), severity))
    return tuple(rules)


def validate_budget(body: Any, *, existing_id: str | None = None) -> Budget:
    """Validate a request body into a :class:`Budget` (a new ``bud_`` id unless ``existing_id``)."""
    if not isinstance(body, dict):
        raise ValidationError("body", body, "must be a JSON object")
    for key in body:
        if key not in _KEYS:
            raise ValidationError(key, body[key], f"unknown field; allowed: {', '.join(sorted(_KEYS))}")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ValidationError("name", name, f"must be a non-empty string of at most {MAX_NAME} characters")
    match = validate_match(body.get("match"))
    period = body.get("period", "month")
    if period not in PERIODS:
        raise ValidationError("period", period, "must be month or day")
    tz = body.get("timezone", "UTC")
    try:
        if not isinstance(tz, str) or not tz:
            raise ValueError
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValidationError("timezone", tz, "must be an IANA time zone name, e.g. UTC or Europe/Paris") from None
    amount = body.get("amount_usd")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) \
            or not 0 < amount <= 1e12:
        raise ValidationError("amount_usd", amount, "must be a number > 0")
    thresholds = body.get("thresholds_pct", [50, 80, 100])
    if not isinstance(thresholds, list) or len(thresholds) > MAX_THRESHOLDS:
        raise ValidationError("thresholds_pct", thresholds, f"must be a list of at most {MAX_THRESHOLDS} percentages")
    for i, pct in enumerate(thresholds):
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 < pct <= 1000:
            raise ValidationError(f"thresholds_pct[{i}]", pct, "must be a number in (0, 1000]")
    rules = default_burn_rules(period) if body.get("burn_rules") is None else _validate_rules(body["burn_rules"])
    enabled = body.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ValidationError("enabled", enabled, "must be true or false")
    if existing_id is not None and (not isinstance(existing_id, str) or not re.match(r"^bud_[A-Za-z0-9]{8,64}$",
                                                                                     existing_id)):
        raise ValidationError("id", existing_id, "must be bud_ followed by 8-64 letters or digits")
    return Budget(id=existing_id or new_id("bud"), name=name.strip(), match=match, period=period, timezone=tz,
                  amount_usd=float(amount), thresholds_pct=tuple(sorted({float(p) for p in thresholds})),
                  burn_rules=rules, enabled=enabled)
