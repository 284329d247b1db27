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


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "spendsentry", "version": "0.1.0",
             "description": "Real-time AI spend windows and cost alerts."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                   "description": "A token from SPENDSENTRY_API_TOKENS."}}},
    "paths": {
        "/healthz": {"get": {
            "summary": "Readiness: tables recovered and no rebalance in progress.",
            "responses": {
                "200": _json({"type": "object"}, "Ready."),
                "503": _json({"type": "object"}, "Starting or rebalancing."),
            },
        }},
        "/v1/alerts": {"get": {
            "summary": "Recent alerts, newest first, with their deliveries.",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": {
                "200": _json({"type": "object", "properties": {"alerts": {"type": "array", "items": {
                    "type": "object", "properties": {"alert": _ALERT, "deliveries": {"type": "array", "items": _DELIVERY}},
                }}}}, "Recent alerts."),
                "400": _json(_ERROR, "Bad query parameter."),
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
            }}, "Spend windows (or, with group_by/window, segmented spend)."),
                "400": _json(_ERROR, "Bad group_by or window (the error names the parameter and the rule).")},
        }},
        "/v1/events": {"post": {
            "summary": "Ingest usage events: one JSON object, a JSON array, or NDJSON.",
            "security": [{"bearer": []}],
            "parameters": [{"name": "format", "in": "query", "schema": {"type": "string", "default": "canonical"},
                            "description": "canonical, or a provider format (see the README)."}],
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
        "/metrics": {"get": {
            "summary": "Prometheus metrics (text exposition format 0.0.4).",
            "responses": {"200": {"description": "Metrics.", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        }},
        "/openapi.json": {"get": {"summary": "This document.", "responses": {"200": _json({"type": "object"}, "OpenAPI 3.")}}},
    },
}
