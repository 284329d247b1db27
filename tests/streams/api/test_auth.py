"""Bearer tokens: required, compared against every configured token."""

from __future__ import annotations

from streams.api.auth import bearer_error


def test_valid_token_of_several_passes() -> None:
    assert bearer_error({"Authorization": "Bearer two"}, ("one", "two")) is None
    assert bearer_error({"Authorization": "bearer one"}, ("one", "two")) is None


def test_missing_wrong_or_unconfigured_tokens_are_refused() -> None:
    assert bearer_error({}, ("one",)) == "missing bearer token (Authorization: Bearer <token>)"
    assert bearer_error({"Authorization": "Basic one"}, ("one",)) == "missing bearer token (Authorization: Bearer <token>)"
    assert bearer_error({"Authorization": "Bearer on"}, ("one",)) == "invalid bearer token"
    assert bearer_error({"Authorization": "Bearer one"}, ()).startswith("no API tokens are configured")
