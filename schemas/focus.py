"""FinOps FOCUS (1.0 - 1.3) cost rows -> canonical cost events.

A row becomes a canonical usage event (:mod:`schemas.usage`) carrying ``cost_usd`` =
``EffectiveCost`` (amortised, after commitment discounts: the FOCUS column meant for baselines),
``timestamp`` = ``ChargePeriodStart``, ``provider`` = ``ServiceProviderName`` (1.3) or
``ProviderName`` (1.0-1.2), ``model`` = the AI model (``SkuMeter``, else ``ResourceName``) when
``ServiceCategory`` is ``AI and Machine Learning``, else ``ServiceName``; ``service`` =
``ServiceName``; ``operation`` = ``ChargeCategory``; ``team`` and ``environment`` from the row's
tags through a tag map (:data:`DEFAULT_TAG_MAP`: the plain key, AWS's ``user:`` cost-allocation
tags, GCP labels and Azure tags as the providers' FOCUS exports write them; configurable with
``SPENDSENTRY_FOCUS_TAG_MAP``); ``tags``: ``account`` (BillingAccountId), ``sub_account``
(SubAccountId), ``resource_id``, ``service_category``, ``region``, ``charge_period_end``,
``currency``, plus the row's ``Tags`` JSON object (values stringified).

An AI row's model is ``SkuMeter``, else ``ResourceName``, else the last path part of
``ResourceId`` (``.../foundation-model/anthropic.claude-...``), else ``unknown``: never the
service name. ``ChargePeriodEnd`` must not lie before ``ChargePeriodStart``.

Currency: ``cost_usd`` is in USD. A row whose ``BillingCurrency`` is another currency is converted
with a rate (USD per unit of that currency, ``--fx-rates FILE``) and keeps ``original_currency``
and ``original_cost`` in its tags; without a rate it is refused, never taken at face value. ``event_id`` is a hash of the whole row: re-importing the same
export yields the same ids, so the engine's dedup drops them.

Rows with a negative ``EffectiveCost`` (credits, refunds, corrections) are not usage: they raise
:class:`NegativeCostRow` so importers can count them apart. A zero-cost row is kept.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from schemas.errors import ValidationError
from schemas.usage import MAX_STRING, MAX_TAGS, validate_usage

__all__ = ["AI_CATEGORY", "DEFAULT_TAG_MAP", "NegativeCostRow", "focus_row_to_event", "parse_focus_time",
           "parse_tag_map"]

AI_CATEGORY = "AI and Machine Learning"
#: event field -> the tag keys that carry it, first match wins (AWS cost-allocation tags are
#: ``user:<key>``; GCP labels and Azure tags keep their own key, often capitalised on Azure)
DEFAULT_TAG_MAP: dict[str, tuple[str, ...]] = {
    "team": ("team", "user:team", "Team", "user:Team"),
    "environment": ("environment", "user:environment", "Environment", "env", "user:env"),
}
_TAG_MAP_FIELDS = ("team", "environment", "service", "pipeline_stage", "experiment")


def parse_tag_map(text: str, where: str = "SPENDSENTRY_FOCUS_TAG_MAP") -> dict[str, tuple[str, ...]]:
    """``team=user:team|cost-team,environment=env`` -> ``{"team": ("user:team", "cost-team"), ...}``;
    fields not named keep their :data:`DEFAULT_TAG_MAP` keys."""
    out = dict(DEFAULT_TAG_MAP)
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, keys = part.partition("=")
        name = name.strip()
        tags = tuple(k.strip() for k in keys.split("|") if k.strip())
        if not sep or name not in _TAG_MAP_FIELDS or not tags:
            raise ValidationError(where, part, f"use FIELD=TAG[|TAG...] with FIELD one of {', '.join(_TAG_MAP_FIELDS)}")
        out[name] = tags
    return out


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


def _model(row: Mapping[str, Any]) -> str:
    model = _cell(row, "SkuMeter", "ResourceName")
    if model is None:
        resource = _cell(row, "ResourceId")
        if resource is not None and "/" in resource:
            model = resource.rstrip("/").rsplit("/", 1)[-1] or None
    return model or "unknown"


def focus_row_to_event(row: Mapping[str, Any], *, fx_rates: Mapping[str, float] | None = None,
                       tag_map: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The canonical cost event of one FOCUS row (validated); see the module docstring.

    ``fx_rates``: USD per unit of each billing currency; ``tag_map``: event field -> tag keys
    (default :data:`DEFAULT_TAG_MAP`)."""
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
    currency = (_cell(row, "BillingCurrency") or "USD").upper()
    original = cost
    if currency != "USD":
        rate = (fx_rates or {}).get(currency)
        if rate is None:
            raise ValidationError("BillingCurrency", currency, "is not USD and no rate is given for it: pass "
                                  "--fx-rates FILE ({\"" + currency + "\": <USD per unit>})")
        cost = cost * rate
    if cost < 0:
        raise NegativeCostRow("EffectiveCost", cost, "is negative (a credit or refund), not usage")
    start = parse_focus_time(_cell(row, "ChargePeriodStart"), "ChargePeriodStart")
    end = _cell(row, "ChargePeriodEnd")
    if end is not None and parse_focus_time(end, "ChargePeriodEnd") < start:
        raise ValidationError("ChargePeriodEnd", end, f"must not lie before ChargePeriodStart "
                              f"({_cell(row, 'ChargePeriodStart')})")
    provider = _cell(row, "ServiceProviderName", "ProviderName")
    if provider is None:
        raise ValidationError("ProviderName", None, "is required (ServiceProviderName in FOCUS 1.3)")
    service = _cell(row, "ServiceName")
    if service is None:
        raise ValidationError("ServiceName", None, "is required")
    category = _cell(row, "ServiceCategory")
    model = _model(row) if category == AI_CATEGORY else service
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
    if currency != "USD":
        tags["original_currency"] = currency
        tags["original_cost"] = repr(original)
    mapped = {name: next((tags[k] for k in keys if tags.get(k)), None)
              for name, keys in (tag_map or DEFAULT_TAG_MAP).items()}
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
    for name, value in mapped.items():
        if value:
            event[name] = value
    return validate_usage(event).to_dict()
