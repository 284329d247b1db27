"""Standard Webhooks v1 signing and verification."""

from __future__ import annotations

import base64

import pytest

from alerts.signing import SignatureError, decode_secret, generate_secret, sign, signed_headers, verify
from schemas.errors import ConfigError, SpendSentryError

# Published vector: standard-webhooks/standard-webhooks libraries/python/tests/test_webhooks.py::test_sign_function
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = 1795759200


def headers(body: bytes = b'{"a":1}', *, ts: int = NOW, secret: str = SPEC_SECRET) -> dict[str, str]:
    return signed_headers(secret, "msg_1", ts, body)


def test_sign_matches_the_spec_test_vector() -> None:
    """Our HMAC matches the reference library's published signature."""
    assert SPEC_SIGNATURE == sign(SPEC_SECRET, SPEC_MSG_ID, SPEC_TS, SPEC_BODY)


def test_verify_accepts_the_spec_test_vector() -> None:
    """The published vector verifies, with and without the whsec_ prefix."""
    hdrs = {"webhook-id": SPEC_MSG_ID, "webhook-timestamp": str(SPEC_TS), "webhook-signature": SPEC_SIGNATURE}
    verify(SPEC_SECRET, hdrs, SPEC_BODY, now=SPEC_TS)
    verify(SPEC_SECRET.removeprefix("whsec_"), hdrs, SPEC_BODY, now=SPEC_TS)


def test_round_trip_and_header_case() -> None:
    """What we sign verifies, whatever the header-name case."""
    hdrs = headers()
    verify(SPEC_SECRET, hdrs, b'{"a":1}', now=NOW)
    verify(SPEC_SECRET, {k.title(): v for k, v in hdrs.items()}, b'{"a":1}', now=NOW)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing: str) -> None:
    """Each of the three headers is required."""
    hdrs = headers()
    del hdrs[missing]
    with pytest.raises(SignatureError) as info:
        verify(SPEC_SECRET, hdrs, b'{"a":1}', now=NOW)
    assert ("missing_header", missing) == (info.value.reason, info.value.header)
    assert isinstance(info.value, SpendSentryError)


@pytest.mark.parametrize(
    ("ts", "reason"),
    [(NOW - 301, "stale_timestamp"), (NOW + 301, "future_timestamp")],
)
def test_timestamp_outside_tolerance_is_rejected(ts: int, reason: str) -> None:
    """A replay older or newer than five minutes fails even with a valid signature."""
    with pytest.raises(SignatureError) as info:
        verify(SPEC_SECRET, headers(ts=ts), b'{"a":1}', now=NOW)
    assert reason == info.value.reason


def test_timestamp_at_the_tolerance_edge_passes() -> None:
    """Exactly 300 s either way is still accepted."""
    verify(SPEC_SECRET, headers(ts=NOW - 300), b'{"a":1}', now=NOW)
    verify(SPEC_SECRET, headers(ts=NOW + 300), b'{"a":1}', now=NOW)


def test_non_integer_timestamp_is_rejected() -> None:
    hdrs = headers() | {"webhook-timestamp": "hello"}
    with pytest.raises(SignatureError, match="bad_timestamp"):
        verify(SPEC_SECRET, hdrs, b'{"a":1}', now=NOW)


def test_tampered_body_wrong_secret_and_garbage_are_rejected() -> None:
    """Any change to body, secret or signature text fails."""
    with pytest.raises(SignatureError, match="bad_signature"):
        verify(SPEC_SECRET, headers(), b'{"a":2}', now=NOW)
    with pytest.raises(SignatureError, match="bad_signature"):
        verify(generate_secret(), headers(), b'{"a":1}', now=NOW)
    with pytest.raises(SignatureError, match="bad_signature"):
        verify(SPEC_SECRET, headers() | {"webhook-signature": "v1,!!notbase64 v1a,abc"}, b'{"a":1}', now=NOW)


def test_one_matching_signature_among_several_passes() -> None:
    """Rotation: the header may carry several space-separated signatures, other versions included."""
    good = headers()["webhook-signature"]
    other = sign(generate_secret(), "msg_1", NOW, b'{"a":1}')
    hdrs = headers() | {"webhook-signature": f"{other} v2,{good[3:]} {good} v1a,xyz"}
    verify(SPEC_SECRET, hdrs, b'{"a":1}', now=NOW)


def test_generate_secret_is_whsec_base64_of_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_") and len(decode_secret(secret)) == 32
    assert secret != generate_secret()
    with pytest.raises(ConfigError):
        generate_secret(8)


def test_malformed_secret_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="whsec_"):
        sign("whsec_not base64!", "msg_1", NOW, b"")
    assert base64.b64decode(SPEC_SECRET[6:]) == decode_secret(SPEC_SECRET)
