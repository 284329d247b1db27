"""Retry as a policy object: a pure ``delay`` decision, no sleeping, no I/O.

Sinks own the one retry loop and the injected ``sleep``; the policy only says how long to wait
before the next attempt, or ``None`` to stop. What is retried:

- a timeout or connection error (``status=None``);
- 429 Too Many Requests, waiting at least ``Retry-After``;
- any 5xx (honouring ``Retry-After`` where the server sends one, e.g. 503).

Everything else (other 4xx, 3xx) is final: sending the same request again cannot help.
"""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Protocol, runtime_checkable

from schemas.errors import ConfigError

#: an awaitable sleep, ``asyncio.sleep`` in production and a recorder in tests
Sleep = Callable[[float], Awaitable[None]]


def is_retryable(status: int | None) -> bool:
    """Whether an attempt that ended with ``status`` (``None``: no response at all) may be retried."""
    return status is None or status == 429 or 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if absent/invalid."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@runtime_checkable
class RetryPolicy(Protocol):
    """**Protocol:** decides whether and when to try again. Pure: no sleeping, no clock reads."""

    def delay(self, attempt: int, *, status: int | None, retry_after: float | None) -> float | None:
        """Seconds to wait after failed ``attempt`` (1-based), or ``None`` to give up.

        ``status`` is the HTTP status of that attempt, ``None`` for a timeout or connection error;
        ``retry_after`` is the parsed ``Retry-After`` header, if any.
        """
        ...


@dataclass(frozen=True, slots=True)
class NoRetry:
    """One attempt only."""

    def delay(self, attempt: int, *, status: int | None, retry_after: float | None) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """``base_s * 2**(attempt-1)`` capped at ``max_s``, spread by ±``jitter`` (a fraction, 0-1).

    A ``Retry-After`` is a floor, never shortened by jitter; one longer than ``max_s`` stops the
    retries instead of blocking the sender that long (the caller reports the failure).
    """

    max_attempts: int = 4
    base_s: float = 1.0
    max_s: float = 30.0
    jitter: float = 0.1
    #: uniform [0, 1) source, injectable for deterministic tests
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_s < 0 or self.max_s < 0:
            raise ConfigError(f"retry base_s/max_s must be >= 0, got {self.base_s}/{self.max_s}")
        if not 0.0 <= self.jitter <= 1.0:
            raise ConfigError(f"retry jitter must be within 0..1, got {self.jitter}")

    def delay(self, attempt: int, *, status: int | None, retry_after: float | None) -> float | None:
        if attempt >= self.max_attempts or not is_retryable(status):
            return None
        backoff = min(self.max_s, self.base_s * 2 ** (attempt - 1))
        backoff = min(self.max_s, max(0.0, backoff * (1.0 + self.jitter * (2.0 * self.rng() - 1.0))))
        if retry_after is None:
            return backoff
        if retry_after > self.max_s:
            return None
        return max(retry_after, 0.0) if status == 429 else max(retry_after, backoff)
