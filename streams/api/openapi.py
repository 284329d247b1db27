"""The OpenAPI 3 document served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

_ALERT = {
    "type": "object",
    "required": ["alert_id", "type", "status", "severity", "key", "window_start", "window_end",
                 "triggered_at", "observed", "expected", "score", "summary"],
    "properties": {
        "alert_id": {"type": "string", "description": "Deterministic from type, key and the incident's first window."},
        "type": {"type": "string", "example": "cost_spike"},
        "status": {"type": "string", "enum": ["firing", "resolved"]},
        "severity": {"type": "string", "enum": ["info", "warning", "critical"]},
        "key": {"type": "object", "additionalProperties": {"type": "string"}, "example": {"model": "gpt-4o"}},
        "window_start": {"type": "string", "format": "date-time"},
        "window_end": {"type": "string", "format": "date-time"},
        "triggered_at": {"type": "string", "format": "date-time", "description": "Event time."},
        "observed": {"type": "number", "description": "USD spent in the window."},
        "expected": {"type": "number", "description": "USD the detector expected in the window."},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "summary": {"type": "string"},
        "details": {"type": "object"},
    },
}

_DELIVERY = {
    "type": "object",
    "properties": {
        "sink": {"type": "string"}, "status": {"type": "string"}, "ok": {"type": "boolean"},
        "attempts": {"type": "integer"}, "http_status": {"type": ["integer", "null"]},
        "latency_s": {"type": "number"}, "error": {"type": ["string", "null"]},
    },
}

_INGEST = {
    "type": "object",
    "required": ["accepted", "rejected", "errors"],
    "properties": {
        "accepted": {"type": "integer"}, "rejected": {"type": "integer"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["index", "reason"], "properties": {
            "index": {"type": "integer"}, "reason": {"type": "string"}, "field": {"type": "string"},
            "value": {}, "rule": {"type": "string"},
        }}},
    },
}

_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_CURSOR = {"name": "cursor", "in": "query", "schema": {"type": "string"},
           "description": "The next_cursor of the previous page (opaque); omit for the first page."}
_NEXT_CURSOR = {"type": ["string", "null"], "description": "Pass as cursor for the next page; null on the last page."}
_HEALTH = {"type": "object", "properties": {
    "status": {"type": "string", "enum": ["ok", "starting", "unwell"]}, "recovered": {"type": "boolean"},
    "problems": {"type": "array", "items": {"type": "string"}}, "partitions": {"type": "array", "items": {"type": "integer"}},
}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}



_ALERT_ID = {"name": "alert_id", "in": "path", "required": True, "schema": {"type": "string"}}
_MATCH = {"type": "object", "additionalProperties": {"type": "string"},
          "description": "dimension (model, provider, service, team, environment, ..., tags.<name>) -> exact value or glob"}
_SUBSCRIPTION = {
    "type": "object",
    "required": ["name", "destination"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "match": _MATCH,
        "alert_types": {"type": "array", "items": {"type": "string"}},
        "min_severity": {"type": "string", "enum": ["info", "warning", "critical"]},
        "min_impact_usd": {"type": "number", "minimum": 0}, "enabled": {"type": "boolean"},
        "cooldown_s": {"type": "number", "minimum": 0},
        "digest": {"type": "string", "enum": ["daily", "weekly"],
                   "description": "a digest subscription: one summary per closed period (webhook or slack), no "
                                  "per-alert messages"},
        "timezone": {"type": "string", "default": "UTC",
                     "description": "IANA time zone of the digest's periods (only with digest)"},
        "destination": {"type": "object", "required": ["type"], "properties": {
            "type": {"type": "string", "enum": ["webhook", "slack", "pagerduty"]},
            "url": {"type": "string"}, "secret": {"type": "string", "description": "whsec_...; shown masked"},
            "cloudevents": {"type": "boolean"}, "channel": {"type": "string"},
            "routing_key": {"type": "string", "description": "shown masked"}}},
    },
}
_BUDGET = {
    "type": "object",
    "required": ["name", "amount_usd"],
    "properties": {
        "id": {"type": "string"}, "name": {"type": "string"}, "match": _MATCH,
        "period": {"type": "string", "enum": ["day", "month"]}, "timezone": {"type": "string"},
        "amount_usd": {"type": "number", "exclusiveMinimum": 0},
        "thresholds_pct": {"type": "array", "items": {"type": "number"}},
        "burn_rules": {"type": "array", "items": {"type": "object"}}, "enabled": {"type": "boolean"},
        "state": {"type": ["object", "null"], "description": "spent, pct, burn rates per window, projected exhaustion"},
    },
}


def _crud(path: str, name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Paths of an API-managed collection: list/create and get/replace/patch/delete by id."""
    item_id = {"name": "record_id", "in": "path", "required": True, "schema": {"type": "string"}}
    body = {"required": True, "content": {"application/json": {"schema": schema}}}
    mutation_errors = {"400": _json(_ERROR, "Invalid body (field, value, rule)."),
                       "401": _json(_ERROR, "Missing or invalid bearer token."),
                       "413": _json(_ERROR, "Body too large.")}
    return {
        path: {
            "get": {"summary": f"List {name}.", "responses": {"200": _json(
                {"type": "object", "properties": {name: {"type": "array", "items": schema}}}, f"The {name}.")}},
            "post": {"summary": f"Create one of the {name}.", "security": [{"bearer": []}], "requestBody": body,
                     "responses": {"201": _json(schema, "Created."), **mutation_errors}},
        },
        path + "/{record_id}": {
            "parameters": [item_id],
            "get": {"summary": "Get one.", "responses": {"200": _json(schema, "Found."), "404": _json(_ERROR, "Not found.")}},
            "put": {"summary": "Replace one.", "security": [{"bearer": []}], "requestBody": body,
                    "responses": {"200": _json(schema, "Replaced."), "404": _json(_ERROR, "Not found."), **mutation_errors}},
            "patch": {"summary": "Change some fields.", "security": [{"bearer": []}],
                      "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                      "responses": {"200": _json(schema, "Changed."), "404": _json(_ERROR, "Not found."), **mutation_errors}},
            "delete": {"summary": "Delete one.", "security": [{"bearer": []}],
                       "responses": {"204": {"description": "Deleted."}, "401": _json(_ERROR, "Missing or invalid bearer token."),
                                     "404": _json(_ERROR, "Not found.")}},
        },
    }


# the dashboard's reads (streams/api/dashboard.py)
_DASHBOARD_PATHS: dict[str, Any] = {
    "/v1/series": {"get": {
        "summary": "Spend per bucket per group over a window, filtered by any dimension, with totals, unit costs, "
                   "the untagged share and, where a detector watches the grouping, its expected band. Any other query "
                   "parameter named after a segment dimension filters exactly: ?team=search.",
        "parameters": [{"name": "group_by", "in": "query", "schema": {"type": "string", "default": "model"}},
                       {"name": "window", "in": "query", "schema": {"type": "string", "default": "6h"}}],
        "responses": {"200": _json({"type": "object", "properties": {
            "group_by": {"type": "array", "items": {"type": "string"}},
            "filter": {"type": "object", "additionalProperties": {"type": "string"}},
            "series": {"type": "array", "items": {"type": "object", "properties": {
                "key": {"type": "object"}, "cost_usd": {"type": "number"},
                "points": {"type": "array", "items": {"type": "object", "properties": {
                    "t": {"type": "number"}, "cost_usd": {"type": "number"}}}},
                "expected": {"type": ["array", "null"], "items": {"type": "object", "properties": {
                    "t": {"type": "number"}, "expected": {"type": "number"}, "low": {"type": "number"},
                    "high": {"type": "number"}}}}}}},
            "rows": {"type": "array"}, "total": {"type": "object"}, "untagged": {"type": "object"},
        }}, "Spend series."), "400": _json(_ERROR, "Bad query parameter.")},
    }},
    "/v1/forecast": {"get": {
        "summary": "Period-end spend forecast per budget (weekday seasonality and trend, 80 % interval); "
                   "group_by=team keeps the budgets scoped to exactly one team.",
        "parameters": [{"name": "group_by", "in": "query", "schema": {"type": "string"}}],
        "responses": {"200": _json({"type": "object", "properties": {
            "forecasts": {"type": "array", "items": {"type": "object", "properties": {
                "budget_id": {"type": "string"}, "key": {"type": ["object", "null"]},
                "forecast": {"type": ["object", "null"], "properties": {
                    "spent_usd": {"type": "number"}, "projected_usd": {"type": "number"},
                    "low_usd": {"type": "number"}, "high_usd": {"type": "number"}}}}}}}},
            "Forecasts."), "400": _json(_ERROR, "Bad query parameter.")},
    }},
}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "spendsentry", "version": "0.1.0",
             "description": "Real-time AI spend windows and cost alerts."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                   "description": "A token from SPENDSENTRY_API_TOKENS (any route) or "
                                                                  "SPENDSENTRY_READ_TOKENS (reads only). With no token "
                                                                  "configured the worker serves loopback only."}}},
    "paths": {
        **_DASHBOARD_PATHS,
        "/healthz": {"get": {
            "summary": "Health: tables recovered, no rebalance in progress, no agent crashed within "
                       "SPENDSENTRY_STALL_SECONDS, no partition with lag stalled that long, recovery not stuck.",
            "responses": {
                "200": _json(_HEALTH, "Ready and well."),
                "503": _json(_HEALTH, "Starting, rebalancing, or unwell: `problems` says why."),
            },
        }},
        "/v1/alerts": {"get": {
            "summary": "Recent alerts, newest first, with their deliveries; paged by limit and cursor.",
            "parameters": [{"name": "limit", "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
                           _CURSOR],
            "responses": {
                "200": _json({"type": "object", "properties": {"alerts": {"type": "array", "items": {
                    "type": "object", "properties": {"alert": _ALERT, "deliveries": {"type": "array", "items": _DELIVERY}},
                }}, "next_cursor": _NEXT_CURSOR}}, "Recent alerts."),
                "400": _json(_ERROR, "Bad limit or cursor."),
            },
        }},
        "/v1/spend": {"get": {
            "summary": "Current cost windows per key, counters and unpriced models on this worker; with group_by "
                       "and/or window: spend segmented by attribution dimensions (after allocation rules), "
                       "with unit costs and the untagged share.",
            "parameters": [
                {"name": "group_by", "in": "query", "schema": {"type": "string", "example": "team,pipeline_stage"},
                 "description": "Comma-separated attribution dimensions (provider, model, operation, service, team, "
                                "environment, pipeline_stage, experiment, required tags.<name>)."},
                {"name": "window", "in": "query", "schema": {"type": "string", "pattern": "^[1-9][0-9]*[smhd]$",
                                                             "default": "1h"},
                 "description": "How far back from the newest event time: 5m, 1h, 24h (at most the 24 h horizon)."},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000,
                                                            "default": 1000},
                 "description": "Keys per page (biggest spend first); without group_by/window."},
                _CURSOR,
            ],
            "responses": {"200": _json({"type": "object", "properties": {
                "bucket_seconds": {"type": "number"},
                "keys": {"type": "array", "items": {"type": "object", "properties": {
                    "key": {"type": "object"}, "total_cost_usd": {"type": "number"}, "events": {"type": "integer"},
                    "unpriced_events": {"type": "integer"}, "late_events": {"type": "integer"},
                    "open_buckets": {"type": "array"}, "last_closed": {"type": ["object", "null"]},
                    "incident": {"type": ["string", "null"]},
                }}},
                "counters": {"type": "object", "additionalProperties": {"type": "number"}},  # detector_seconds
                "unpriced_models": {"type": "object", "additionalProperties": {"type": "integer"}},
                "next_cursor": _NEXT_CURSOR,
            }}, "Spend windows (or, with group_by/window, segmented spend)."),
                "400": _json(_ERROR, "Bad group_by, window, limit or cursor (the error names the parameter and the rule).")},
        }},
        "/v1/events": {"post": {
            "summary": "Ingest usage events: one JSON object, a JSON array, or NDJSON.",
            "security": [{"bearer": []}],
            "parameters": [{"name": "format", "in": "query", "schema": {"type": "string", "default": "canonical"},
                            "description": "canonical, or a provider format: openai, openai-responses, anthropic, gemini, bedrock, azure-openai, litellm, otel."}],
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            }},
            "responses": {
                "202": _json(_INGEST, "Accepted (some items may be rejected: see errors)."),
                "400": _json({"oneOf": [_INGEST, _ERROR]}, "Nothing accepted, or a bad query parameter."),
                "401": _json(_ERROR, "Missing or invalid bearer token."),
                "413": _json(_ERROR, "Body over SPENDSENTRY_MAX_BODY_BYTES."),
            },
        }},
        "/v1/gpu": {"get": {
            "summary": "GPU spend per cluster/team/gpu model/service/model over a window (fractional GPUs by "
                       "fraction), cost per GPU-hour and per used GPU-hour, firing idle-GPU alerts, and the "
                       "purchase-option comparison (on-demand, reserved, spot, mix) per fleet over 7 days.",
            "parameters": [{"name": "window", "in": "query", "schema": {"type": "string", "default": "24h"}}],
            "responses": {"200": _json({"type": "object", "properties": {
                "keys": {"type": "array"}, "idle": {"type": "array", "items": _ALERT},
                "purchase_options": {"type": "array"}, "events": {"type": "integer"}, "invalid": {"type": "integer"},
            }}, "GPU usage."), "400": _json(_ERROR, "Bad query parameter.")},
        }},
        "/v1/alerts/{alert_id}": {"get": {
            "summary": "One alert with every delivery attempt, pending retries and feedback.",
            "parameters": [_ALERT_ID],
            "responses": {"200": _json({"type": "object", "properties": {
                "alert": _ALERT, "deliveries": {"type": "array", "items": _DELIVERY},
                "pending_retries": {"type": "array"}, "feedback": {"type": "array"}}}, "The alert."),
                "404": _json(_ERROR, "Unknown alert.")},
        }},
        "/v1/alerts/{alert_id}/feedback": {"post": {
            "summary": "Acknowledge, snooze (1 h) or mark expected: the detector takes the level as normal.",
            "security": [{"bearer": []}],
            "parameters": [_ALERT_ID],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["action"], "properties": {
                    "action": {"type": "string", "enum": ["ack", "acknowledge", "snooze", "snooze_1h", "expected"]},
                    "user": {"type": "string"}}}}}},
            "responses": {"202": _json({"type": "object"}, "Applied."), "400": _json(_ERROR, "Bad action or body."),
                          "401": _json(_ERROR, "Missing or invalid bearer token."),
                          "404": _json(_ERROR, "Unknown alert."), "413": _json(_ERROR, "Body too large.")},
        }},
        **_crud("/v1/subscriptions", "subscriptions", _SUBSCRIPTION),
        **_crud("/v1/budgets", "budgets", _BUDGET),
        "/v1/slack/interactivity": {"post": {
            "summary": "Slack button callbacks (Acknowledge, Snooze 1h, Expected), verified by X-Slack-Signature.",
            "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "properties": {"payload": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object"}, "Handled."), "400": _json(_ERROR, "Not a spendsentry action."),
                          "401": _json(_ERROR, "Bad or stale signature."),
                          "503": _json(_ERROR, "SPENDSENTRY_SLACK_SIGNING_SECRET is not set.")},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text exposition format 0.0.4).",
            "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": _json({"type": "object"}, "OpenAPI 3.")}}},
    },
}


def _require_tokens(document: dict[str, Any]) -> None:
    """Every ``/v1/*`` route and ``/metrics`` takes a bearer token (reads a read or write token, writes
    a write token: 403 for a read token);
    Slack's callback is signed instead; bodies are read under a limit and a timeout."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation["responses"]
            if method in ("post", "put", "patch"):
                responses.setdefault("408", _json(_ERROR, "Body not received within SPENDSENTRY_WEB_READ_TIMEOUT_SECONDS."))
                responses.setdefault("413", _json(_ERROR, "Body over SPENDSENTRY_MAX_BODY_BYTES."))
            if path.startswith("/v1/subscriptions") and method in ("post", "put", "patch"):
                responses["422"] = _json(_ERROR, "The webhook destination is refused by the SSRF guard (the reason "
                                                 "says why: not a globally routable address, unresolvable host).")
            if (path.startswith("/v1/") or path == "/metrics") and path != "/v1/slack/interactivity":
                operation.setdefault("security", [{"bearer": []}])
                responses.setdefault("401", _json(_ERROR, "Missing or invalid bearer token."))
                if method != "get":
                    responses["403"] = _json(_ERROR, "A read-only token (SPENDSENTRY_READ_TOKENS): writes need "
                                                     "a token of SPENDSENTRY_API_TOKENS.")


_require_tokens(OPENAPI)
