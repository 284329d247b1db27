"""Bearer tokens: required, compared against every configured token."""

from __future__ import annotations

from streams.api.auth import READ_ONLY, bearer_error, read_error, write_error


def test_valid_token_of_several_passes() -> None:
    assert bearer_error({"Authorization": "Bearer two"}, ("one", "two")) is None
    assert bearer_error({"Authorization": "bearer one"}, ("one", "two")) is None


def test_missing_wrong_or_unconfigured_tokens_are_refused() -> None:
    assert bearer_error({}, ("one",)) == "missing bearer token (Authorization: Bearer <token>)"
    assert bearer_error({"Authorization": "Basic one"}, ("one",)) == "missing bearer token (Authorization: Bearer <token>)"
    assert bearer_error({"Authorization": "Bearer on"}, ("one",)) == "invalid bearer token"
    assert bearer_error({"Authorization": "Bearer one"}, ()).startswith("no API tokens are configured")


class _Tokens:
    def __init__(self, api: tuple[str, ...], read: tuple[str, ...]) -> None:
        self.api_tokens, self.read_tokens = api, read


def test_reads_take_a_read_or_a_write_token_once_any_is_configured() -> None:
    settings = _Tokens(("w" * 16,), ("r" * 16,))
    assert read_error({"Authorization": "Bearer " + "r" * 16}, settings) is None
    assert read_error({"Authorization": "Bearer " + "w" * 16}, settings) is None
    assert read_error({}, settings) == "missing bearer token (Authorization: Bearer <token>)"
    assert read_error({"Authorization": "Bearer " + "x" * 16}, _Tokens((), ("r" * 16,))) == "invalid bearer token"
    assert bearer_error({"Authorization": "Bearer " + "r" * 16}, settings.api_tokens) == "invalid bearer token"
    assert read_error({}, _Tokens((), ())) is None  # no token at all: loopback only, enforced at start


def test_a_read_token_on_a_write_is_forbidden_not_unauthenticated() -> None:
    settings = _Tokens(("w" * 16,), ("r" * 16,))
    assert write_error({"Authorization": "Bearer " + "w" * 16}, settings) is None
    assert write_error({"Authorization": "Bearer " + "r" * 16}, settings) == (403, READ_ONLY)
    assert write_error({"Authorization": "Bearer " + "x" * 16}, settings) == (401, "invalid bearer token")
    assert write_error({}, settings) == (401, "missing bearer token (Authorization: Bearer <token>)")
    assert write_error({"Authorization": "Bearer " + "r" * 16}, _Tokens((), ("r" * 16,))) == (403, READ_ONLY)
