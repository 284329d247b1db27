"""Slack delivery through the Web API (bot token with ``chat:write``), not incoming webhooks.

Firing: ``chat.postMessage`` with Block Kit (see :mod:`alerts.slack_blocks`); the message's
channel id and ``ts`` are kept per alert id. Resolved: if this process posted the firing
message, ``chat.update`` it to show RESOLVED and reply in its thread; otherwise post anew.

Retries go through the SDK's retry-handler hook, but every wait is decided by our
:class:`~alerts.retry.RetryPolicy` and taken with the injected ``sleep``: the SDK's own
handlers call ``asyncio.sleep`` directly and parse ``Retry-After`` with ``int()``.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from contextvars import ContextVar
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from alerts.base import DeliveryResult
from alerts.retry import ExponentialBackoff, RetryPolicy, Sleep, is_retryable, parse_retry_after
from alerts.slack_blocks import fallback_text, render_blocks, resolved_reply_text
from schemas.alert import Alert
from schemas.errors import DeliveryError

#: HTTP requests made by the current ``send`` (retries included); a ContextVar so concurrent sends don't mix
_REQUESTS: ContextVar[list[int] | None] = ContextVar("spendsentry_slack_requests", default=None)
#: the policy bounds the attempts; the SDK's per-handler count must never be the tighter limit
_UNBOUNDED = 1_000


class _PolicyWait:
    """Mixin for SDK retry handlers: the SDK class decides *what* is retryable, our policy *whether
    and how long*, and the injected sleep does the waiting."""

    _policy: RetryPolicy
    _sleep: Sleep

    def _wait(self, state: RetryState, response: HttpResponse | None, error: Exception | None) -> float | None:
        status = None if error is not None or response is None else response.status_code
        retry_after = None
        if response is not None:
            for name, values in response.headers.items():
                if name.lower() == "retry-after" and values:
                    retry_after = parse_retry_after(values[0] if isinstance(values, list) else values)
        # state.current_attempt counts retries already made, so the failed attempt is that + 1
        return self._policy.delay(state.current_attempt + 1, status=status, retry_after=retry_after)

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        matches = await super()._can_retry_async(  # type: ignore[misc]
            state=state, request=request, response=response, error=error)
        return bool(matches) and self._wait(state, response, error) is not None

    async def prepare_for_next_attempt_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        state.next_attempt_requested = True
        await self._sleep(self._wait(state, response, error) or 0.0)
        state.increment_current_attempt()
        counter = _REQUESTS.get()
        if counter is not None:
            counter[0] += 1


class _RateLimitHandler(_PolicyWait, AsyncRateLimitErrorRetryHandler):
    """429 + ``Retry-After`` (fractional seconds and HTTP dates accepted)."""

    def __init__(self, policy: RetryPolicy, sleep: Sleep) -> None:
        super().__init__(max_retry_count=_UNBOUNDED)
        self._policy, self._sleep = policy, sleep


class _ServerErrorHandler(_PolicyWait, AsyncServerErrorRetryHandler):
    """Any 5xx (the SDK's class only retries 500 and 503)."""

    def __init__(self, policy: RetryPolicy, sleep: Sleep) -> None:
        super().__init__(max_retry_count=_UNBOUNDED)
        self._policy, self._sleep = policy, sleep

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or error is not None or not 500 <= response.status_code <= 599:
            return False
        return self._wait(state, response, error) is not None


class _ConnectionErrorHandler(_PolicyWait, AsyncConnectionErrorRetryHandler):
    """Refused/reset connections, server disconnects and timeouts."""

    def __init__(self, policy: RetryPolicy, sleep: Sleep) -> None:
        super().__init__(
            max_retry_count=_UNBOUNDED,
            error_types=[aiohttp.ServerConnectionError, aiohttp.ServerDisconnectedError,
                         aiohttp.ClientOSError, asyncio.TimeoutError],
        )
        self._policy, self._sleep = policy, sleep


def retry_handlers(policy: RetryPolicy, sleep: Sleep = asyncio.sleep) -> list[AsyncRetryHandler]:
    """SDK retry handlers driven by ``policy``: connection errors, 429 and 5xx."""
    return [_ConnectionErrorHandler(policy, sleep), _RateLimitHandler(policy, sleep), _ServerErrorHandler(policy, sleep)]


class SlackSink:
    """Posts alerts to one Slack channel and resolves them in place.

    A ``client`` passed in is used as is (its retry handlers and session are the caller's);
    otherwise one is built on ``base_url`` with policy-driven retry handlers and an aiohttp
    session that is opened on first use (inside the running loop) and closed by ``aclose``.
    """

    def __init__(
        self,
        token: str,
        channel: str,
        *,
        base_url: str = "https://slack.com/api/",
        client: AsyncWebClient | None = None,
        name: str = "slack",
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        timeout: int = 30,
        max_tracked: int = 10_000,
    ) -> None:
        self.name = name
        self.channel = channel
        self._timeout = timeout
        self._owns_client = client is None
        policy: RetryPolicy = retry if retry is not None else ExponentialBackoff()
        self._client = client if client is not None else AsyncWebClient(
            token=token, base_url=base_url, timeout=timeout, retry_handlers=retry_handlers(policy, sleep))
        #: alert_id -> (channel id, ts) of the firing message this process posted; oldest evicted first
        self._posted: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._max_tracked = max_tracked
        self._closed = False

    @property
    def client(self) -> AsyncWebClient:
        return self._client

    def posted(self, alert_id: str) -> tuple[str, str] | None:
        """The (channel id, ts) of the firing message of ``alert_id``, if this sink posted it."""
        return self._posted.get(alert_id)

    def _remember(self, alert_id: str, channel: str, ts: str) -> None:
        self._posted[alert_id] = (channel, ts)
        self._posted.move_to_end(alert_id)
        while len(self._posted) > self._max_tracked:
            self._posted.popitem(last=False)

    def _ensure_session(self) -> None:
        # The SDK opens and closes a new aiohttp session per request when it has none (or a closed
        # one); ours is made here, inside the running loop, and carries the timeout: with a session
        # supplied, the SDK's own ``timeout`` is not applied.
        if self._owns_client and (self._client.session is None or self._client.session.closed):
            self._client.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))

    async def send(self, alert: Alert) -> DeliveryResult:
        started = time.perf_counter()
        if self._closed:
            return DeliveryResult(sink=self.name, ok=False, attempts=0, error=str(
                DeliveryError("sink is closed", sink=self.name, retryable=False)), permanent=True)
        counter = [0]
        token = _REQUESTS.set(counter)
        try:
            self._ensure_session()
            ref = await self._deliver(alert, counter)
        except SlackApiError as exc:
            status = exc.response.status_code
            code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            error = DeliveryError(f"Slack API error {code or 'unknown'}", sink=self.name, status=status,
                                  retryable=is_retryable(status) or code in ("ratelimited", "internal_error",
                                                                             "service_unavailable"))
            return self._fail(counter[0], started, error)
        except (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            text = str(exc)
            error = DeliveryError(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, sink=self.name)
            return self._fail(counter[0], started, error)
        finally:
            _REQUESTS.reset(token)
        return DeliveryResult(sink=self.name, ok=True, attempts=counter[0], status=200,
                              latency_s=time.perf_counter() - started, ref=ref)

    async def _deliver(self, alert: Alert, counter: list[int]) -> dict[str, Any]:
        text, blocks = fallback_text(alert), render_blocks(alert)
        parent = self._posted.get(alert.alert_id) if alert.status == "resolved" else None
        if parent is None:
            counter[0] += 1
            response = await self._client.chat_postMessage(channel=self.channel, text=text, blocks=blocks)
            channel, ts = str(response["channel"]), str(response["ts"])
            if alert.status == "firing":
                self._remember(alert.alert_id, channel, ts)
            return {"channel": channel, "ts": ts}
        channel, ts = parent
        counter[0] += 1
        await self._client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        counter[0] += 1
        reply = await self._client.chat_postMessage(channel=channel, thread_ts=ts, text=resolved_reply_text(alert))
        return {"channel": channel, "ts": ts, "reply_ts": str(reply["ts"])}

    def _fail(self, attempts: int, started: float, error: DeliveryError) -> DeliveryResult:
        return DeliveryResult(sink=self.name, ok=False, attempts=attempts, status=error.status,
                              latency_s=time.perf_counter() - started, error=str(error), permanent=not error.retryable)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        session = self._client.session
        if self._owns_client and session is not None and not session.closed:
            await session.close()
