"""The one retry loop of the sinks that POST one document per alert state (webhook, PagerDuty).

A subclass says what to send (:meth:`HttpPostSink.request`, made afresh for every attempt so a
signature can carry its own time) and what identifies the delivery (:meth:`HttpPostSink.reference`);
this base does the rest: the :class:`~alerts.retry.RetryPolicy` (timeouts, connection errors, 429
with ``Retry-After`` and 5xx are retried; other answers are final), one
:class:`~alerts.sink_protocol.DeliveryAttempt` per attempt, a capped read of each answer (a hostile
endpoint cannot make the worker buffer a huge body), and closing the client it made.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import httpx

from alerts.sink_protocol import DeliveryAttempt, DeliveryResult
from alerts.retry import ExponentialBackoff, RetryPolicy, Sleep, parse_retry_after
from schemas.alert import Alert
from schemas.errors import DeliveryError

#: how much of an answer is read (only a snippet is kept for the delivery log)
MAX_RESPONSE_BYTES = 64 * 1024


def describe(exc: Exception) -> str:
    """``TypeName: message`` (or the type name alone when the message is empty)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class HttpPostSink(ABC):
    """Base of a sink that POSTs to one URL. ``send`` never raises for delivery failures.

    A client passed in is the caller's to close; one made here is closed by ``aclose``.
    """

    #: who answered, in the delivery log's errors ("endpoint answered 503: ...")
    answered_by = "endpoint"
    #: set where 410 Gone means "stop sending here": the error, and the result is flagged ``disable``
    gone_error: str | None = None

    def __init__(self, url: str, *, name: str, client: httpx.AsyncClient | None, retry: RetryPolicy | None,
                 timeout: float, sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.time) -> None:
        self.url = url
        self.name = name
        self._retry: RetryPolicy = retry if retry is not None else ExponentialBackoff()
        self._timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        self._closed = False

    # -- what a subclass says -----------------------------------------------------------------
    @abstractmethod
    def request(self, alert: Alert, now: float) -> tuple[bytes, dict[str, str]]:
        """The body and headers of one attempt at ``now``."""

    @abstractmethod
    def reference(self, alert: Alert) -> dict[str, Any]:
        """What identifies this delivery at the other end (kept as the result's ``ref``)."""

    # -- the loop -----------------------------------------------------------------------------
    async def send(self, alert: Alert) -> DeliveryResult:
        return await self.post(lambda now: self.request(alert, now), self.reference(alert))

    async def post(self, request: Callable[[float], tuple[bytes, dict[str, str]]],
                   ref: dict[str, Any]) -> DeliveryResult:
        """POST what ``request(now)`` makes (afresh per attempt) through the retry loop."""
        started = time.perf_counter()
        log: list[dict[str, Any]] = []
        attempt = 0
        while True:
            attempt += 1
            if self._closed:
                return self._fail(attempt - 1, started, ref, log,
                                  DeliveryError("sink is closed", sink=self.name, retryable=False))
            now = self._clock()
            body, headers = request(now)
            retry_after: float | None = None
            status: int | None = None
            sent = time.perf_counter()
            try:
                status, response_headers, head = await self._post(body, headers)
            except httpx.TransportError as exc:  # timeouts, refused/reset connections
                error = DeliveryError(describe(exc), sink=self.name)
            except httpx.HTTPError as exc:
                error = DeliveryError(describe(exc), sink=self.name, retryable=False)
            else:
                if 200 <= status <= 299:
                    log.append(DeliveryAttempt(attempt, now, status, time.perf_counter() - sent).to_dict())
                    return DeliveryResult(sink=self.name, ok=True, attempts=attempt, status=status,
                                          latency_s=time.perf_counter() - started, ref=ref, attempts_log=log)
                if status == 410 and self.gone_error:
                    error = DeliveryError(self.gone_error, sink=self.name, status=status, retryable=False)
                else:
                    retry_after = parse_retry_after(response_headers.get("retry-after"), now=self._clock())
                    snippet = head[:200].decode("utf-8", "replace").strip()
                    error = DeliveryError(f"{self.answered_by} answered {status}" + (f": {snippet}" if snippet else ""),
                                          sink=self.name, status=status, retryable=status == 429 or status >= 500)
            log.append(DeliveryAttempt(attempt, now, status, time.perf_counter() - sent, str(error)).to_dict())
            wait = self._retry.delay(attempt, status=status, retry_after=retry_after) if error.retryable else None
            if wait is None:
                result = self._fail(attempt, started, ref, log, error)
                result.disable = status == 410 and self.gone_error is not None
                return result
            await self._sleep(wait)

    async def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, httpx.Headers, bytes]:
        """POST and read at most ``MAX_RESPONSE_BYTES`` of the answer."""
        async with self._client.stream("POST", self.url, content=body, headers=headers,
                                       timeout=self._timeout) as response:
            head = b""
            async for chunk in response.aiter_bytes():
                head += chunk
                if len(head) >= MAX_RESPONSE_BYTES:
                    break
            return response.status_code, response.headers, head[:MAX_RESPONSE_BYTES]

    def _fail(self, attempts: int, started: float, ref: dict[str, Any], log: list[dict[str, Any]],
              error: DeliveryError) -> DeliveryResult:
        return DeliveryResult(sink=self.name, ok=False, attempts=attempts, status=error.status,
                              latency_s=time.perf_counter() - started, error=str(error),
                              permanent=not error.retryable, ref=ref, attempts_log=log)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.aclose()
