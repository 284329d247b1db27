"""Bearer-token check for mutating and ingest endpoints (tokens from SPENDSENTRY_API_TOKENS)."""

from __future__ import annotations

import hmac
from typing import Mapping


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
