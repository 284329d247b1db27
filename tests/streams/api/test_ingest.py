"""HTTP ingest body parsing: object, array or NDJSON; good items kept, bad ones explained."""

from __future__ import annotations

import orjson

from streams.api.ingest import parse_events

GOOD = {"event_id": "e1", "timestamp": 1795759200, "provider": "openai", "model": "gpt-4o", "input_tokens": 5}


def test_one_object() -> None:
    events, errors = parse_events(orjson.dumps(GOOD))
    assert [e.event_id for e in events] == ["e1"] and errors == []


def test_array_keeps_good_and_explains_bad() -> None:
    body = orjson.dumps([GOOD, {**GOOD, "event_id": "e2", "input_tokens": -1}, 3])
    events, errors = parse_events(body)
    assert [e.event_id for e in events] == ["e1"]
    assert errors == [
        {"index": 1, "reason": "input_tokens: must be >= 0 (got -1)", "field": "input_tokens", "value": -1,
         "rule": "must be >= 0"},
        {"index": 2, "reason": "$: event must be a JSON object (got 'int')", "field": "$", "value": "int",
         "rule": "event must be a JSON object"},
    ]


def test_ndjson_with_a_broken_line() -> None:
    body = orjson.dumps(GOOD) + b"\n{oops\n\n" + orjson.dumps({**GOOD, "event_id": "e3"}) + b"\n"
    events, errors = parse_events(body)
    assert [e.event_id for e in events] == ["e1", "e3"]
    assert errors[0]["index"] == 1 and errors[0]["reason"].startswith("invalid JSON")


def test_provider_format_goes_through_the_normalizer() -> None:
    calls = []

    def normalize(fmt, item):
        calls.append(fmt)
        return [{**GOOD, "event_id": item["id"]}]

    events, errors = parse_events(orjson.dumps({"id": "resp-1"}), "openai", normalize)
    assert calls == ["openai"] and [e.event_id for e in events] == ["resp-1"] and errors == []
