"""Provider usage formats -> canonical usage events (OpenTelemetry GenAI token semantics).

Each adapter takes one decoded provider payload and returns *partial* canonical event dicts: the
token counts always, and whatever the body itself says about ``event_id``, ``timestamp``,
``provider``, ``model`` and ``service_tier``. :func:`normalize_body` fills the rest from an
envelope and validates the result with :func:`schemas.usage.validate_usage`.

Token mapping, per provider (canonical ``input_tokens`` *includes* cache reads and writes,
``output_tokens`` *includes* reasoning):

===================  ===========================================================================
``openai``           Chat Completions ``usage``: ``prompt_tokens`` (includes cached),
``azure-openai``     ``prompt_tokens_details.cached_tokens``, ``completion_tokens``,
                     ``completion_tokens_details.reasoning_tokens``; ``created`` -> timestamp,
                     ``id`` -> event_id. Batch API output lines (``{"custom_id", "response":
                     {"status_code", "body"}}``) are priced as ``service_tier`` ``batch``.
``openai-responses`` Responses API ``usage``: ``input_tokens`` (includes cached),
                     ``input_tokens_details.cached_tokens``, ``output_tokens``,
                     ``output_tokens_details.reasoning_tokens``; ``created_at``; also the
                     ``response.completed`` stream event.
``anthropic``        Messages ``usage``: ``input_tokens`` **excludes** cache, so canonical input =
                     ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``;
                     ``usage.service_tier`` ``standard`` -> ``default``. Message Batches result
                     lines (``{"custom_id", "result": {"type": "succeeded", "message"}}``) are
                     ``batch``. The body has no time: the envelope must give ``timestamp``.
``gemini``           ``usageMetadata``: ``promptTokenCount`` (includes ``cachedContentTokenCount``)
                     + ``toolUsePromptTokenCount`` = input; ``candidatesTokenCount`` +
                     ``thoughtsTokenCount`` = output (thoughts are billed as output and reported
                     apart); ``modelVersion``, ``responseId``, ``createTime`` (Vertex).
``bedrock``          Converse / ConverseStream ``metadata`` ``usage``: like Anthropic, AWS reports
                     ``inputTokens`` *without* the cache (``totalTokens`` = input + output + cache
                     read + cache write; AWS prompt-caching guide, TokenUsage API reference), so
                     canonical input = ``inputTokens + cacheReadInputTokens +
                     cacheWriteInputTokens``. The body has no model: the envelope gives the
                     ``modelId``; boto3's ``ResponseMetadata`` gives ``RequestId`` and the HTTP
                     ``date`` header.
``litellm``          StandardLoggingPayload (LiteLLM logging callbacks / proxy spend logs):
                     ``response_cost`` -> ``cost_usd``, ``prompt_tokens``/``completion_tokens``,
                     breakdown from ``metadata.usage_object`` when present, ``startTime``,
                     ``custom_llm_provider``, team/key aliases from ``metadata``,
                     ``request_tags`` and ``end_user`` -> tags.
``otel``             OTLP/JSON traces: one event per span carrying ``gen_ai.usage.*``; aggregate
                     spans (``invoke_agent``, ``create_agent``, ``invoke_workflow``,
                     ``execute_tool``) are skipped so a call is not counted twice.
``canonical``        already canonical.
===================  ===========================================================================
"""

from __future__ import annotations

import hashlib
import json
import math
from email.utils import parsedate_to_datetime
from typing import Any, Callable

from schemas.errors import SchemaError, ValidationError
from schemas.usage import ATTRIBUTION_FIELDS, SERVICE_TIERS, parse_timestamp, validate_usage

__all__ = ["FORMATS", "normalize_body", "adapt", "is_envelope", "event_id_for", "looks_like", "check_shape"]

#: Envelope fields that fill what a body lacks (the body wins where it says something).
ENVELOPE_FIELDS = ("event_id", "timestamp", "provider", "model", "service_tier", "request_count", "tags",
                   *ATTRIBUTION_FIELDS)

_AGGREGATE_OPERATIONS = frozenset({"invoke_agent", "create_agent", "invoke_workflow", "execute_tool"})

# Provider service-tier spellings -> canonical tier (None: no per-token tier of its own).
_TIER_ALIASES = {
    "default": "default", "standard": "default", "auto": "default", "on_demand": "default",
    "batch": "batch", "batches": "batch",
    "priority": "priority",
    "flex": "flex",
}


def event_id_for(data: Any) -> str:
    """A deterministic id for a payload that carries none: the same payload gets the same id."""
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    except (RecursionError, ValueError, TypeError):  # nested too deeply, or keys that cannot be sorted
        raise ValidationError("event_id", None, "is required: the payload is too deeply nested (or has mixed-type "
                              "keys) to derive one from it") from None
    return "ev_" + hashlib.sha256(text.encode()).hexdigest()[:24]


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(where, type(value).__name__, "must be a JSON object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValidationError(where, type(value).__name__, "must be a JSON array")
    return value


def _tokens(usage: dict[str, Any], name: str, where: str) -> int:
    value = usage.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            (isinstance(value, float) and not math.isfinite(value)) or value < 0 or value != int(value):
        raise ValidationError(f"{where}.{name}", value, "must be a non-negative integer token count")
    return int(value)


def _tier(value: Any) -> str | None:
    if isinstance(value, str):
        return _TIER_ALIASES.get(value.strip().lower())
    return None


def _put(out: dict[str, Any], **fields: Any) -> dict[str, Any]:
    for name, value in fields.items():
        if value is not None and value != "":
            out[name] = value
    return out


# -- OpenAI / Azure OpenAI -------------------------------------------------------------------------

def _openai_chat(data: Any, provider: str) -> list[dict[str, Any]]:
    body = _obj(data, "$")
    tier = None
    response = body.get("response")
    if isinstance(response, dict) and "status_code" in response and "body" in response:  # Batch API output line
        if response.get("status_code") != 200:
            raise ValidationError("response.status_code", response.get("status_code"),
                                  "batch request failed: no usage to count")
        body = _obj(response["body"], "response.body")
        tier = "batch"
    usage = body.get("usage")
    if usage is None and "prompt_tokens" in body:
        usage = body  # a bare usage object
    usage = _obj(usage, "usage")
    prompt = _tokens(usage, "prompt_tokens", "usage")
    completion = _tokens(usage, "completion_tokens", "usage")
    pdet = usage.get("prompt_tokens_details") or {}
    cdet = usage.get("completion_tokens_details") or {}
    out = {
        "input_tokens": prompt,
        "output_tokens": completion,
        "cached_input_tokens": _tokens(_obj(pdet, "usage.prompt_tokens_details"), "cached_tokens",
                                       "usage.prompt_tokens_details"),
        "reasoning_tokens": _tokens(_obj(cdet, "usage.completion_tokens_details"), "reasoning_tokens",
                                    "usage.completion_tokens_details"),
    }
    return [_put(out, event_id=body.get("id"), timestamp=body.get("created"), model=body.get("model"),
                 provider=provider, service_tier=tier or _tier(body.get("service_tier")))]


def _openai(data: Any) -> list[dict[str, Any]]:
    return _openai_chat(data, "openai")


def _azure_openai(data: Any) -> list[dict[str, Any]]:
    if "openai-responses" in looks_like(data):  # Azure OpenAI serves the Responses API too
        return _openai_responses(data, "azure")
    return _openai_chat(data, "azure")


def _openai_responses(data: Any, provider: str = "openai") -> list[dict[str, Any]]:
    body = _obj(data, "$")
    if isinstance(body.get("type"), str) and body["type"].startswith("response.") and isinstance(body.get("response"), dict):
        body = body["response"]  # a streaming event: response.completed / response.incomplete
    usage = _obj(body.get("usage"), "usage")
    idet = _obj(usage.get("input_tokens_details") or {}, "usage.input_tokens_details")
    odet = _obj(usage.get("output_tokens_details") or {}, "usage.output_tokens_details")
    out = {
        "input_tokens": _tokens(usage, "input_tokens", "usage"),
        "output_tokens": _tokens(usage, "output_tokens", "usage"),
        "cached_input_tokens": _tokens(idet, "cached_tokens", "usage.input_tokens_details"),
        "reasoning_tokens": _tokens(odet, "reasoning_tokens", "usage.output_tokens_details"),
    }
    return [_put(out, event_id=body.get("id"), timestamp=body.get("created_at"), model=body.get("model"),
                 provider=provider, service_tier=_tier(body.get("service_tier")))]


# -- Anthropic ---------------------------------------------------------------------------------------

def _anthropic(data: Any) -> list[dict[str, Any]]:
    body = _obj(data, "$")
    tier = None
    result = body.get("result")
    if "custom_id" in body and isinstance(result, dict):  # Message Batches results line
        if result.get("type") != "succeeded":
            raise ValidationError("result.type", result.get("type"), "batch request did not succeed: no usage to count")
        body = _obj(result.get("message"), "result.message")
        tier = "batch"
    if body.get("type") == "message_start" and isinstance(body.get("message"), dict):
        body = body["message"]
    usage = _obj(body.get("usage"), "usage")
    plain = _tokens(usage, "input_tokens", "usage")
    read = _tokens(usage, "cache_read_input_tokens", "usage")
    write = _tokens(usage, "cache_creation_input_tokens", "usage")
    output = _tokens(usage, "output_tokens", "usage")
    split = _obj(usage.get("cache_creation") or {}, "usage.cache_creation")
    write_1h = min(_tokens(split, "ephemeral_1h_input_tokens", "usage.cache_creation"), write)
    details = usage.get("output_tokens_details") or {}
    thinking = _tokens(_obj(details, "usage.output_tokens_details"), "thinking_tokens", "usage.output_tokens_details")
    out = {
        "input_tokens": plain + read + write,
        "cached_input_tokens": read,
        "cache_creation_input_tokens": write,
        "cache_creation_1h_input_tokens": write_1h,
        "output_tokens": output,
        "reasoning_tokens": min(thinking, output),
    }
    return [_put(out, event_id=body.get("id"), model=body.get("model"), provider="anthropic",
                 service_tier=tier or _tier(usage.get("service_tier")))]


# -- Google Gemini / Vertex AI ---------------------------------------------------------------------

def _gemini(data: Any) -> list[dict[str, Any]]:
    body = _obj(data, "$")
    if isinstance(body.get("response"), dict) and "usageMetadata" in body["response"]:
        body = body["response"]  # a Gemini Batch output line ({"key", "response"})
        tier: str | None = "batch"
    else:
        tier = None
    usage = _obj(body.get("usageMetadata"), "usageMetadata")
    prompt = _tokens(usage, "promptTokenCount", "usageMetadata")
    tool = _tokens(usage, "toolUsePromptTokenCount", "usageMetadata")
    cached = _tokens(usage, "cachedContentTokenCount", "usageMetadata")
    candidates = _tokens(usage, "candidatesTokenCount", "usageMetadata")
    thoughts = _tokens(usage, "thoughtsTokenCount", "usageMetadata")
    out = {
        "input_tokens": prompt + tool,
        "cached_input_tokens": cached,
        "output_tokens": candidates + thoughts,
        "reasoning_tokens": thoughts,
    }
    return [_put(out, event_id=body.get("responseId"), timestamp=body.get("createTime"),
                 model=body.get("modelVersion"), provider="gemini", service_tier=tier)]


# -- AWS Bedrock Converse ----------------------------------------------------------------------------

def _bedrock(data: Any) -> list[dict[str, Any]]:
    body = _obj(data, "$")
    usage_holder = body.get("metadata") if isinstance(body.get("metadata"), dict) else body  # ConverseStream
    usage = _obj(usage_holder.get("usage"), "usage")
    plain = _tokens(usage, "inputTokens", "usage")
    read = _tokens(usage, "cacheReadInputTokens", "usage")
    write = _tokens(usage, "cacheWriteInputTokens", "usage")
    out: dict[str, Any] = {
        "input_tokens": plain + read + write,
        "cached_input_tokens": read,
        "cache_creation_input_tokens": write,
        "output_tokens": _tokens(usage, "outputTokens", "usage"),
    }
    meta = body.get("ResponseMetadata")
    timestamp = None
    event_id = None
    if isinstance(meta, dict):
        event_id = meta.get("RequestId")
        date = _obj(meta.get("HTTPHeaders") or {}, "ResponseMetadata.HTTPHeaders").get("date")
        if isinstance(date, str):
            try:
                timestamp = parsedate_to_datetime(date).timestamp()
            except (TypeError, ValueError):
                raise ValidationError("ResponseMetadata.HTTPHeaders.date", date, "must be an HTTP date") from None
    tier = body.get("serviceTier")
    if isinstance(tier, dict):
        tier = tier.get("type")
    return [_put(out, event_id=event_id, timestamp=timestamp, model=body.get("modelId"), provider="aws.bedrock",
                 service_tier=_tier(tier))]


# -- LiteLLM StandardLoggingPayload ------------------------------------------------------------------

def _json_field(value: Any, where: str) -> Any:
    """A LiteLLM spend-log column that an export may carry as JSON text (``metadata``, ``request_tags``)."""
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            raise ValidationError(where, value, "must be JSON") from None
    return value


def _litellm_time(value: Any) -> Any:
    """``startTime``: epoch seconds (StandardLoggingPayload) or a datetime string (spend-log rows).
    LiteLLM's proxy stores spend-log times without a zone; they are read as UTC."""
    if isinstance(value, str):
        text = value.strip().replace(" ", "T", 1)
        if text and not text.endswith(("Z", "z")) and "+" not in text[10:] and "-" not in text[10:]:
            return text + "+00:00"
        return text
    return value


def _litellm(data: Any) -> list[dict[str, Any]]:
    body = _obj(data, "$")
    meta = _json_field(body.get("metadata"), "metadata") or {}
    meta = _obj(meta, "metadata")
    usage = meta.get("usage_object")
    out: dict[str, Any] = {
        "input_tokens": _tokens(body, "prompt_tokens", "$"),
        "output_tokens": _tokens(body, "completion_tokens", "$"),
    }
    if isinstance(usage, dict):
        # LiteLLM's Usage is OpenAI-shaped for every provider; prompt_tokens includes cache reads and writes.
        pdet = usage.get("prompt_tokens_details") or {}
        cdet = usage.get("completion_tokens_details") or {}
        if isinstance(pdet, dict):
            out["cached_input_tokens"] = _tokens(pdet, "cached_tokens", "metadata.usage_object.prompt_tokens_details")
        out["cache_creation_input_tokens"] = _tokens(usage, "cache_creation_input_tokens", "metadata.usage_object")
        if isinstance(cdet, dict):
            out["reasoning_tokens"] = _tokens(cdet, "reasoning_tokens",
                                              "metadata.usage_object.completion_tokens_details")
        cache = out.get("cached_input_tokens", 0) + out["cache_creation_input_tokens"]
        if cache > out["input_tokens"]:
            # an older LiteLLM passed Anthropic's prompt_tokens without the cache: add it back
            out["input_tokens"] += cache
    # StandardLoggingPayload: response_cost; proxy spend-log rows (LiteLLM_SpendLogs): spend
    cost = body.get("response_cost") if body.get("response_cost") is not None else body.get("spend")
    tags: dict[str, str] = {}
    for name, key in (("user_api_key_alias", "litellm.key_alias"), ("user_api_key_user_id", "litellm.user_id"),
                      ("user_api_key_org_alias", "litellm.org"), ("user_api_key_project_alias", "litellm.project")):
        if isinstance(meta.get(name), str) and meta[name]:
            tags[key] = meta[name]
    request_tags = _json_field(body.get("request_tags"), "request_tags")
    if isinstance(request_tags, list) and request_tags:
        tags["litellm.request_tags"] = ",".join(str(t) for t in request_tags)[:256]
    if isinstance(body.get("end_user"), str) and body["end_user"]:
        tags["end_user"] = body["end_user"]
    team = (meta.get("user_api_key_team_alias") or meta.get("team_alias") or meta.get("user_api_key_team_id")
            or body.get("team_id"))
    provider = body.get("custom_llm_provider")
    model = body.get("model")
    if isinstance(model, str) and isinstance(provider, str) and model.startswith(provider + "/"):
        model = model[len(provider) + 1:]
    return [_put(out, event_id=body.get("id") or body.get("request_id"), timestamp=_litellm_time(body.get("startTime")),
                 model=model, provider=provider,
                 cost_usd=cost if isinstance(cost, (int, float)) and not isinstance(cost, bool) else None,
                 team=team if isinstance(team, str) else None, operation=body.get("call_type"),
                 tags=tags or None)]


# -- OpenTelemetry GenAI (OTLP/JSON) -----------------------------------------------------------------

def _any_value(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    for kind in ("stringValue", "boolValue", "doubleValue"):
        if kind in value:
            return value[kind]
    if "intValue" in value:  # int64 is a JSON string in OTLP/JSON
        try:
            return int(value["intValue"])
        except (TypeError, ValueError, OverflowError):
            raise ValidationError("attributes.intValue", value["intValue"], "must be an integer") from None
    if "arrayValue" in value:
        array = _obj(value["arrayValue"], "attributes.arrayValue")
        return [_any_value(v) for v in _list(array.get("values"), "attributes.arrayValue.values")]
    return None


def _attributes(items: Any, where: str) -> dict[str, Any]:
    if items is None:
        return {}
    if not isinstance(items, list):
        raise ValidationError(where, type(items).__name__, "must be a list of {key, value}")
    out = {}
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = _any_value(item.get("value"))
    return out


def _nanos(value: Any, where: str) -> float | None:
    if value in (None, "", 0, "0"):
        return None
    try:
        return int(value) / 1e9
    except (TypeError, ValueError, OverflowError):
        raise ValidationError(where, value, "must be nanoseconds since the epoch") from None


def _otel(data: Any) -> list[dict[str, Any]]:
    body = _obj(data, "$")
    if "resourceSpans" not in body:
        raise ValidationError("resourceSpans", None, "is required (an OTLP/JSON ExportTraceServiceRequest)")
    events = []
    for r, rs in enumerate(_list(body.get("resourceSpans"), "resourceSpans")):
        rs = _obj(rs, f"resourceSpans[{r}]")
        resource = _attributes(_obj(rs.get("resource") or {}, f"resourceSpans[{r}].resource").get("attributes"),
                               f"resourceSpans[{r}].resource.attributes")
        for s, ss in enumerate(_list(rs.get("scopeSpans"), f"resourceSpans[{r}].scopeSpans")):
            ss = _obj(ss, f"resourceSpans[{r}].scopeSpans[{s}]")
            for i, span in enumerate(_list(ss.get("spans"), f"resourceSpans[{r}].scopeSpans[{s}].spans")):
                where = f"resourceSpans[{r}].scopeSpans[{s}].spans[{i}]"
                span = _obj(span, where)
                attrs = _attributes(span.get("attributes"), where + ".attributes")
                event = _otel_span(span, attrs, resource, where)
                if event is not None:
                    events.append(event)
    return events


def _otel_span(span: dict[str, Any], attrs: dict[str, Any], resource: dict[str, Any], where: str) -> dict[str, Any] | None:
    names = {
        "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
        "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
        "cached_input_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens"),
        "cache_creation_input_tokens": ("gen_ai.usage.cache_creation.input_tokens",
                                        "gen_ai.usage.cache_creation_input_tokens"),
        "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens",),
    }
    if not any(key in attrs for keys in names.values() for key in keys):
        return None
    operation = attrs.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _AGGREGATE_OPERATIONS:
        return None
    out: dict[str, Any] = {}
    for field, keys in names.items():
        for key in keys:
            if key in attrs:
                out[field] = _tokens(attrs, key, where + ".attributes")
                break
    start = _nanos(span.get("startTimeUnixNano"), where + ".startTimeUnixNano")
    end = _nanos(span.get("endTimeUnixNano"), where + ".endTimeUnixNano")
    trace, span_id = span.get("traceId"), span.get("spanId")
    event_id = f"{trace}-{span_id}" if trace and span_id else span_id
    tier = attrs.get("gen_ai.openai.response.service_tier") or attrs.get("openai.response.service_tier")
    tags = {}
    for key in ("gen_ai.conversation.id", "gen_ai.agent.name"):
        if isinstance(attrs.get(key), str):
            tags[key] = attrs[key]
    environment = resource.get("deployment.environment.name") or resource.get("deployment.environment")
    team = attrs.get("team") or resource.get("team") or resource.get("service.namespace")
    return _put(out, event_id=event_id, timestamp=end or start,
                provider=attrs.get("gen_ai.provider.name") or attrs.get("gen_ai.system"),
                model=attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model"),
                operation=operation, service=resource.get("service.name"), team=team,
                environment=environment, service_tier=_tier(tier), tags=tags or None)


def _canonical(data: Any) -> list[dict[str, Any]]:
    return [dict(_obj(data, "$"))]


_ADAPTERS: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "canonical": _canonical,
    "openai": _openai,
    "openai-responses": _openai_responses,
    "anthropic": _anthropic,
    "gemini": _gemini,
    "bedrock": _bedrock,
    "azure-openai": _azure_openai,
    "litellm": _litellm,
    "otel": _otel,
}
FORMATS: tuple[str, ...] = tuple(_ADAPTERS)


def adapt(fmt: str, body: Any) -> list[dict[str, Any]]:
    """The partial canonical events in one provider body (no envelope, not validated)."""
    adapter = _ADAPTERS.get(fmt)
    if adapter is None:
        raise SchemaError(f"unknown format {fmt!r} (use one of: {', '.join(FORMATS)})")
    return adapter(body)


_OPENAI_USAGE = ("prompt_tokens", "completion_tokens")
_BEDROCK_USAGE = ("inputTokens", "outputTokens")
_ANTHROPIC_USAGE = ("cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation")
_RESPONSES_USAGE = ("input_tokens_details", "output_tokens_details")


def looks_like(body: Any) -> tuple[str, ...]:
    """The formats a provider body looks like, from its shape alone (empty: no telling).

    Used to refuse a body given under the wrong ``--format`` (``looks like openai-responses, not
    openai``) instead of reading no tokens from it and pricing it at $0.
    """
    if not isinstance(body, dict):
        return ()
    if "resourceSpans" in body:
        return ("otel",)
    if "startTime" in body and any(k in body for k in ("response_cost", "spend", "call_type", "model_group")):
        return ("litellm",)
    inner = body.get("response")
    if "usageMetadata" in body or (isinstance(inner, dict) and "usageMetadata" in inner):
        return ("gemini",)
    kind = body.get("type")
    if body.get("object") == "response" or (isinstance(kind, str) and kind.startswith("response.")):
        return ("openai-responses",)
    if kind in ("message", "message_start") or ("custom_id" in body and isinstance(body.get("result"), dict)):
        return ("anthropic",)
    if body.get("object") in ("chat.completion", "chat.completion.chunk") or \
            ("custom_id" in body and isinstance(inner, dict) and "status_code" in inner):
        return ("openai",)
    holder = body.get("metadata") if isinstance(body.get("metadata"), dict) else body
    usage = holder.get("usage")
    if not isinstance(usage, dict):
        return ("openai",) if all(k in body for k in _OPENAI_USAGE) else ()
    if any(k in usage for k in _BEDROCK_USAGE):
        return ("bedrock",)
    if any(k in usage for k in _OPENAI_USAGE):
        return ("openai",)
    if any(k in usage for k in _ANTHROPIC_USAGE):
        return ("anthropic",)
    if any(k in usage for k in _RESPONSES_USAGE) or "created_at" in body:
        return ("openai-responses",)
    if "input_tokens" in usage or "output_tokens" in usage:
        return ("openai-responses", "anthropic")
    return ()


#: formats whose adapter reads bodies of another format's shape
_READS_ALSO = {"azure-openai": ("openai", "openai-responses")}


def check_shape(fmt: str, body: Any) -> None:
    """A :class:`SchemaError` when ``body`` looks like another format than ``fmt``."""
    if fmt == "canonical":
        return
    shapes = looks_like(body)
    if shapes and fmt not in shapes and not set(shapes) & set(_READS_ALSO.get(fmt, ())):
        raise SchemaError(f"looks like {' or '.join(shapes)}, not {fmt}")


def is_envelope(data: Any) -> bool:
    """``{"response": <body>, ...}`` with spendsentry envelope fields, not a provider body that
    happens to carry a ``response`` key (OpenAI batch lines, Responses stream events, Gemini batch,
    a LiteLLM StandardLoggingPayload with its model response)."""
    if not isinstance(data, dict) or not isinstance(data.get("response"), dict):
        return False
    if "custom_id" in data or "type" in data or "key" in data or looks_like(data) == ("litellm",):
        return False
    return any(name in data for name in (*ENVELOPE_FIELDS, "modelId")) or set(data) == {"response"}


def normalize_body(fmt: str, data: Any) -> list[dict[str, Any]]:
    """Canonical, validated event dicts for one payload (a body or an envelope around one).

    Raises :class:`ValidationError` (a field, its value and the rule) or :class:`SchemaError`.
    """
    envelope: dict[str, Any] = {}
    body = data
    if fmt != "canonical" and is_envelope(data):
        envelope = {k: v for k, v in data.items() if k != "response"}
        if envelope.get("model") is None and isinstance(envelope.get("modelId"), str):
            envelope["model"] = envelope["modelId"]  # a Bedrock envelope names the model as the API does
        body = data["response"]
    check_shape(fmt, body)
    partials = adapt(fmt, body)
    events = []
    for index, partial in enumerate(partials):
        event = dict(partial)
        for name in ENVELOPE_FIELDS:
            if name == "tags":
                continue
            if event.get(name) is None and envelope.get(name) is not None:
                event[name] = envelope[name]
        if isinstance(envelope.get("tags"), dict):
            event["tags"] = {**envelope["tags"], **(event.get("tags") or {})}
        if envelope.get("provider") is not None and fmt not in ("litellm", "otel"):
            # the adapter's provider is only a default: a Gemini body served by Vertex AI, an
            # Anthropic body from Bedrock InvokeModel, an OpenAI body from Azure
            event["provider"] = envelope["provider"]
        if "event_id" not in event or event["event_id"] is None:
            event["event_id"] = event_id_for(data) + (f"-{index}" if len(partials) > 1 else "")
        if event.get("timestamp") is None:
            raise ValidationError("timestamp", None, f"is required: the {fmt} body has none, so wrap it in an envelope "
                                  '{"timestamp": ..., "response": <body>}')
        if event.get("model") is None:
            raise ValidationError("model", None, f"is required: the {fmt} body has none, so give it in the envelope")
        if event.get("service_tier") is not None and event["service_tier"] not in SERVICE_TIERS:
            event["service_tier"] = _tier(event["service_tier"])
            if event["service_tier"] is None:
                del event["service_tier"]
        if isinstance(event.get("timestamp"), str) and fmt != "canonical":
            event["timestamp"] = parse_timestamp(event["timestamp"])
        events.append(validate_usage(event).to_dict())
    return events
