"""FinOps FOCUS (1.0 - 1.3) cost rows -> canonical cost events.

A row becomes a canonical usage event (:mod:`schemas.usage`) carrying ``cost_usd`` =
``EffectiveCost`` (amortised, after commitment discounts: the FOCUS column meant for baselines),
``timestamp`` = ``ChargePeriodStart``, ``provider`` = ``ServiceProviderName`` (1.3) or
``ProviderName`` (1.0-1.2), ``model`` = the AI model (``SkuMeter``, else ``ResourceName``) when
``ServiceCategory`` is ``AI and Machine Learning``, else ``ServiceName``; ``service`` =
``ServiceName``; ``operation`` = ``ChargeCategory``; ``team`` = the ``team`` tag when present;
``tags``: ``account`` (BillingAccountId), ``sub_account`` (SubAccountId), ``resource_id``,
``service_category``, ``region``, ``charge_period_end``, ``currency``, plus the row's ``Tags``
JSON object (values stringified). ``event_id`` is a hash of the whole row: re-importing the same
export yields the same ids, so the engine's dedup drops them.

Rows with a negative ``EffectiveCost`` (credits, refunds, corrections) are not usage: they raise
:class:`NegativeCostRow` so importers can count them apart. A zero-cost row is kept.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any, Mapping

from schemas.errors import ValidationError
from schemas.usage import MAX_STRING, MAX_TAGS, validate_usage

__all__ = ["AI_CATEGORY", "NegativeCostRow", "focus_row_to_event", "parse_focus_time"]

AI_CATEGORY = "AI and Machine Learning"


class NegativeCostRow(ValidationError):
    """A credit / refund row (``EffectiveCost`` < 0): not a usage event."""


def parse_focus_time(value: Any, column: str) -> float:
    """A FOCUS datetime (UTC; ``2025-01-01T00:00:00Z``, ``2025-01-01 00:00:00``, 7-digit fractions) to epoch s."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(column, value, "is required (a UTC datetime)")
    text = value.strip().replace(" ", "T", 1)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if "." in text:  # Azure writes 7 fractional digits; keep 6
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        text = f"{head}.{digits[:6].ljust(6, '0')}{tail[len(digits):]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(column, value, "must be an ISO 8601 datetime (UTC)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)  # FOCUS datetimes are UTC
    return parsed.timestamp()


def _cell(row: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = row.get(name)
        if value is not None and str(value).strip() not in ("", "null", "NULL", "None"):
            return str(value).strip()
    return None


def _short(value: str) -> str:
    return value if len(value) <= MAX_STRING else value[:MAX_STRING]


def focus_row_to_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical cost event of one FOCUS row (validated); see the module docstring."""
    if None in row:  # csv.DictReader puts the cells beyond the header under the key None
        raise ValidationError("row", row[None], "has more cells than the header")
    raw_cost = _cell(row, "EffectiveCost")
    if raw_cost is None:
        raise ValidationError("EffectiveCost", None, "is required")
    try:
        cost = float(raw_cost)
    except ValueError:
        raise ValidationError("EffectiveCost", raw_cost, "must be a number") from None
    if not math.isfinite(cost):
        raise ValidationError("EffectiveCost", raw_cost, "must be finite")
    if cost < 0:
        raise NegativeCostRow("EffectiveCost", cost, "is negative (a credit or refund), not usage")
    start = parse_focus_time(_cell(row, "ChargePeriodStart"), "ChargePeriodStart")
    end = _cell(row, "ChargePeriodEnd")
    provider = _cell(row, "ServiceProviderName", "ProviderName")
    if provider is None:
        raise ValidationError("ProviderName", None, "is required (ServiceProviderName in FOCUS 1.3)")
    service = _cell(row, "ServiceName")
    if service is None:
        raise ValidationError("ServiceName", None, "is required")
    category = _cell(row, "ServiceCategory")
    model = service
    if category == AI_CATEGORY:
        model = _cell(row, "SkuMeter", "ResourceName") or service
    tags: dict[str, str] = {}
    raw_tags = _cell(row, "Tags")
    if raw_tags is not None:
        try:
            parsed = json.loads(raw_tags)
        except (json.JSONDecodeError, RecursionError):
            raise ValidationError("Tags", raw_tags, "must be a JSON object") from None
        if not isinstance(parsed, dict):
            raise ValidationError("Tags", raw_tags, "must be a JSON object")
        for key, value in parsed.items():
            text = value if isinstance(value, str) else json.dumps(value)
            if key and text:
                tags[_short(str(key))] = _short(text)
    for tag, columns in (("account", ("BillingAccountId",)), ("sub_account", ("SubAccountId",)),
                         ("resource_id", ("ResourceId",)), ("service_category", ("ServiceCategory",)),
                         ("service_subcategory", ("ServiceSubcategory",)), ("region", ("RegionId",)),
                         ("currency", ("BillingCurrency",)), ("charge_period_end", ("ChargePeriodEnd",)),
                         ("sku", ("SkuId",)), ("pricing_category", ("PricingCategory",))):
        value = _cell(row, *columns)
        if value is not None:
            tags[tag] = _short(value)
    if len(tags) > MAX_TAGS:
        tags = dict(list(tags.items())[:MAX_TAGS])
    canonical = json.dumps({k: row[k] for k in sorted(row) if row[k] not in (None, "")}, default=str,
                           separators=(",", ":"))
    event: dict[str, Any] = {
        "event_id": "focus_" + hashlib.sha256(canonical.encode()).hexdigest()[:24],
        "timestamp": start,
        "provider": _short(provider),
        "model": _short(model),
        "cost_usd": cost,
        "service": _short(service),
        "tags": tags,
    }
    charge = _cell(row, "ChargeCategory")
    if charge:
        event["operation"] = _short(charge)
    team = tags.get("team")
    if team:
        event["team"] = team
    if end is not None:
        parse_focus_time(end, "ChargePeriodEnd")
    return validate_usage(event).to_dict()
