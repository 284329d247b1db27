"""A validation error's ``as_dict`` goes into API answers and dead-letter headers as JSON: it must
always encode, whatever the offending value was."""

from __future__ import annotations

import math

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.errors import ValidationError
from streams.core.engine import Engine, EngineConfig
from tests.streams.core.test_engine import FlatPricer

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(max_size=10)
    | st.sampled_from([2**64, -(2**63) - 1, 10**400, math.nan, math.inf, float(2**70), object()]),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3), max_leaves=8)


@settings(max_examples=300, deadline=None)
@given(values)
def test_as_dict_always_encodes(value: object) -> None:
    record = ValidationError("field", value, "rule").as_dict()
    orjson.dumps(record)  # raised TypeError for integers beyond 64 bits before the fix
    assert record["field"] == "field" and record["rule"] == "rule"


def test_dead_letter_error_header_encodes_for_a_token_count_of_1e20() -> None:
    """The worker puts ``orjson.dumps(dead.error)`` in a header: 1e20 tokens must not crash it."""
    engine = Engine(EngineConfig(), FlatPricer())
    (dead,) = engine.ingest(b'{"event_id":"a","timestamp":1795759200,"provider":"p","model":"m","input_tokens":1e20}')
    assert dead.error["field"] == "input_tokens"
    orjson.dumps(dead.error)
