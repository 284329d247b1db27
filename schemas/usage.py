"""The canonical usage event: one (or ``request_count``) metered AI call.

Token fields follow OpenTelemetry GenAI semantics: ``input_tokens`` *includes* cached input
tokens; ``cached_input_tokens``, ``cache_creation_input_tokens`` and ``reasoning_tokens`` are
subsets of input and output respectively; ``cache_creation_1h_input_tokens`` is the part of the
cache writes kept for one hour (Anthropic's ``ephemeral_1h_input_tokens``, priced above the
5-minute writes).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from schemas.errors import ValidationError

TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
    "cache_creation_1h_input_tokens",
)
#: Provider service tiers with their own per-token prices (LiteLLM ``*_batches``, ``*_priority``, ``*_flex``).
SERVICE_TIERS = ("default", "batch", "priority", "flex")
ATTRIBUTION_FIELDS = ("operation", "service", "team", "environment", "pipeline_stage", "experiment")
#: Dimensions an alert key or a group-by may use (plus ``tags.<name>``).
DIMENSIONS = ("provider", "model") + ATTRIBUTION_FIELDS

MAX_TOKENS = 10**10  # far above any real call; catches unit mix-ups (e.g. bytes sent as tokens)
MAX_COST_USD = 10**6
MAX_STRING = 256
MAX_TAGS = 64
# Accepted event-time range: 2000-01-01 .. 2100-01-01 (epoch seconds). Anything else is a unit bug
# (milliseconds sent as seconds, zero timestamps).
MIN_TIMESTAMP = 946684800.0
MAX_TIMESTAMP = 4102444800.0


# Field types with the rules of _validate_full as constraints: msgspec checks them while decoding
# (decode_usage), never on construction. Cross-field rules are checked after decoding.
Count = Annotated[int, Meta(ge=0, le=MAX_TOKENS)]
Text = Annotated[str, Meta(min_length=1, max_length=MAX_STRING)]


class UsageEvent(msgspec.Struct, gc=False):
    """A validated usage event. ``timestamp`` is epoch seconds (UTC).

    A msgspec Struct (not tracked by the garbage collector: it holds only strings, numbers and
    a dict of strings), so :func:`decode_usage` builds it straight from JSON bytes.
    """

    event_id: Text
    timestamp: Annotated[float, Meta(ge=MIN_TIMESTAMP, lt=MAX_TIMESTAMP)]
    provider: Text
    model: Text
    input_tokens: Count = 0
    output_tokens: Count = 0
    cached_input_tokens: Count = 0
    cache_creation_input_tokens: Count = 0
    reasoning_tokens: Count = 0
    cost_usd: Annotated[float, Meta(ge=0.0, le=MAX_COST_USD)] | None = None
    request_count: Annotated[int, Meta(ge=1, le=MAX_TOKENS)] = 1
    service_tier: Literal["default", "batch", "priority", "flex"] | None = None
    operation: Text | None = None
    service: Text | None = None
    team: Text | None = None
    environment: Text | None = None
    pipeline_stage: Text | None = None
    experiment: Text | None = None
    tags: Annotated[dict[Text, Text], Meta(max_length=MAX_TAGS)] = {}
    cache_creation_1h_input_tokens: Count = 0

    def dimension(self, name: str) -> str | None:
        """Value of a group-by dimension: a field name or ``tags.<name>``."""
        if name.startswith("tags."):
            return self.tags.get(name[5:])
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, omitting empty optional fields; ``timestamp`` stays epoch seconds."""
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "timestamp": self.timestamp,
            "provider": self.provider,
            "model": self.model,
        }
        for name in TOKEN_FIELDS:
            value = getattr(self, name)
            if value:
                out[name] = value
        if self.cost_usd is not None:
            out["cost_usd"] = self.cost_usd
        if self.request_count != 1:
            out["request_count"] = self.request_count
        if self.service_tier is not None:
            out["service_tier"] = self.service_tier
        for name in ATTRIBUTION_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.tags:
            out["tags"] = dict(self.tags)
        return out


def parse_timestamp(value: Any, field_name: str = "timestamp") -> float:
    """RFC 3339 with a zone, or epoch seconds, to epoch seconds."""
    if isinstance(value, bool):
        raise ValidationError(field_name, value, "must be an RFC 3339 string with zone or epoch seconds")
    if isinstance(value, (int, float)):
        if isinstance(value, int) and not MIN_TIMESTAMP <= value < MAX_TIMESTAMP:  # float() overflows past 1e308
            raise ValidationError(field_name, value, "must lie between 2000-01-01 and 2100-01-01 (epoch seconds, not ms)")
        ts = float(value)
        if not math.isfinite(ts):
            raise ValidationError(field_name, value, "must be finite")
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(field_name, value, "must be an RFC 3339 string with zone or epoch seconds") from None
        if parsed.tzinfo is None:
            raise ValidationError(field_name, value, "RFC 3339 timestamp must carry a zone (Z or +hh:mm)")
        ts = parsed.timestamp()
    else:
        raise ValidationError(field_name, value, "must be an RFC 3339 string with zone or epoch seconds")
    if not MIN_TIMESTAMP <= ts < MAX_TIMESTAMP:
        raise ValidationError(field_name, value, "must lie between 2000-01-01 and 2100-01-01 (epoch seconds, not ms)")
    return ts


def _required_str(data: dict[str, Any], name: str) -> str:
    if name not in data or data[name] is None:
        raise ValidationError(name, None, "is required")
    return _string(data[name], name)


def _string(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(name, value, "must be a string")
    if not value or len(value) > MAX_STRING:
        raise ValidationError(name, value, f"must be 1 to {MAX_STRING} characters")
    return value


def _count(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(name, value, "must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValidationError(name, value, "must be an integer")
        value = int(value)
    if value < minimum:
        raise ValidationError(name, value, f"must be >= {minimum}")
    if value > MAX_TOKENS:
        raise ValidationError(name, value, f"must be <= {MAX_TOKENS}")
    return value


#: The fields the fast path of :func:`validate_usage` builds, in constructor order. A field added to
#: :class:`UsageEvent` (with its rule in :func:`_validate_full`) turns the fast path off until it is
#: taught the new field, so no rule is ever skipped.
_FAST_FIELDS = ("event_id", "timestamp", "provider", "model", "input_tokens", "output_tokens", "cached_input_tokens",
                "cache_creation_input_tokens", "reasoning_tokens", "cost_usd", "request_count", "service_tier",
                "operation", "service", "team", "environment", "pipeline_stage", "experiment", "tags",
                "cache_creation_1h_input_tokens")
_FAST = UsageEvent.__struct_fields__ == _FAST_FIELDS
_DECODE = msgspec.json.Decoder(UsageEvent | list[UsageEvent]).decode
_WIRE_TIMESTAMP = Annotated[float, Meta(ge=MIN_TIMESTAMP, lt=MAX_TIMESTAMP)] | str
#: :class:`UsageEvent` as it arrives when the producer writes RFC 3339 timestamps: the same fields and
#: constraints, ``timestamp`` a number or a string; strings go through :func:`parse_timestamp`, the
#: full validator's own function, so they follow its rules by construction.
_WireEvent = msgspec.defstruct(
    "_WireEvent",
    [(f.name, _WIRE_TIMESTAMP if f.name == "timestamp" else f.type,
      *(() if f.required else (msgspec.field(default=f.default, default_factory=f.default_factory),)))
     for f in msgspec.structs.fields(UsageEvent)],
    gc=False, module=__name__,
)
_DECODE_WIRE = msgspec.json.Decoder(_WireEvent | list[_WireEvent]).decode
_as_tuple = msgspec.structs.astuple
_TEXT_TIMESTAMP = b'"timestamp":"'


def decode_usage(raw: bytes) -> list[UsageEvent] | None:
    """The hot path for JSON bytes (one event or an array of events): typed decoding in C, with
    every rule of :func:`validate_usage` as a field constraint. None when anything is unusual
    (a broken rule, invalid JSON, floats for counts, numeric tag values; RFC 3339 timestamps are
    decoded here too, by :func:`parse_timestamp`, the full validator's own function):
    the caller then takes the path that yields each error with its message, so the result is
    the same either way (tests/schemas/test_usage_properties.py checks it)."""
    if _TEXT_TIMESTAMP in raw:  # RFC 3339 as producers write it: no failed first attempt (4 us)
        return _decode_wire(raw)
    try:
        decoded = _DECODE(raw)
    except msgspec.ValidationError:  # a broken rule, or RFC 3339 timestamps written otherwise
        return _decode_wire(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    events = decoded if type(decoded) is list else [decoded]
    for event in events:
        if event.cached_input_tokens > event.input_tokens or event.reasoning_tokens > event.output_tokens \
                or event.cache_creation_1h_input_tokens > event.cache_creation_input_tokens:
            return None
    return events


def _decode_wire(raw: bytes) -> list[UsageEvent] | None:
    """:func:`decode_usage` for events whose timestamps are RFC 3339 strings (typed decoding too)."""
    try:
        decoded = _DECODE_WIRE(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    events = []
    for wire in decoded if type(decoded) is list else [decoded]:
        if wire.cached_input_tokens > wire.input_tokens or wire.reasoning_tokens > wire.output_tokens:
            return None
        values = _as_tuple(wire)
        ts = values[1]
        if type(ts) is str:
            try:
                ts = parse_timestamp(ts)
            except ValidationError:
                return None
            values = (values[0], ts, *values[2:])
        events.append(UsageEvent(*values))
    return events


def validate_usage(data: Any) -> UsageEvent:
    """Build a :class:`UsageEvent` from decoded JSON, or raise :class:`ValidationError`.

    Hot path (once per event): a well-formed event with plain types is checked inline and built
    with one constructor call; anything unusual (unknown keys, floats for counts, RFC 3339
    timestamps, numeric tag values, any rule broken) goes through :func:`_validate_full`, which
    holds every rule and every error message, so the result is the same either way.
    """
    if type(data) is dict and _FAST:
        get = data.get
        event_id, provider, model, ts = get("event_id"), get("provider"), get("model"), get("timestamp")
        ts_type = type(ts)
        if (type(event_id) is str and type(provider) is str and type(model) is str
                and 0 < len(event_id) <= MAX_STRING and 0 < len(provider) <= MAX_STRING and 0 < len(model) <= MAX_STRING
                and (ts_type is float or ts_type is int) and MIN_TIMESTAMP <= ts < MAX_TIMESTAMP):
            inp, out, cached = get("input_tokens", 0), get("output_tokens", 0), get("cached_input_tokens", 0)
            created, reasoning = get("cache_creation_input_tokens", 0), get("reasoning_tokens", 0)
            cost, count, tier = get("cost_usd"), get("request_count", 1), get("service_tier")
            operation, service, team = get("operation"), get("service"), get("team")
            environment, stage, experiment = get("environment"), get("pipeline_stage"), get("experiment")
            tags, created_1h = get("tags"), get("cache_creation_1h_input_tokens", 0)
            if (type(inp) is int and type(out) is int and type(cached) is int and type(created) is int
                    and type(reasoning) is int and type(count) is int
                    and 0 <= cached <= inp <= MAX_TOKENS and 0 <= reasoning <= out <= MAX_TOKENS
                    and 0 <= created <= MAX_TOKENS and 1 <= count <= MAX_TOKENS
                    and type(created_1h) is int and 0 <= created_1h <= created
                    and (cost is None or (type(cost) is float and 0.0 <= cost <= MAX_COST_USD))
                    and (tier is None or (type(tier) is str and tier in SERVICE_TIERS))
                    and (tags is None or (type(tags) is dict and not tags))
                    and (operation is None or (type(operation) is str and 0 < len(operation) <= MAX_STRING))
                    and (service is None or (type(service) is str and 0 < len(service) <= MAX_STRING))
                    and (team is None or (type(team) is str and 0 < len(team) <= MAX_STRING))
                    and (environment is None or (type(environment) is str and 0 < len(environment) <= MAX_STRING))
                    and (stage is None or (type(stage) is str and 0 < len(stage) <= MAX_STRING))
                    and (experiment is None or (type(experiment) is str and 0 < len(experiment) <= MAX_STRING))):
                # positional: a keyword call costs 3x as much (order checked by _FAST at import)
                return UsageEvent(event_id, float(ts), provider, model, inp, out, cached, created, reasoning, cost,
                                  count, tier, operation, service, team, environment, stage, experiment, {},
                                  created_1h)
    return _validate_full(data)


def _validate_full(data: Any) -> UsageEvent:
    """Every rule of :func:`validate_usage`, with its error messages."""
    if not isinstance(data, dict):
        raise ValidationError("$", type(data).__name__, "event must be a JSON object")
    event_id = _required_str(data, "event_id")
    if "timestamp" not in data or data["timestamp"] is None:
        raise ValidationError("timestamp", None, "is required")
    timestamp = parse_timestamp(data["timestamp"])
    provider = _required_str(data, "provider")
    model = _required_str(data, "model")
    event = UsageEvent(event_id, timestamp, provider, model)
    get = data.get
    for name in TOKEN_FIELDS:
        value = get(name)
        if value is not None:
            setattr(event, name, _count(value, name))
    if event.cached_input_tokens > event.input_tokens:
        raise ValidationError(
            "cached_input_tokens", event.cached_input_tokens,
            f"must be <= input_tokens ({event.input_tokens}); input_tokens includes cached tokens",
        )
    if event.reasoning_tokens > event.output_tokens:
        raise ValidationError(
            "reasoning_tokens", event.reasoning_tokens,
            f"must be <= output_tokens ({event.output_tokens}); output_tokens includes reasoning tokens",
        )
    if event.cache_creation_1h_input_tokens > event.cache_creation_input_tokens:
        raise ValidationError(
            "cache_creation_1h_input_tokens", event.cache_creation_1h_input_tokens,
            f"must be <= cache_creation_input_tokens ({event.cache_creation_input_tokens}); the 1-hour writes are "
            "part of the cache writes",
        )
    cost = get("cost_usd")
    if cost is not None:
        if isinstance(cost, bool) or not isinstance(cost, (int, float)):
            raise ValidationError("cost_usd", cost, "must be a number")
        if cost < 0 or cost > MAX_COST_USD or not math.isfinite(cost):  # a huge int fails before float()
            raise ValidationError("cost_usd", cost, f"must be a finite number between 0 and {MAX_COST_USD}")
        event.cost_usd = float(cost)
    count = get("request_count")
    if count is not None:
        event.request_count = _count(count, "request_count", minimum=1)
    tier = get("service_tier")
    if tier is not None:
        if tier not in SERVICE_TIERS:
            raise ValidationError("service_tier", tier, f"must be one of {', '.join(SERVICE_TIERS)}")
        event.service_tier = tier
    for name in ATTRIBUTION_FIELDS:
        value = get(name)
        if value is not None:
            setattr(event, name, _string(value, name))
    tags = get("tags")
    if tags is not None:
        if not isinstance(tags, dict):
            raise ValidationError("tags", tags, "must be an object of string values")
        if len(tags) > MAX_TAGS:
            raise ValidationError("tags", len(tags), f"must have at most {MAX_TAGS} entries")
        for key, value in tags.items():
            _string(key, "tags")
            if isinstance(value, (int, float, bool)) and not isinstance(value, bool):
                value = str(value)
            event.tags[key] = _string(value, f"tags.{key}")
    return event
