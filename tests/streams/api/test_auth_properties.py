"""Any Authorization header, including bytes that are not UTF-8 (aiohttp hands them over as
surrogate escapes), is answered with a reason, never an exception (which the worker turned into 500)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.api.auth import bearer_error


def test_non_utf8_header_bytes_are_an_invalid_token() -> None:
    header = b"Bearer \xc3\xa9\xff".decode("utf-8", "surrogateescape")  # as aiohttp decodes it
    assert bearer_error({"Authorization": header}, ("tok",)) == "invalid bearer token"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40),
       st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=3))
def test_any_header_gets_a_reason_or_passes(presented: str, tokens: list[str]) -> None:
    result = bearer_error({"Authorization": f"Bearer {presented}"}, tuple(tokens))
    assert result is None or isinstance(result, str)
    if presented in tokens:
        assert result is None
