"""Standard Webhooks v1 signatures (HMAC-SHA256), for sending and for verifying.

Signed content is ``{webhook-id}.{webhook-timestamp}.{raw body}``; the signature header holds
one or more space-separated ``v1,<base64>`` entries so that secrets can be rotated. Secrets are
shown as ``whsec_<base64 of 24-64 random bytes>``. Spec: github.com/standard-webhooks/standard-webhooks.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

from schemas.errors import ConfigError, SpendSentryError

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
DEFAULT_TOLERANCE_S = 300


class SignatureError(SpendSentryError):
    """A webhook request failed verification. ``reason`` is a short machine-readable code:
    ``missing_header``, ``bad_timestamp``, ``stale_timestamp``, ``future_timestamp`` or ``bad_signature``.
    """

    def __init__(self, reason: str, detail: str, *, header: str | None = None) -> None:
        self.reason = reason
        self.header = header
        super().__init__(f"{reason}: {detail}")


def generate_secret(nbytes: int = 32) -> str:
    """A fresh endpoint secret, ``whsec_<base64>``; the spec asks for 24 to 64 random bytes."""
    if not 24 <= nbytes <= 64:
        raise ConfigError(f"webhook secret length must be 24-64 bytes, got {nbytes}")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def decode_secret(secret: str) -> bytes:
    """The raw key of a ``whsec_<base64>`` secret (the prefix is optional, as in the reference library)."""
    encoded = secret[len(SECRET_PREFIX):] if secret.startswith(SECRET_PREFIX) else secret
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"webhook secret must be {SECRET_PREFIX}<base64>: {exc}") from None
    if not key:
        raise ConfigError("webhook secret is empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value, ``v1,<base64>``, for the exact bytes that will be sent."""
    digest = _digest(decode_secret(secret), msg_id, int(timestamp), body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        HEADER_ID: msg_id,
        HEADER_TIMESTAMP: str(int(timestamp)),
        HEADER_SIGNATURE: sign(secret, msg_id, timestamp, body),
    }


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:  # plain dicts are case-sensitive; HTTP header maps usually are not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    if not value:
        raise SignatureError("missing_header", f"{name} header is missing", header=name)
    return value


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise :class:`SignatureError` unless one ``v1`` signature matches.

    The timestamp must be within ``tolerance_s`` of ``now`` either way (replay protection).
    Comparison is constant-time. Unknown versions (``v1a``, ``v2``) are skipped, not errors.
    """
    msg_id = _header(headers, HEADER_ID)
    raw_ts = _header(headers, HEADER_TIMESTAMP)
    raw_sigs = _header(headers, HEADER_SIGNATURE)
    try:
        timestamp = int(raw_ts)
    except ValueError:
        raise SignatureError("bad_timestamp", f"{HEADER_TIMESTAMP} is not an integer: {raw_ts[:40]!r}",
                             header=HEADER_TIMESTAMP) from None
    current = time.time() if now is None else now
    if timestamp < current - tolerance_s:
        raise SignatureError("stale_timestamp", f"timestamp {timestamp} is older than {tolerance_s:g}s",
                             header=HEADER_TIMESTAMP)
    if timestamp > current + tolerance_s:
        raise SignatureError("future_timestamp", f"timestamp {timestamp} is more than {tolerance_s:g}s ahead",
                             header=HEADER_TIMESTAMP)
    expected = _digest(decode_secret(secret), msg_id, timestamp, body)
    matched = False
    for entry in raw_sigs.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        # no early exit: every candidate costs the same whatever matched
        matched |= hmac.compare_digest(candidate, expected)
    if not matched:
        raise SignatureError("bad_signature", f"no {SIGNATURE_VERSION} signature matches", header=HEADER_SIGNATURE)
