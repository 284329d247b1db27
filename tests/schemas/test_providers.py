"""Provider usage payloads (as the providers document them) -> canonical, priced events."""

from __future__ import annotations

import pytest

from schemas.errors import SchemaError, ValidationError
from schemas.usage import validate_usage
from streams.core.pricing import PriceCatalogue
from streams.sources.normalize import normalize_payload

TS = "2026-11-27T06:00:01Z"
EPOCH = 1795759201.0  # 2026-11-27T06:00:01Z


@pytest.fixture(scope="module")
def cat() -> PriceCatalogue:
    return PriceCatalogue.bundled()


OPENAI_CHAT = {
    "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1795759201,
    "model": "gpt-4o-2024-08-06", "service_tier": "default", "system_fingerprint": "fp_eb9dce56a8",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!", "refusal": None},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
              "prompt_tokens_details": {"cached_tokens": 400, "audio_tokens": 0},
              "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
}

OPENAI_RESPONSES = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", "object": "response",
    "created_at": 1795759201, "status": "completed", "model": "o3-2025-04-16", "service_tier": "flex",
    "output": [{"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": "...", "annotations": []}]}],
    "usage": {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1000},
              "output_tokens": 1500, "output_tokens_details": {"reasoning_tokens": 1000}, "total_tokens": 3500},
}

ANTHROPIC = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant",
    "content": [{"type": "text", "text": "Hi"}], "model": "claude-sonnet-4-5-20250929",
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 50, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 10000,
              "cache_creation": {"ephemeral_5m_input_tokens": 2000, "ephemeral_1h_input_tokens": 0},
              "output_tokens": 500, "service_tier": "standard"},
}

GEMINI = {
    "candidates": [{"content": {"parts": [{"text": "..."}], "role": "model"}, "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 5000, "candidatesTokenCount": 800, "totalTokenCount": 7000,
                      "cachedContentTokenCount": 2000, "thoughtsTokenCount": 1200,
                      "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5000}]},
    "modelVersion": "gemini-2.5-flash", "responseId": "mIadaOH9GIWz2dMP0qKJkAo",
}

BEDROCK = {
    "ResponseMetadata": {"RequestId": "3ba27fd3-ad03-4a3a-a2b1-4c1e1f4a0b11", "HTTPStatusCode": 200,
                         "HTTPHeaders": {"date": "Fri, 27 Nov 2026 06:00:01 GMT", "content-type": "application/json"}},
    "output": {"message": {"role": "assistant", "content": [{"text": "..."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 100, "outputTokens": 200, "totalTokens": 4300,
              "cacheReadInputTokens": 3000, "cacheWriteInputTokens": 1000},
    "metrics": {"latencyMs": 1290},
}

LITELLM = {
    "id": "chatcmpl-2299b6a3-2a4b-4d42-8f5e-1b6c0a2f0e11", "trace_id": "t-1", "call_type": "acompletion",
    "stream": False, "response_cost": 0.00231, "status": "success", "custom_llm_provider": "anthropic",
    "total_tokens": 2400, "prompt_tokens": 2000, "completion_tokens": 400,
    "startTime": 1795759201.12, "endTime": 1795759203.5, "completionStartTime": 1795759202.0,
    "model": "claude-haiku-4-5", "model_id": "m1", "model_group": "fast", "api_base": "https://api.anthropic.com",
    "metadata": {"user_api_key_hash": "88dc28", "user_api_key_alias": "support-bot-key", "user_api_key_team_id": "t-9",
                 "user_api_key_team_alias": "cx", "user_api_key_user_id": "u-1", "spend_logs_metadata": None,
                 "usage_object": {"prompt_tokens": 2000, "completion_tokens": 400, "total_tokens": 2400,
                                  "prompt_tokens_details": {"cached_tokens": 1500},
                                  "cache_creation_input_tokens": 100, "cache_read_input_tokens": 1500}},
    "cache_hit": None, "request_tags": ["prod", "faq"], "end_user": "acme-corp",
}


def _otel_attr(key, value):
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


OTEL = {"resourceSpans": [{
    "resource": {"attributes": [_otel_attr("service.name", "support-bot"),
                                _otel_attr("deployment.environment.name", "prod")]},
    "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.openai_v2", "version": "2.1b0"}, "spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "chat gpt-4o-mini",
         "kind": 3, "startTimeUnixNano": "1795759200500000000", "endTimeUnixNano": "1795759201000000000",
         "attributes": [_otel_attr("gen_ai.operation.name", "chat"), _otel_attr("gen_ai.provider.name", "openai"),
                        _otel_attr("gen_ai.request.model", "gpt-4o-mini"),
                        _otel_attr("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                        _otel_attr("gen_ai.usage.input_tokens", 10000),
                        _otel_attr("gen_ai.usage.cache_read.input_tokens", 4000),
                        _otel_attr("gen_ai.usage.output_tokens", 1000)]},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "aaa19b7ec3c1b100", "name": "invoke_agent helper",
         "startTimeUnixNano": "1795759200000000000", "endTimeUnixNano": "1795759202000000000",
         "attributes": [_otel_attr("gen_ai.operation.name", "invoke_agent"),
                        _otel_attr("gen_ai.provider.name", "openai"),
                        _otel_attr("gen_ai.usage.input_tokens", 10000),
                        _otel_attr("gen_ai.usage.output_tokens", 1000)]},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "bbb19b7ec3c1b101", "name": "GET /v1/search",
         "startTimeUnixNano": "1795759200000000000", "endTimeUnixNano": "1795759200100000000",
         "attributes": [_otel_attr("http.request.method", "GET")]},
    ]}],
}]}


def one(fmt: str, data, cat: PriceCatalogue) -> dict:
    events = normalize_payload(fmt, data, cat)
    assert len(events) == 1
    validate_usage(events[0])
    return events[0]


def test_openai_chat_completion(cat: PriceCatalogue) -> None:
    """Chat Completions: prompt_tokens include cached; id/created/model come from the body."""
    ev = one("openai", OPENAI_CHAT, cat)
    assert ev["event_id"] == OPENAI_CHAT["id"] and ev["timestamp"] == EPOCH and ev["model"] == "gpt-4o-2024-08-06"
    assert (ev["provider"], ev["input_tokens"], ev["cached_input_tokens"], ev["output_tokens"]) == ("openai", 1200, 400, 300)
    assert ev["service_tier"] == "default"
    # 800*2.5e-6 + 400*1.25e-6 + 300*1e-5 = 0.002 + 0.0005 + 0.003
    assert ev["cost_usd"] == pytest.approx(0.0055)


def test_openai_batch_output_line_is_batch_priced(cat: PriceCatalogue) -> None:
    line = {"id": "batch_req_123", "custom_id": "request-1",
            "response": {"status_code": 200, "request_id": "req_123", "body": OPENAI_CHAT}, "error": None}
    ev = one("openai", line, cat)
    assert ev["service_tier"] == "batch"
    # batch gpt-4o-2024-08-06: in 1.25e-6, out 5e-6; no batch cache price -> standard cache read 1.25e-6
    # 800*1.25e-6 + 400*1.25e-6 + 300*5e-6 = 0.001 + 0.0005 + 0.0015
    assert ev["cost_usd"] == pytest.approx(0.003)


def test_openai_responses_flex_with_reasoning(cat: PriceCatalogue) -> None:
    ev = one("openai-responses", {"type": "response.completed", "sequence_number": 9, "response": OPENAI_RESPONSES}, cat)
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["output_tokens"], ev["reasoning_tokens"]) == (2000, 1000, 1500, 1000)
    assert ev["service_tier"] == "flex" and ev["model"] == "o3-2025-04-16"
    # o3 flex: in 1e-6, cache read 2.5e-7, out 4e-6: 1000*1e-6 + 1000*2.5e-7 + 1500*4e-6
    assert ev["cost_usd"] == pytest.approx(0.00725)


def test_anthropic_input_excludes_cache(cat: PriceCatalogue) -> None:
    """Anthropic input_tokens excludes cache: canonical input = 50 + 10000 + 2000."""
    ev = one("anthropic", {"timestamp": TS, "service": "support-bot", "team": "cx", "response": ANTHROPIC}, cat)
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["cache_creation_input_tokens"]) == (12050, 10000, 2000)
    assert ev["event_id"] == ANTHROPIC["id"] and ev["timestamp"] == EPOCH
    assert (ev["service"], ev["team"], ev["service_tier"]) == ("support-bot", "cx", "default")
    # 50*3e-6 + 10000*3e-7 + 2000*3.75e-6 + 500*1.5e-5 = 0.00015 + 0.003 + 0.0075 + 0.0075
    assert ev["cost_usd"] == pytest.approx(0.01815)


def test_anthropic_without_timestamp_is_a_precise_error() -> None:
    with pytest.raises(ValidationError) as info:
        normalize_payload("anthropic", ANTHROPIC)
    assert info.value.field == "timestamp" and "envelope" in info.value.rule


def test_anthropic_batch_result_is_batch_priced(cat: PriceCatalogue) -> None:
    line = {"custom_id": "r1", "result": {"type": "succeeded", "message": ANTHROPIC}}
    ev = one("anthropic", {"timestamp": TS, "response": line}, cat)
    assert ev["service_tier"] == "batch"
    # batch: in 1.5e-6, read 1.5e-7, write 1.875e-6, out 7.5e-6
    # 50*1.5e-6 + 10000*1.5e-7 + 2000*1.875e-6 + 500*7.5e-6 = 0.000075 + 0.0015 + 0.00375 + 0.00375
    assert ev["cost_usd"] == pytest.approx(0.009075)


def test_gemini_usage_metadata_thoughts_are_output(cat: PriceCatalogue) -> None:
    ev = one("gemini", {"timestamp": TS, "response": GEMINI}, cat)
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["output_tokens"], ev["reasoning_tokens"]) == (5000, 2000, 2000, 1200)
    assert (ev["provider"], ev["model"], ev["event_id"]) == ("gemini", "gemini-2.5-flash", GEMINI["responseId"])
    # 3000*3e-7 + 2000*3e-8 + 2000*2.5e-6 = 0.0009 + 0.00006 + 0.005
    assert ev["cost_usd"] == pytest.approx(0.00596)
    vertex = one("gemini", {"timestamp": TS, "provider": "gcp.vertex_ai",
                            "response": {**GEMINI, "createTime": "2026-11-27T06:00:01.120Z"}}, cat)
    assert vertex["provider"] == "gcp.vertex_ai" and vertex["timestamp"] == pytest.approx(EPOCH + 0.12)


def test_bedrock_converse_input_excludes_cache(cat: PriceCatalogue) -> None:
    ev = one("bedrock", {"model": "anthropic.claude-sonnet-4-5-20250929-v1:0", "team": "ml", "response": BEDROCK}, cat)
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["cache_creation_input_tokens"]) == (4100, 3000, 1000)
    assert ev["event_id"] == "3ba27fd3-ad03-4a3a-a2b1-4c1e1f4a0b11" and ev["timestamp"] == EPOCH
    assert ev["provider"] == "aws.bedrock"
    # 100*3e-6 + 3000*3e-7 + 1000*3.75e-6 + 200*1.5e-5 = 0.0003 + 0.0009 + 0.00375 + 0.003
    assert ev["cost_usd"] == pytest.approx(0.00795)


def test_bedrock_without_model_says_so() -> None:
    with pytest.raises(ValidationError, match="model"):
        normalize_payload("bedrock", BEDROCK)


def test_azure_openai_is_openai_shaped(cat: PriceCatalogue) -> None:
    body = {**OPENAI_CHAT, "model": "gpt-4o-2024-11-20", "prompt_filter_results": [{"prompt_index": 0}]}
    ev = one("azure-openai", body, cat)
    assert ev["provider"] == "azure"
    assert ev["cost_usd"] == pytest.approx(0.0055)  # azure/gpt-4o-2024-11-20: same list prices as gpt-4o


def test_litellm_payload_keeps_response_cost() -> None:
    ev = normalize_payload("litellm", LITELLM, PriceCatalogue.bundled())[0]
    assert ev["cost_usd"] == 0.00231  # LiteLLM's own cost is kept
    assert (ev["provider"], ev["model"], ev["team"], ev["operation"]) == ("anthropic", "claude-haiku-4-5", "cx", "acompletion")
    assert (ev["input_tokens"], ev["cached_input_tokens"], ev["cache_creation_input_tokens"]) == (2000, 1500, 100)
    assert ev["tags"] == {"litellm.key_alias": "support-bot-key", "litellm.user_id": "u-1",
                          "litellm.request_tags": "prod,faq", "end_user": "acme-corp"}
    assert ev["timestamp"] == pytest.approx(1795759201.12)


def test_otel_spans_one_event_per_llm_span(cat: PriceCatalogue) -> None:
    events = normalize_payload("otel", OTEL, cat)
    assert len(events) == 1  # the agent span (aggregate) and the HTTP span are not counted
    ev = events[0]
    assert ev["event_id"] == "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"
    assert (ev["provider"], ev["model"], ev["service"], ev["environment"], ev["operation"]) == (
        "openai", "gpt-4o-mini-2024-07-18", "support-bot", "prod", "chat")
    assert ev["timestamp"] == 1795759201.0  # the span's end
    # gpt-4o-mini: 6000*1.5e-7 + 4000*7.5e-8 + 1000*6e-7 = 0.0009 + 0.0003 + 0.0006
    assert ev["cost_usd"] == pytest.approx(0.0018)


def test_canonical_passthrough_and_array(cat: PriceCatalogue) -> None:
    event = {"event_id": "e1", "timestamp": TS, "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
             "service_tier": "priority"}
    events = normalize_payload("canonical", [event, {**event, "event_id": "e2", "cost_usd": 1.0}], cat)
    assert events[0]["cost_usd"] == pytest.approx(1000 * 4.25e-6) and events[1]["cost_usd"] == 1.0


def test_envelope_fills_what_the_body_lacks() -> None:
    env = {"event_id": "mine", "timestamp": "2020-01-01T00:00:00Z", "model": "other", "team": "cx",
           "tags": {"tenant": "t1"}, "response": OPENAI_CHAT}
    ev = normalize_payload("openai", env)[0]
    assert ev["event_id"] == OPENAI_CHAT["id"] and ev["model"] == "gpt-4o-2024-08-06"  # body wins
    assert ev["team"] == "cx" and ev["tags"] == {"tenant": "t1"}


@pytest.mark.parametrize(
    ("fmt", "data", "fragment"),
    [
        ("openai", {"id": "x", "created": 1795759201, "model": "gpt-4o"}, "usage"),
        ("openai", {**OPENAI_CHAT, "usage": {"prompt_tokens": -1}}, "usage.prompt_tokens"),
        ("openai", {**OPENAI_CHAT, "usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 11}}},
         "cached_input_tokens"),
        ("gemini", {"timestamp": TS, "response": {"modelVersion": "g"}}, "usageMetadata"),
        ("otel", {"spans": []}, "resourceSpans"),
        ("openai", [OPENAI_CHAT, {"nope": 1}], "[1]"),
        ("canonical", {"event_id": "e"}, "timestamp"),
    ],
)
def test_bad_payloads_raise_precise_errors(fmt: str, data, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        normalize_payload(fmt, data)
    assert fragment in str(info.value)


def test_unknown_format() -> None:
    with pytest.raises(SchemaError, match="unknown format"):
        normalize_payload("cohere", {})


def test_service_tier_is_validated() -> None:
    base = {"event_id": "e", "timestamp": TS, "provider": "openai", "model": "gpt-4o"}
    assert validate_usage({**base, "service_tier": "batch"}).to_dict()["service_tier"] == "batch"
    with pytest.raises(ValidationError, match="service_tier"):
        validate_usage({**base, "service_tier": "scale"})


# -- the wrong --format is an error naming the format the body looks like, never a $0 event ------

RESPONSES_BODY = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b", "object": "response", "created_at": 1795759201,
    "status": "completed", "model": "gpt-4o-2024-08-06", "output": [],
    "usage": {"input_tokens": 328, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 52,
              "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 380},
}
ANTHROPIC_BODY = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Hi"}], "stop_reason": "end_turn",
    "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
}


@pytest.mark.parametrize("fmt, body, shape", [
    ("openai", RESPONSES_BODY, "openai-responses"),
    ("openai", {"timestamp": TS, "response": ANTHROPIC_BODY}, "anthropic"),
    ("anthropic", {"timestamp": TS, "response": OPENAI_CHAT}, "openai"),
    ("openai-responses", OPENAI_CHAT, "openai"),
    ("gemini", OPENAI_CHAT, "openai"),
    ("openai", {"timestamp": TS, "model": "m", "response": {"usage": {"input_tokens": 5, "output_tokens": 1}}},
     "openai-responses or anthropic"),
    ("bedrock", {"timestamp": TS, "model": "m", "response": {"usageMetadata": {"promptTokenCount": 5}}}, "gemini"),
])
def test_a_body_under_the_wrong_format_names_the_format_it_looks_like(fmt: str, body: dict, shape: str) -> None:
    """A Responses body under --format openai yielded 0 tokens and cost_usd 0.0, exit 0."""
    with pytest.raises(SchemaError, match=f"^looks like {shape}, not {fmt}$"):
        normalize_payload(fmt, body)


def test_normalize_cli_names_the_line_and_the_format(tmp_path, capsys) -> None:
    import json

    from streams.cli.main import main

    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(OPENAI_CHAT) + "\n\n" + json.dumps(RESPONSES_BODY) + "\n")
    assert main(["normalize", "--format", "openai", str(path)]) == 1
    assert "line 3: looks like openai-responses, not openai" in capsys.readouterr().err


def test_azure_responses_body_reads_created_at(cat: PriceCatalogue) -> None:
    """Azure OpenAI serves the Responses API: its body was refused with 'body has no timestamp'."""
    [ev] = normalize_payload("azure-openai", RESPONSES_BODY, cat)
    assert (ev["provider"], ev["timestamp"], ev["input_tokens"], ev["output_tokens"]) == ("azure", 1795759201.0, 328, 52)
    assert ev["cost_usd"] == pytest.approx(328 * 2.5e-6 + 52 * 1e-5)


def test_bedrock_envelope_model_id_names_the_model(cat: PriceCatalogue) -> None:
    body = {"output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 1000, "outputTokens": 100, "totalTokens": 1100}}
    [ev] = normalize_payload("bedrock", {"timestamp": TS, "modelId": "anthropic.claude-sonnet-4-5-20250929-v1:0",
                                         "response": body}, cat)
    assert ev["model"] == "anthropic.claude-sonnet-4-5-20250929-v1:0"
    assert ev["cost_usd"] == pytest.approx(1000 * 3e-6 + 100 * 1.5e-5)


# -- LiteLLM as LiteLLM writes it --------------------------------------------------------------------

STANDARD_LOGGING_PAYLOAD = {
    "id": "chatcmpl-2299b6a2-82a3-465a-b47c-04e685a2227f", "trace_id": "97311c8c-e7f6-4d1e-8f05-7e2b1c0b3a6f",
    "call_type": "acompletion", "stream": False, "response_cost": 0.00525, "status": "success",
    "total_tokens": 1500, "prompt_tokens": 1200, "completion_tokens": 300,
    "startTime": 1795759201.123, "endTime": 1795759202.5, "completionStartTime": 1795759202.5,
    "model": "gpt-4o", "model_id": "a1b2", "model_group": "gpt-4o", "api_base": "https://api.openai.com/v1",
    "custom_llm_provider": "openai", "cache_hit": None, "request_tags": ["prod"], "end_user": "",
    "metadata": {"user_api_key_hash": "88dc28", "user_api_key_alias": "bot", "user_api_key_team_id": "t-1",
                 "user_api_key_team_alias": "support", "user_api_key_user_id": "u-1", "spend_logs_metadata": None},
    "messages": [{"role": "user", "content": "Hi"}],
    "response": {"id": "chatcmpl-2299", "object": "chat.completion", "created": 1795759202, "model": "gpt-4o",
                 "choices": [], "usage": {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}},
    "model_parameters": {}, "hidden_params": {"response_cost": 0.00525}, "error_str": None,
}
SPEND_LOG_ROW = {
    "request_id": "chatcmpl-5c7b0a1e", "call_type": "acompletion", "api_key": "88dc28d0f030c55ed4ab77ed8faf098196cb1c05df778539800c9f1243fe6b4b",
    "spend": 0.00525, "total_tokens": 1500, "prompt_tokens": 1200, "completion_tokens": 300,
    "startTime": "2026-11-27 06:00:01.123000", "endTime": "2026-11-27 06:00:02.500000",
    "completionStartTime": "2026-11-27 06:00:02.500000", "model": "gpt-4o", "model_id": "a1b2",
    "model_group": "gpt-4o", "custom_llm_provider": "openai", "api_base": "https://api.openai.com/v1", "user": "",
    "metadata": '{"user_api_key_alias": "bot", "user_api_key_team_alias": "support", "user_api_key_user_id": "u-1"}',
    "cache_hit": "False", "cache_key": "Cache OFF", "request_tags": '["prod"]', "team_id": "t-1", "end_user": "",
    "requester_ip_address": "", "messages": {}, "response": {}, "status": "success",
}


def test_litellm_standard_logging_payload_is_not_taken_for_an_envelope(cat: PriceCatalogue) -> None:
    """Its ``response`` object made the adapter unwrap it: every line failed 'timestamp: is required'."""
    [ev] = normalize_payload("litellm", STANDARD_LOGGING_PAYLOAD, cat)
    assert ev["event_id"] == "chatcmpl-2299b6a2-82a3-465a-b47c-04e685a2227f"
    assert (ev["timestamp"], ev["cost_usd"], ev["team"]) == (1795759201.123, 0.00525, "support")
    assert (ev["input_tokens"], ev["output_tokens"]) == (1200, 300)


def test_litellm_spend_log_row_keeps_spend_and_request_id_and_reads_naive_times_as_utc(cat: PriceCatalogue) -> None:
    """The row's own spend ($0.00525), not a reprice ($0.0075); request_id kept; naive startTime = UTC."""
    [ev] = normalize_payload("litellm", SPEND_LOG_ROW, cat)
    assert ev["event_id"] == "chatcmpl-5c7b0a1e"
    assert ev["cost_usd"] == 0.00525
    assert ev["timestamp"] == pytest.approx(EPOCH + 0.123)
    assert (ev["team"], ev["tags"]["litellm.key_alias"], ev["tags"]["litellm.request_tags"]) == ("support", "bot", "prod")
