"""Bearer-token checks: writes (mutations, ingest, feedback) need a token of SPENDSENTRY_API_TOKENS
(a read token is known but not allowed to write: 403, not 401); reads
(every other ``/v1/*`` route, ``/metrics``, and any page that shows state) one of those or of
SPENDSENTRY_READ_TOKENS. With no token configured at all the worker serves loopback only
(:mod:`streams.config` refuses anything else), and reads are open to that host."""

from __future__ import annotations

import hmac
from typing import Mapping, Protocol


def bearer_error(headers: Mapping[str, str], tokens: tuple[str, ...]) -> str | None:
    """None when the request carries a valid token, else the reason to answer 401 with.

    Every configured token is compared, in constant time, so timing tells nothing about
    which token (or which prefix) was close.
    """
    if not tokens:
        return "no API tokens are configured (set SPENDSENTRY_API_TOKENS); mutating calls are refused"
    header = headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        return "missing bearer token (Authorization: Bearer <token>)"
    matched = False
    for token in tokens:
        # header bytes that are not UTF-8 reach us as surrogate escapes: encode both sides the same way
        matched |= hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                                       token.encode("utf-8", "surrogatepass"))
    return None if matched else "invalid bearer token"


class TokenSettings(Protocol):
    api_tokens: tuple[str, ...]
    read_tokens: tuple[str, ...]


def read_error(headers: Mapping[str, str], settings: TokenSettings) -> str | None:
    """None when the request may read (a write or a read token, or no token configured), else the
    reason to answer 401 with. The one check every page that shows state uses."""
    tokens = settings.api_tokens + settings.read_tokens
    if not tokens:
        return None
    return bearer_error(headers, tokens)


#: a write presented with a valid read token: authenticated, not allowed (403)
READ_ONLY = "read-only token: writes need a token of SPENDSENTRY_API_TOKENS"


def write_error(headers: Mapping[str, str], settings: TokenSettings) -> tuple[int, str] | None:
    """None when the request may write (a token of SPENDSENTRY_API_TOKENS), else the status and
    reason: 403 for a valid read token (authenticated, not allowed), 401 for anything else."""
    reason = bearer_error(headers, settings.api_tokens)
    if reason is None:
        return None
    if settings.read_tokens and bearer_error(headers, settings.read_tokens) is None:
        return 403, READ_ONLY
    return 401, reason
