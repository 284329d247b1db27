"""The retry policy: pure decisions about whether and how long to wait."""

from __future__ import annotations

import pytest

from alerts.retry import ExponentialBackoff, NoRetry, RetryPolicy, is_retryable, parse_retry_after
from schemas.errors import ConfigError


def policy(**kwargs: float) -> ExponentialBackoff:
    params = {"max_attempts": 5, "base_s": 1.0, "max_s": 10.0, "jitter": 0.0} | kwargs
    return ExponentialBackoff(**params)  # type: ignore[arg-type]


def test_backoff_doubles_and_is_capped() -> None:
    """1, 2, 4, 8 seconds, then capped at max_s."""
    p = policy(max_attempts=10)
    assert [1.0, 2.0, 4.0, 8.0, 10.0] == [p.delay(n, status=503, retry_after=None) for n in range(1, 6)]


def test_stops_after_max_attempts() -> None:
    """Attempt max_attempts was the last one."""
    p = policy(max_attempts=3)
    assert p.delay(2, status=None, retry_after=None) is not None
    assert p.delay(3, status=None, retry_after=None) is None


@pytest.mark.parametrize("status", [None, 429, 500, 502, 503, 504])
def test_retries_timeouts_429_and_5xx(status: int | None) -> None:
    assert policy().delay(1, status=status, retry_after=None) is not None


@pytest.mark.parametrize("status", [301, 400, 401, 403, 404, 409, 410, 422])
def test_never_retries_other_statuses(status: int) -> None:
    """Other 4xx (and redirects) cannot be fixed by sending the same request again."""
    assert policy().delay(1, status=status, retry_after=None) is None
    assert not is_retryable(status)


def test_429_waits_exactly_retry_after() -> None:
    """Retry-After is honoured on 429, even when it is shorter than the backoff."""
    p = policy(base_s=4.0)
    assert 0.25 == p.delay(1, status=429, retry_after=0.25)
    assert 7.0 == p.delay(1, status=429, retry_after=7.0)


def test_5xx_retry_after_is_a_floor() -> None:
    p = policy(base_s=2.0)
    assert 5.0 == p.delay(1, status=503, retry_after=5.0)
    assert 2.0 == p.delay(1, status=503, retry_after=0.5)


def test_retry_after_beyond_max_s_gives_up() -> None:
    """A server asking for longer than we are willing to block is reported, not waited for."""
    assert policy(max_s=10.0).delay(1, status=429, retry_after=3600.0) is None


def test_jitter_stays_within_band_and_cap() -> None:
    low = ExponentialBackoff(max_attempts=5, base_s=4.0, max_s=5.0, jitter=0.5, rng=lambda: 0.0)
    high = ExponentialBackoff(max_attempts=5, base_s=4.0, max_s=5.0, jitter=0.5, rng=lambda: 0.999)
    assert 2.0 == low.delay(1, status=None, retry_after=None)
    assert 5.0 == high.delay(1, status=None, retry_after=None)


def test_invalid_parameters_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        ExponentialBackoff(max_attempts=0)
    with pytest.raises(ConfigError):
        ExponentialBackoff(jitter=1.5)


def test_no_retry_and_protocol() -> None:
    assert NoRetry().delay(1, status=503, retry_after=None) is None
    assert isinstance(NoRetry(), RetryPolicy) and isinstance(ExponentialBackoff(), RetryPolicy)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("3", 3.0), ("0.5", 0.5), ("-2", 0.0), ("soon", None),
     ("Fri, 27 Nov 2026 06:00:30 GMT", 30.0)],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Delta-seconds or an HTTP date, relative to now."""
    assert expected == parse_retry_after(value, now=1795759200.0)
