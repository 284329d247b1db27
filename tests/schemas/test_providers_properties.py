"""Hostile provider payloads: every adapter returns validated canonical events or raises a typed
:class:`~schemas.errors.SchemaError` with a reason; never another exception.

Payloads are realistic skeletons of each provider format with hostile values spliced in at
random places (wrong types, NaN/Infinity, negative and absurd token counts, timestamps far in the
past or future, deep nesting), plus wholly random JSON-like values. Python dicts, not JSON text:
``normalize_body`` is also called on payloads decoded by ``json`` (which accepts NaN/Infinity).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.errors import SchemaError, ValidationError
from schemas.providers import FORMATS, normalize_body
from schemas.usage import validate_usage

TS = 1795759200  # 2026-11-27T06:00:00Z

SKELETONS: dict[str, dict[str, Any]] = {
    "openai": {"id": "chatcmpl-1", "created": TS, "model": "gpt-4o", "service_tier": "default",
               "usage": {"prompt_tokens": 100, "completion_tokens": 20,
                         "prompt_tokens_details": {"cached_tokens": 10},
                         "completion_tokens_details": {"reasoning_tokens": 5}}},
    "azure-openai": {"custom_id": "r1", "response": {"status_code": 200, "body": {
        "id": "c1", "created": TS, "model": "gpt-4o", "usage": {"prompt_tokens": 5, "completion_tokens": 1}}}},
    "openai-responses": {"type": "response.completed", "response": {
        "id": "resp_1", "created_at": TS, "model": "o3", "service_tier": "flex",
        "usage": {"input_tokens": 100, "output_tokens": 50, "input_tokens_details": {"cached_tokens": 20},
                  "output_tokens_details": {"reasoning_tokens": 30}}}},
    "anthropic": {"timestamp": TS, "response": {"id": "msg_1", "model": "claude-sonnet-4", "type": "message",
                  "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5,
                            "output_tokens": 7, "service_tier": "standard",
                            "output_tokens_details": {"thinking_tokens": 3}}}},
    "gemini": {"responseId": "g1", "createTime": "2026-11-27T06:00:00Z", "modelVersion": "gemini-2.5-pro",
               "usageMetadata": {"promptTokenCount": 100, "cachedContentTokenCount": 10, "candidatesTokenCount": 20,
                                 "thoughtsTokenCount": 4, "toolUsePromptTokenCount": 2}},
    "bedrock": {"modelId": "anthropic.claude-3-haiku", "serviceTier": {"type": "default"},
                "usage": {"inputTokens": 10, "outputTokens": 5, "cacheReadInputTokens": 3, "cacheWriteInputTokens": 1},
                "ResponseMetadata": {"RequestId": "req-1",
                                     "HTTPHeaders": {"date": "Fri, 27 Nov 2026 06:00:00 GMT"}}},
    "litellm": {"id": "ll-1", "startTime": TS, "model": "openai/gpt-4o", "custom_llm_provider": "openai",
                "prompt_tokens": 100, "completion_tokens": 10, "response_cost": 0.01, "call_type": "completion",
                "request_tags": ["a", "b"], "end_user": "u1",
                "metadata": {"user_api_key_team_alias": "cx", "user_api_key_alias": "k",
                             "usage_object": {"prompt_tokens_details": {"cached_tokens": 10},
                                              "cache_creation_input_tokens": 0,
                                              "completion_tokens_details": {"reasoning_tokens": 2}}}},
    "otel": {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "bot"}}]},
        "scopeSpans": [{"spans": [{"traceId": "t1", "spanId": "s1", "startTimeUnixNano": str(TS * 10**9),
                                   "endTimeUnixNano": str(TS * 10**9 + 5), "attributes": [
            {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
            {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
            {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}},
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}]}]}]}]},
    "canonical": {"event_id": "e1", "timestamp": TS, "provider": "openai", "model": "gpt-4o",
                  "input_tokens": 1, "output_tokens": 1},
}


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


hostile_scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([10**400, -(10**400), 2**63, -1, 0, 2**64 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 0.5]),
    st.text(max_size=40),
    st.sampled_from(["", "NaN", "Infinity", "-1", "1e400", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00",
                     "Fri, 31 Dec 9999 23:59:59 GMT", "\ud800", "x" * 5000, "2026-11-27T06:00:00"]),
    st.sampled_from([-(10**12), 10**12, 946684799, 4102444800, 1795759200000]),  # far past/future, ms
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10,
)
deep_values = st.sampled_from([50, 400, 900]).map(_nested)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (dict keys / list indexes) into a skeleton, the root excluded."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, prefix + (key,))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, prefix + (index,))
    return out


def _splice(data: Any, path: tuple, replacement: Any) -> Any:
    """A copy of ``data`` with the value at ``path`` replaced (unchanged when the path is gone)."""
    data = copy.deepcopy(data)
    node = data
    try:
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = replacement
    except (KeyError, IndexError, TypeError):
        pass
    return data


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, Any]:
    """A provider skeleton with one to three of its values replaced by hostile ones."""
    fmt = draw(st.sampled_from(sorted(SKELETONS)))
    paths = _paths(SKELETONS[fmt])
    data: Any = SKELETONS[fmt]
    for path in draw(st.lists(st.sampled_from(paths), min_size=1, max_size=3)):
        data = _splice(data, path, draw(hostile_values))
    return fmt, data


def _check(fmt: str, data: Any) -> None:
    try:
        events = normalize_body(fmt, data)
    except SchemaError as exc:
        assert exc.reason  # a clear reason
        if isinstance(exc, ValidationError):
            assert exc.field and exc.rule
            exc.as_dict()  # renderable for an API error / dead-letter header
        return
    for event in events:
        again = validate_usage(event)  # what comes out is canonical and valid
        assert again.input_tokens >= again.cached_input_tokens >= 0
        assert math.isfinite(again.timestamp)


def test_skeletons_are_valid() -> None:
    for fmt, body in SKELETONS.items():
        assert normalize_body(fmt, body), fmt


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_provider_payloads_raise_only_typed_errors(case: tuple[str, Any]) -> None:
    _check(*case)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(FORMATS), hostile_values | deep_values)
def test_arbitrary_values_raise_only_typed_errors(fmt: str, data: Any) -> None:
    _check(fmt, data)


SWEEP_VALUES = [None, True, 0, -1, 1.5, math.nan, math.inf, 10**30, 10**400, "", "x", "NaN", [], [1], [[1]], {},
                {"a": 1}, "0001-01-01T00:00:00Z", 4102444800, -(10**12)]


@pytest.mark.parametrize("fmt", sorted(SKELETONS))
def test_every_field_of_every_format_replaced_by_each_hostile_value(fmt: str) -> None:
    """Exhaustive sweep (cheap, deterministic) complementing the random search above."""
    skeleton = SKELETONS[fmt]
    for path in _paths(skeleton):
        for value in SWEEP_VALUES:
            _check(fmt, _splice(skeleton, path, value))
        _check(fmt, _splice(skeleton, path[:-1], SWEEP_VALUES[-4])) if len(path) > 1 else None


@pytest.mark.parametrize("fmt", sorted(SKELETONS))
@pytest.mark.parametrize("value", [math.nan, math.inf, -1, 1.5, 10**400, "12", True])
def test_bad_token_counts_name_the_field(fmt: str, value: Any) -> None:
    """Every token counter of every format: NaN, Infinity, negative, fractional, absurd, string, bool."""
    skeleton = SKELETONS[fmt]
    token_paths = [p for p in _paths(skeleton) if p and isinstance(p[-1], str) and "oken" in p[-1]
                   and isinstance(_get(skeleton, p), int)]
    for path in token_paths:
        data = _splice(skeleton, path, value)
        if value == 10**400:
            try:
                normalize_body(fmt, data)
            except ValidationError:
                pass
            continue
        with pytest.raises(ValidationError) as caught:
            normalize_body(fmt, data)
        assert caught.value.rule, (fmt, path)


def _get(data: Any, path: tuple) -> Any:
    for step in path:
        data = data[step]
    return data


@pytest.mark.parametrize("fmt", [f for f in sorted(SKELETONS) if f != "otel"])
def test_deeply_nested_junk_without_an_id_is_a_typed_error_or_accepted(fmt: str) -> None:
    """No ``event_id``: the id is a hash of the payload; deep nesting must not blow the stack."""
    data = copy.deepcopy(SKELETONS[fmt])
    body = data.get("response") if fmt == "anthropic" else data
    for name in ("id", "event_id", "responseId"):
        if isinstance(body, dict):
            body.pop(name, None)
    data.pop("ResponseMetadata", None)
    data["junk"] = _nested(5000)
    _check(fmt, data)
